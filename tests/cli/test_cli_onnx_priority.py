"""``--onnx-dynamic-priority accuracy|portable`` and ``OnnxOptions.dynamic_priority``: the flag
reaches the options, the default file records the "accuracy" policy, misuse is refused."""

from __future__ import annotations

import json

import onnx
import pytest

from edgelstm import LSTMSpec, LSTMWeights, save_npz
from edgelstm.cli.main import main
from edgelstm.errors import SpecError
from edgelstm.ir.options import OnnxOptions
from edgelstm.targets.onnx.scheme_choice import SCHEME_KEY

pytest.importorskip("onnxruntime")


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "cell.npz"
    save_npz(LSTMWeights.random(LSTMSpec(4, 8), seed=5), path)
    return path


def test_option_is_validated() -> None:
    assert OnnxOptions().dynamic_priority == "accuracy"
    assert OnnxOptions(dynamic_priority="portable").dynamic_priority == "portable"
    with pytest.raises(SpecError, match=r"dynamic_priority.*'fast'.*--onnx-dynamic-priority"):
        OnnxOptions(dynamic_priority="fast")  # type: ignore[arg-type]


def test_default_file_records_the_accuracy_policy(source, tmp_path) -> None:
    out = tmp_path / "q.onnx"
    assert main(["compile", str(source), "-o", str(out), "--quantize", "dynamic"]) == 0
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    record = json.loads(props[SCHEME_KEY])
    assert record["policy"] == "accuracy" and record["guarantee"]["held"] is True
    assert record["rmse"][record["chosen"]] <= record["rmse"]["ort-default"]


@pytest.mark.parametrize("priority", ["accuracy", "portable"])
def test_flag_reaches_the_options(source, tmp_path, monkeypatch, priority) -> None:
    import edgelstm.targets.onnx as onnx_target

    seen = []

    def save(model, out, options) -> None:
        seen.append(options)
        out.write_bytes(b"")

    monkeypatch.setattr(onnx_target, "save_onnx", save)
    argv = ["compile", str(source), "-o", str(tmp_path / "q.onnx"), "--quantize", "dynamic"]
    assert main([*argv, "--onnx-dynamic-priority", priority]) == 0
    assert seen[0].onnx.dynamic_priority == priority


@pytest.mark.parametrize(
    ("out", "extra"),
    [("m.onnx", []), ("m.tflite", ["--quantize", "dynamic"])],
)
def test_flag_without_dynamic_onnx_is_refused(source, tmp_path, capsys, out, extra) -> None:
    path = tmp_path / out
    argv = ["compile", str(source), "-o", str(path), "--onnx-dynamic-priority", "portable", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--onnx-dynamic-priority applies to dynamic int8 ONNX" in err[0]
    assert not path.exists()


def test_portable_reaches_the_file(source, tmp_path) -> None:
    """End to end (needs emit.py to pass ``options.onnx.dynamic_priority`` on)."""
    out = tmp_path / "p.onnx"
    argv = ["compile", str(source), "-o", str(out), "--quantize", "dynamic"]
    assert main([*argv, "--onnx-dynamic-priority", "portable"]) == 0
    record = json.loads({p.key: p.value for p in onnx.load(out).metadata_props}[SCHEME_KEY])
    assert record["policy"] == "portable"

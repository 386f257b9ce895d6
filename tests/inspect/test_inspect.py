"""``edgelstm inspect``: roles, dtypes, quantization and provenance, parsed without a runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _verify_helpers import SPEC, build_variants, cli, stderr_lines

from edgelstm.cli.main import main
from edgelstm.errors import ModelFileError
from edgelstm.inspect import format_info, inspect_model
from edgelstm.ir.roles import ROLES


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return build_variants(tmp_path_factory.mktemp("inspect"))


def test_float_tflite_names_every_role(variants):
    info = inspect_model(variants["float"])
    assert info.format == "tflite" and info.quantization == "float"
    (op,) = info.lstm_ops
    assert op.op == "UNIDIRECTIONAL_SEQUENCE_LSTM" and op.version == 1
    by_role = {t.role: t for t in op.inputs if t is not None}
    assert by_role["input_to_forget_weights"].shape == [SPEC.n_cell, SPEC.n_input]
    assert by_role["cell_to_output_weights"].constant  # peephole present
    assert "projection_weights" not in by_role
    assert by_role["output_state"].variable and by_role["cell_state"].variable
    assert all(t is None or t.role == ROLES[j].name for j, t in enumerate(op.inputs))
    assert op.options["cell_clip"] == 0.0 and op.options["time_major"] is False
    assert op.options["fused_activation_function"] == "TANH"
    assert info.provenance["source"] == "source.npz"
    assert info.provenance["digests"] and not info.time_major


def test_dynamic_tflite_shows_int8_weights_with_scales(variants):
    info = inspect_model(variants["dynamic"])
    assert info.quantization == "dynamic"
    (op,) = info.lstm_ops
    w = next(t for t in op.inputs if t is not None and t.role == "input_to_cell_weights")
    assert w.dtype == "int8" and w.quantization["scale"][0] > 0
    assert op.version >= 2  # hybrid
    assert inspect_model(variants["float"]).size_bytes > info.size_bytes


def test_int8_tflite_state_and_intermediates(variants):
    if variants["int8"] is None:
        pytest.skip("full-int8 emission not available in this build")
    info = inspect_model(variants["int8"])
    assert info.quantization == "int8"
    (op,) = info.lstm_ops
    cell = next(t for t in op.inputs if t is not None and t.role == "cell_state")
    assert cell.dtype == "int16"
    assert len(op.intermediates) == 5
    assert "2^" in format_info(info)  # the int16 cell scale is a power of two
    assert info.output_quantization["scale"][0] > 0


def test_onnx_lstm_roles_and_metadata(variants):
    info = inspect_model(variants["onnx"])
    assert info.format == "onnx" and info.quantization == "float"
    (op,) = info.lstm_ops
    assert [t.role for t in op.inputs[:3]] == ["X", "W", "R"]
    assert op.inputs[1].shape == [1, 4 * SPEC.n_cell, SPEC.n_input]
    assert info.provenance["source"] == "source.npz"
    dyn = inspect_model(variants["onnx_dynamic"])
    assert dyn.quantization == "dynamic"


def test_time_major_is_read_from_the_op(variants):
    assert inspect_model(variants["time_major"]).time_major


def test_cli_text_and_json(variants, capsys):
    assert main(["inspect", str(variants["float"])]) == 0
    text = capsys.readouterr().out
    assert "recurrent_to_output_weights" in text and "cell_to_forget_weights" in text
    assert main(["inspect", str(variants["onnx"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "onnx" and data["ops"]


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\0\0\0\0TFL3garbage"])
def test_bad_files(tmp_path, content):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError):
        inspect_model(bad)


def test_bad_file_cli_exit_2_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08garbage")
    proc = cli("inspect", str(bad))
    assert proc.returncode == 2
    lines = stderr_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("edgelstm inspect: error:")


CHECK = """
import sys
from edgelstm.cli.main import main
code = main({argv!r})
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'tensorflow', 'torch', 'keras'}})
print('HEAVY=' + ','.join(heavy), 'CODE=%d' % code)
"""


def test_inspect_imports_no_framework(variants):
    for path in (variants["float"], variants["onnx"]):
        code = CHECK.format(argv=["inspect", str(path)])
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip().splitlines()[-1] == "HEAVY= CODE=0"


def test_onnx_int8_weights_that_saturate_are_flagged(tmp_path):
    """ORT's quantize_dynamic defaults (full-range int8) vs edgelstm's pair-safe weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, inspect_model, save_onnx
    from edgelstm.ir.options import CompileOptions, OnnxOptions

    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(16, 32), seed=0))
    save_onnx(model, tmp_path / "f.onnx", CompileOptions(batch=1))
    portable = OnnxOptions(dynamic_priority="portable")  # the default may keep ORT's weights
    save_onnx(
        model, tmp_path / "ours.onnx", CompileOptions(batch=1, quantize="dynamic", onnx=portable)
    )
    quantize_dynamic(tmp_path / "f.onnx", tmp_path / "ort.onnx", weight_type=QuantType.QInt8)
    ort_info, ours = inspect_model(tmp_path / "ort.onnx"), inspect_model(tmp_path / "ours.onnx")
    assert ort_info.quantization == ours.quantization == "dynamic"
    assert len(ort_info.warnings) == 1 and "saturate" in ort_info.warnings[0]
    assert "layer0.W_quantized" in ort_info.warnings[0]
    assert ours.warnings == [] and inspect_model(tmp_path / "f.onnx").warnings == []
    assert "warning: int8 weights" in format_info(ort_info)

"""``edgelstm compile SOURCE.npz -o OUT.onnx`` end to end, and the light-import promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from _onnx_helpers import assert_matches, op_types, run

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model, save_npz
from edgelstm.cli.main import main

EDGELSTM = Path(sys.executable).with_name("edgelstm")


def _model() -> LSTMModel:
    fw = LSTMWeights.random(LSTMSpec(3, 4, peephole=True), seed=1)
    bw = LSTMWeights.random(LSTMSpec(3, 4, 2, projection=True, proj_clip=0.5), seed=2)
    return LSTMModel((LSTMLayer(fw, bw),), provenance={"forget_bias": 1.0})


def test_cli_compile_end_to_end(tmp_path, capsys) -> None:
    src, out = tmp_path / "m.npz", tmp_path / "m.onnx"
    model = _model()
    save_npz(model, src)
    assert main(["compile", str(src), "-o", str(out), "--batch", "0"]) == 0
    assert "wrote" in capsys.readouterr().out
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert op_types(proto).count("LSTM") == 1 and op_types(proto).count("Scan") == 1
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["edgelstm.source"] == "m.npz"
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    assert_matches(run(proto, x), reference_model(model, x), model)


def test_cli_dynamic_int8(tmp_path) -> None:
    src, out = tmp_path / "m.npz", tmp_path / "q.onnx"
    save_npz(LSTMWeights.random(LSTMSpec(8, 16), seed=3), src)
    assert main(["compile", str(src), "-o", str(out), "--quantize", "dynamic"]) == 0
    assert "DynamicQuantizeLSTM" in op_types(onnx.load(out))


def test_cli_error_exit_2_writes_nothing(tmp_path) -> None:
    """A real subprocess: static int8 is refused with one line and exit code 2."""
    src, out = tmp_path / "m.npz", tmp_path / "m.onnx"
    save_npz(_model(), src)
    cmd = [str(EDGELSTM), "compile", str(src), "-o", str(out), "--quantize", "int8"]
    if not EDGELSTM.exists():  # pragma: no cover - venv without the console script
        cmd = [sys.executable, "-m", "edgelstm", *cmd[1:]]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "no integer LSTM kernel" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary leftovers either


def test_import_edgelstm_does_not_import_onnx() -> None:
    code = (
        "import sys, edgelstm, edgelstm.targets.onnx\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Acceptance: TFLite's own fused-LSTM kernel goldens, compiled through the CLI.

The weights, inputs and golden outputs of the float cases of
``tflite/kernels/unidirectional_sequence_lstm_test.cc`` (LiteRT / TensorFlow, Apache-2.0) are
in tests/data/tflite_kernel_goldens.json (see its README). Each case is saved as an .npz,
compiled with ``edgelstm compile x.npz -o y.tflite`` and run; outputs must match within 1e-5.
Also: CLI errors exit 2 with one line and leave no output file.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _paths import TEST_DATA

from edgelstm import LSTMWeights, reference, save_npz
from edgelstm.cli.main import main
from edgelstm.ir.roles import BY_NAME
from edgelstm.runtime import LiteRTRunner

DATA = TEST_DATA / "tflite_kernel_goldens.json"
GOLDENS = json.loads(DATA.read_text())["cases"]
TOL = 1e-5


def _weights(case: dict) -> LSTMWeights:
    sizes = {"n_input": case["n_input"], "n_cell": case["n_cell"], "n_output": case["n_output"]}
    tensors = {
        name: np.array(values, np.float32).reshape([sizes[d] for d in BY_NAME[name].dims])
        for name, values in case["weights"].items()
    }
    return LSTMWeights.from_tensors(
        tensors, cell_clip=case["cell_clip"], proj_clip=case["proj_clip"]
    )


def _arrays(case: dict) -> tuple[np.ndarray, np.ndarray]:
    batch = len(case["input"])
    x = np.array(case["input"], np.float32).reshape(batch, -1, case["n_input"])
    y = np.array(case["golden_output"], np.float32).reshape(batch, -1, case["n_output"])
    return x, y


@pytest.mark.parametrize("name", sorted(GOLDENS))
@pytest.mark.parametrize("layout", ["batch_major", "time_major"])
def test_kernel_golden_through_cli(name, layout, tmp_path, capsys):
    case = GOLDENS[name]
    weights = _weights(case)
    x, golden = _arrays(case)
    src, out = tmp_path / f"{name}.npz", tmp_path / f"{name}.tflite"
    save_npz(weights, src)
    argv = ["compile", str(src), "-o", str(out), "--batch", str(x.shape[0])]
    if layout == "time_major":
        argv.append("--time-major")
        x, golden = x.transpose(1, 0, 2).copy(), golden.transpose(1, 0, 2)
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    (got,) = LiteRTRunner(out).run(x)
    assert got.shape == golden.shape
    assert np.max(np.abs(got - golden)) <= TOL


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_goldens_agree_with_reference(name):
    """The transcription itself: the float64 reference reproduces each golden."""
    case = GOLDENS[name]
    x, golden = _arrays(case)
    y, _ = reference(_weights(case), x)
    assert np.max(np.abs(y - golden)) <= TOL


def _compile_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_refusal_exits_2_without_output(tmp_path, capsys):
    spec_weights = _weights(GOLDENS["CifgPeepholeNoProjectionNoClipping"]).replace(
        activation="linear"
    )
    src, out = tmp_path / "lin.npz", tmp_path / "lin.tflite"
    save_npz(spec_weights, src)
    err = _compile_error(["compile", str(src), "-o", str(out)], capsys)
    assert "tflite" in err and "NONE" in err
    assert not out.exists()
    assert not list(tmp_path.glob("*.part"))


def test_cli_bad_source_exits_2_without_output(tmp_path, capsys):
    src, out = tmp_path / "bad.npz", tmp_path / "bad.tflite"
    src.write_bytes(b"not a zip")
    _compile_error(["compile", str(src), "-o", str(out)], capsys)
    assert not out.exists()
    _compile_error(["compile", str(tmp_path / "missing.npz"), "-o", str(out)], capsys)
    assert not out.exists()


def test_cli_failure_keeps_existing_output(tmp_path, capsys):
    good = tmp_path / "good.npz"
    save_npz(_weights(GOLDENS["NoCifgNoPeepholeNoProjectionNoClipping"]), good)
    out = tmp_path / "m.tflite"
    assert main(["compile", str(good), "-o", str(out)]) == 0
    before = out.read_bytes()
    bad = tmp_path / "sig.npz"
    save_npz(
        _weights(GOLDENS["NoCifgNoPeepholeNoProjectionNoClipping"]).replace(activation="sigmoid"),
        bad,
    )
    capsys.readouterr()
    err = _compile_error(["compile", str(bad), "-o", str(out)], capsys)
    assert "sigmoid" in err
    assert out.read_bytes() == before


def test_cli_dynamic_batch_and_quantize(tmp_path, capsys):
    case = GOLDENS["NoCifgPeepholeProjectionClipping"]
    src = tmp_path / "p.npz"
    save_npz(_weights(case), src)
    x, golden = _arrays(case)
    out = tmp_path / "p_dyn.tflite"
    assert main(["compile", str(src), "-o", str(out), "--batch", "0"]) == 0
    assert np.max(np.abs(LiteRTRunner(out).run(x)[0] - golden)) <= TOL
    hyb = tmp_path / "p_hyb.tflite"
    assert main(["compile", str(src), "-o", str(hyb), "--quantize", "dynamic"]) == 0
    runner = LiteRTRunner(hyb)
    err = max(np.max(np.abs(runner.run(x[b : b + 1])[0] - golden[b : b + 1])) for b in range(2))
    assert err < 5e-3  # the kernel test's own hybrid tolerance is 4.67e-3


def test_console_entry_point(tmp_path):
    import subprocess
    import sys

    case = GOLDENS["CifgPeepholeNoProjectionNoClippingLayerNorm"]
    src, out = tmp_path / "ln.npz", tmp_path / "ln.tflite"
    save_npz(_weights(case), src)
    done = subprocess.run(
        [sys.executable, "-m", "edgelstm", "compile", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    x, golden = _arrays(case)
    assert np.max(np.abs(LiteRTRunner(out).run(x)[0] - golden)) <= TOL
    bad = subprocess.run(
        [sys.executable, "-m", "edgelstm", "compile", str(src), "-o", str(tmp_path / "x.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1

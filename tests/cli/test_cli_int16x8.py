"""``--quantize int16x8`` on the CLI: LiteRT and ``--target tflm`` both write the int16-activation
file (not int8), ``inspect`` names it, and whole models refuse it with the way out."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, save_npz
from edgelstm.cli.main import main
from edgelstm.inspect import inspect_model
from edgelstm.reference import reference_model
from edgelstm.runtime.select import open_runner

T = 6


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("i16")
    spec = LSTMSpec(n_input=3, n_cell=8, peephole=True)
    model = LSTMModel([LSTMLayer(LSTMWeights.random(spec, np.random.default_rng(5)))])
    save_npz(model, root / "m.npz")
    x = np.random.default_rng(0).normal(size=(24, T, 3)).astype(np.float32)
    np.save(root / "cal.npy", x)
    return root, model, x


@pytest.mark.parametrize("target", ["tflite", "tflm"])
def test_int16x8_file_for_each_target(source, target, capsys):
    if target == "tflm":
        pytest.importorskip("tflite_micro")
    root, model, x = source
    out = root / f"m_{target}.tflite"
    args = ["compile", str(root / "m.npz"), "-o", str(out), "--quantize", "int16x8"]
    args += ["--calibration", str(root / "cal.npy"), "--seq-len", str(T), "--target", target]
    assert main([*args, "--overwrite"]) == 0
    assert "quantize=int16x8" in capsys.readouterr().out
    assert inspect_model(out).quantization == "int16x8"
    with open_runner(out, target if target == "tflm" else "auto", probe=False) as runner:
        y = np.asarray(runner.run(x[:1])[0], np.float64)  # float in -> float out
    ref = reference_model(model, x[:1].astype(np.float64)).output
    assert np.abs(y - ref).max() < 0.02


def test_whole_keras_model_refuses_int16x8(tmp_path, capsys):
    """Checked before anything is loaded: the flag, not the model, is wrong here."""
    from edgelstm.cli.whole_keras import _refuse_flags

    class Args:
        quantize = "int16x8"

    from edgelstm.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match=r"int16x8 applies to LSTM-only sources"):
        _refuse_flags(Args())


def test_weight_planes_flag(source, capsys):
    """``--weight-planes 2``: a second int8 plane per weight matrix, closer to the float64
    reference on LiteRT than one plane; refused (exit 2, no file) off the integer lowering."""
    root, model, x = source
    base = ["compile", str(root / "m.npz"), "--quantize", "int16x8", "--overwrite"]
    base += ["--calibration", str(root / "cal.npy"), "--seq-len", str(T)]
    ref = reference_model(model, x[:1].astype(np.float64)).output
    errors = []
    for planes in ("1", "2"):
        out = root / f"planes{planes}.tflite"
        assert main([*base, "-o", str(out), "--weight-planes", planes]) == 0
        with open_runner(out, "auto", probe=False) as runner:
            errors.append(float(np.abs(np.asarray(runner.run(x[:1])[0]) - ref).max()))
    capsys.readouterr()
    assert errors[1] < 0.5 * errors[0], errors
    out = root / "fused.tflite"
    args = ["compile", str(root / "m.npz"), "-o", str(out), "--quantize", "int8"]
    args += ["--calibration", str(root / "cal.npy"), "--weight-planes", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--weight-planes 2 applies to the all-integer" in err and "Traceback" not in err
    assert not out.exists()


def test_weight_planes_reach_the_tflm_profile(source, capsys):
    """``--target tflm --quantize int8 --weight-planes 2``: the microcontroller file carries
    the second planes (the TFLM profile rebuilds its options; the flag must survive that)."""
    root, _, _ = source
    out = root / "tflm2.tflite"
    args = ["compile", str(root / "m.npz"), "-o", str(out), "--quantize", "int8", "--overwrite"]
    args += ["--calibration", str(root / "cal.npy"), "--seq-len", str(T), "--target", "tflm"]
    assert main([*args, "--weight-planes", "2"]) == 0
    capsys.readouterr()
    names = {t.name for op in inspect_model(out).ops for t in op.inputs if t is not None}
    assert any(n.endswith("recurrent_weights_lo") for n in names), sorted(names)
    assert main(["inspect", str(out)]) == 0
    assert "weights in 2 int8 planes" in capsys.readouterr().out

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

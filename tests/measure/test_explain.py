"""``verify --explain`` / :func:`explain_int8`: the stage it names is the one that was broken."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from edgelstm import LSTMSpec, LSTMWeights, save_npz
from edgelstm.cli.main import main
from edgelstm.measure.explain_file import explain_int8
from edgelstm.quant.model_plan import quantize_model

SPEC = LSTMSpec(n_input=4, n_cell=8)


def test_clipped_input_is_named(rng):
    """Calibrated on a tenth of the held-out range: the int8 input clips."""
    w = LSTMWeights.random(SPEC, seed=1)
    x = rng.normal(size=(8, 10, 4))
    report = explain_int8(w, x, calibration=0.1 * x)
    rows = {r.tensor: r for r in report.tensors}
    assert rows["input"].saturated > 0.3
    assert report.culprit == "input"
    assert report.ablations["input"][0] < 0.5 * report.output_rmse_lsb


def test_coarse_weights_are_named(rng):
    """Outlier input weights on a tiny input feature stretch the int8 grid (and nothing
    else): the weights are the cause."""
    tensors = dict(LSTMWeights.random(SPEC, seed=2).tensors)
    for name in list(tensors):
        if name.startswith("input_to_"):
            t = np.array(tensors[name])
            t[0, 0], t[1, 0] = 30.0, -30.0
            tensors[name] = t
    w = LSTMWeights(SPEC, tensors)
    x = rng.normal(size=(8, 10, 4))
    x[..., 0] *= 0.01
    plan = quantize_model(w, x, rounding="nearest")
    report = explain_int8(w, x, plan=plan)
    assert report.culprit == "weights", report.format()
    assert report.runtime_mismatch == 0.0


def _run(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_cli_explain_reads_the_plan_from_the_file(tmp_path, rng):
    src = tmp_path / "m.npz"
    save_npz(LSTMWeights.random(LSTMSpec(n_input=4, n_cell=8, n_output=4, projection=True)), src)
    np.save(tmp_path / "x.npy", rng.normal(size=(6, 9, 4)).astype(np.float32))
    out = tmp_path / "m_int8.tflite"
    code, _, _ = _run(
        ["compile", str(src), "-o", str(out), "--quantize", "int8",
         "--calibration", str(tmp_path / "x.npy")]
    )  # fmt: skip
    assert code == 0
    args = ["verify", str(out), "--against", str(src), "--data", str(tmp_path / "x.npy")]
    code, text, _ = _run([*args, "--explain"])
    assert code == 0
    assert "replay vs LiteRT: 0.000%" in text and "gate.forget" in text and "cause:" in text
    code, text, _ = _run([*args, "--explain", "--json"])
    report = json.loads(text)["explain"]
    assert report["runtime_mismatch"] == 0.0 and len(report["tensors"]) == 8  # + hidden
    api = explain_int8(out, np.load(tmp_path / "x.npy"), source=src)  # the API on the file
    assert api.runtime_mismatch == 0.0 and api.output_rmse_lsb == report["output_rmse_lsb"]


def test_cli_explain_refuses_a_float_file(tmp_path):
    src = tmp_path / "m.npz"
    save_npz(LSTMWeights.random(SPEC), src)
    out = tmp_path / "m.tflite"
    assert _run(["compile", str(src), "-o", str(out)])[0] == 0
    code, _, err = _run(["verify", str(out), "--explain"])
    assert code == 2 and "full-int8" in err and "Traceback" not in err


@pytest.mark.parametrize("stage", ["weights", "input", "gates", "cell", "state"])
def test_every_ablation_is_reported(stage, rng):
    w = LSTMWeights.random(SPEC, seed=5)
    report = explain_int8(w, rng.normal(size=(4, 6, 4)), check_runtime=False)
    assert stage in report.ablations

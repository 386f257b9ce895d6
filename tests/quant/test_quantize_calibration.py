"""Calibration data loading, the calibration pass and the range estimators."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import CalibrationError, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference
from edgelstm.measure.data import load_calibration
from edgelstm.quant import calibrate
from edgelstm.quant.batches import as_batches, validate_calibration
from edgelstm.quant.estimators import Observer, estimate

# -- loading -----------------------------------------------------------------------------------


def test_load_npy_and_npz(tmp_path, rng):
    x = rng.normal(size=(3, 5, 2))
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x)
    np.savez(tmp_path / "c.npz", calibration=x, labels=np.arange(3))
    for name in ("a.npy", "b.npz", "c.npz"):
        got = load_calibration(tmp_path / name)
        assert got.dtype == np.float32 and got.shape == (3, 5, 2)
        np.testing.assert_allclose(got, x.astype(np.float32))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((0, 5, 2)), "empty"),
        (np.zeros((4, 2)), "rank-3"),
        (np.full((2, 3, 2), np.nan), "NaN or inf"),
        (np.ones((2, 3, 2)), "constant"),
        (np.array([["a"]]), "real numbers"),
    ],
)
def test_bad_arrays_are_refused(tmp_path, data, message):
    np.save(tmp_path / "x.npy", data)
    with pytest.raises(CalibrationError, match=message):
        load_calibration(tmp_path / "x.npy")


def test_file_problems_are_calibration_errors(tmp_path, rng):
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "missing.npy")
    with pytest.raises(CalibrationError, match=r"\.npy or \.npz"):
        load_calibration(tmp_path / "x.csv")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(CalibrationError, match="not a readable"):
        load_calibration(tmp_path / "junk.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CalibrationError, match="pickle"):
        load_calibration(tmp_path / "obj.npy")
    np.savez(tmp_path / "two.npz", a=rng.normal(size=(1, 2, 2)), b=rng.normal(size=(1, 2, 2)))
    with pytest.raises(CalibrationError, match="'calibration'"):
        load_calibration(tmp_path / "two.npz")
    assert load_calibration(f"{tmp_path / 'two.npz'}:b").shape == (1, 2, 2)
    with pytest.raises(CalibrationError, match="no array 'c'"):
        load_calibration(f"{tmp_path / 'two.npz'}:c")


def test_cli_compiles_int8(tmp_path, rng, capsys):
    from edgelstm.cli.main import main
    from edgelstm.importers.npz import save_npz

    w = LSTMWeights.random(LSTMSpec(3, 8), seed=1)
    save_npz(w, tmp_path / "m.npz")
    np.savez(tmp_path / "cal.npz", x=rng.normal(size=(4, 6, 3)), y=np.arange(4))
    out = tmp_path / "m8.tflite"
    args = ["compile", str(tmp_path / "m.npz"), "-o", str(out), "--quantize", "int8"]
    assert main([*args, "--calibration", f"{tmp_path / 'cal.npz'}:x"]) == 0
    assert out.stat().st_size > 0 and "quantize=int8" in capsys.readouterr().out
    out.unlink()
    assert main(args) == 2  # no calibration: one readable error line, no file
    assert "needs calibration" in capsys.readouterr().err and not out.exists()


def test_iterables_and_feature_check(rng):
    items = [rng.normal(size=(7, 3)), rng.normal(size=(2, 4, 3))]  # lengths may differ
    batches = list(as_batches(items, n_input=3))
    assert [b.shape for b in batches] == [(1, 7, 3), (2, 4, 3)]
    with pytest.raises(CalibrationError, match="I = 4"):
        validate_calibration(rng.normal(size=(2, 3, 3)), n_input=4)
    with pytest.raises(CalibrationError, match="no sequences"):
        list(as_batches(iter([]), n_input=3))
    with pytest.raises(CalibrationError, match="constant"):
        list(as_batches([np.zeros((2, 3)), np.zeros((4, 3))], n_input=3))


# -- the calibration pass ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        LSTMSpec(3, 8, cifg=True, peephole=True, cell_clip=0.5),
        LSTMSpec(3, 8, 4, projection=True, projection_bias=True, proj_clip=0.2, layer_norm=True),
    ],
)
def test_calibration_pass_is_the_reference(spec, rng):
    """Calibration observes reference() itself: its output range is the reference's, and a
    reverse layer is seen in processing order (the observer cannot drift from the oracle).
    Calibration runs the reference in float32 (ranges need no float64): exact against that,
    and within float32 rounding of the float64 oracle."""
    w = LSTMWeights.random(spec, seed=3)
    x = rng.normal(size=(4, 9, 3)).astype(np.float32)  # calibration data is float32
    for layer in (LSTMLayer(w), LSTMLayer(w, reverse=True)):
        stats = calibrate(LSTMModel((layer,)), x).direction()
        xs = x[:, ::-1] if layer.reverse else x
        y = reference(w, xs, dtype=np.float32)[0]
        assert (stats.observers["output"].lo, stats.observers["output"].hi) == (y.min(), y.max())
        y64 = reference(w, xs)[0]
        assert stats.observers["output"].lo == pytest.approx(y64.min(), abs=1e-6)
        assert stats.observers["output"].hi == pytest.approx(y64.max(), abs=1e-6)
        assert stats.steps == 4 * 9


def test_calibration_records_the_kernel_quantities(rng):
    spec = LSTMSpec(3, 8, 4, projection=True, layer_norm=True, cifg=True)
    w = LSTMWeights.random(spec, seed=1)
    x = rng.normal(size=(5, 6, 3))
    stats = calibrate(w, x).direction()
    names = set(stats.observers)
    assert {"input", "output", "hidden", "cell", "gate.forget", "gate.cell", "gate.output"} <= names
    assert "gate.input" not in names  # CIFG has no input gate
    y, (_, c) = reference(w, x)
    assert stats.observers["output"].hi == pytest.approx(y.max())
    assert stats.observers["input"].lo == pytest.approx(x.min())
    assert stats.observers["cell"].absmax >= np.abs(c).max()


def test_stacked_bidirectional_calibration(rng):
    a = LSTMWeights.random(LSTMSpec(3, 4), seed=1)
    b = LSTMWeights.random(LSTMSpec(3, 4), seed=2)
    c = LSTMWeights.random(LSTMSpec(8, 5), seed=3)
    from edgelstm import LSTMLayer

    model = LSTMModel((LSTMLayer(a, b), LSTMLayer(c)))
    calib = calibrate(model, rng.normal(size=(2, 5, 3)))
    assert [len(s) for s in calib.stats] == [2, 1]
    assert calib.stats[1][0].observers["input"].count == 2 * 5 * 8
    assert calib.sequences == 2


# -- estimators --------------------------------------------------------------------------------


def test_observer_keeps_exact_extremes_and_a_bounded_sample(rng):
    obs = Observer(cap=1000)
    data = rng.normal(size=20_000)
    for chunk in np.split(data, 20):
        obs.update(chunk)
    assert obs.lo == data.min() and obs.hi == data.max() and obs.count == 20_000
    assert obs.sample.size == 1000
    assert abs(np.median(obs.sample)) < 0.15  # a uniform sample of the data


def test_estimators_order(rng):
    obs = Observer()
    obs.update(np.concatenate([rng.normal(size=50_000), [40.0, -35.0]]))  # two outliers
    lo_mm, hi_mm = estimate(obs, "minmax", symmetric=False)
    lo_p, hi_p = estimate(obs, "percentile", symmetric=False)
    lo_m, hi_m = estimate(obs, "mse", symmetric=False)
    assert (lo_mm, hi_mm) == (-35.0, 40.0)
    assert hi_p < 6 and lo_p > -6  # the outliers are ignored
    assert hi_m < hi_mm and lo_m > lo_mm
    assert estimate(obs, "minmax", symmetric=True) == (-40.0, 40.0)
    with pytest.raises(ValueError, match="unknown range estimator"):
        estimate(obs, "nope", symmetric=True)

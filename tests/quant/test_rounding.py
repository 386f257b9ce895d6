"""Compensated weight rounding: lower product error than nearest, on held-out data too."""

from __future__ import annotations

import numpy as np

from edgelstm import LSTMSpec, LSTMWeights
from edgelstm.measure.int8_error import evaluate_int8
from edgelstm.quant.rounding import compensated_rounding


def _correlated(rng, mix, n):
    return rng.normal(size=(n, mix.shape[0])) @ mix + 0.5


def test_product_error_drops_on_held_out_inputs(rng):
    d, rows = 24, 10
    w = rng.normal(size=(rows, d)) * np.r_[np.ones(d - 1) * 0.2, 3.0]  # one outlier column
    scales = np.full(d, np.abs(w).max() / 127)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)  # one input distribution for both sets
    cal, held = _correlated(rng, mix, 4000), _correlated(rng, mix, 4000)
    nearest = np.clip(np.rint(w / scales), -127, 127) * scales
    comp = compensated_rounding(w, scales, cal.T @ cal / len(cal))
    assert np.allclose(comp / scales, np.rint(comp / scales))  # on the grid
    err = lambda q: np.mean(((w - q) @ held.T) ** 2)  # noqa: E731
    assert err(comp) < 0.7 * err(nearest)  # measured 0.52


def test_exact_column_absorbs_the_mean_error(rng):
    d = 8
    w = rng.normal(size=(4, d + 1))
    scales = np.r_[np.full(d, 0.05), 1.0]
    u = np.c_[rng.normal(size=(3000, d)) + 1.0, np.ones(3000)]
    q = compensated_rounding(w, scales, u.T @ u / len(u), exact_columns=1)
    assert np.allclose(q[:, :d] / 0.05, np.rint(q[:, :d] / 0.05))
    mean_error = ((w - q) @ u.T).mean(axis=1)
    assert np.abs(mean_error).max() < 1e-3


def test_unseen_columns_keep_nearest_codes(rng):
    w = rng.normal(size=(3, 6))
    scales = np.full(6, 0.02)
    u = rng.normal(size=(500, 6))
    u[:, 2] = 0.0  # never active in calibration (e.g. a character absent from the text)
    q = compensated_rounding(w, scales, u.T @ u / len(u))
    assert np.allclose(q[:, 2], np.rint(w[:, 2] / 0.02) * 0.02)


def test_random_weights_do_not_regress(rng):
    spec = LSTMSpec(n_input=8, n_cell=16, n_output=8, projection=True)
    w = LSTMWeights.random(spec, seed=4)
    cal, held = rng.normal(size=(32, 12, 8)), rng.normal(size=(32, 12, 8))
    near = evaluate_int8(w, cal, held, rounding="nearest")[0]
    comp = evaluate_int8(w, cal, held, rounding="compensated")[0]
    assert comp.rmse <= 1.05 * near.rmse, (comp, near)


def test_per_channel_blocks_beat_nearest_on_the_joint_objective():
    """W and R of the stacked gates rounded together per output channel: E[((W-Q) u)^2]
    (numpy, u = [x; h; 1] correlated) below nearest rounding's, the same per-channel scales,
    and the bias absorbing the mean error."""
    from edgelstm.quant.rounding import compensated_channels
    from edgelstm.quant.tensor import quantize_symmetric

    rng = np.random.default_rng(3)
    rows, n_in, n_h, samples = 32, 12, 16, 4000
    mix = rng.standard_normal((n_in + n_h, n_in + n_h))
    u = rng.standard_normal((samples, n_in + n_h)) @ mix + 0.5
    u = np.concatenate([u, np.ones((samples, 1))], axis=1)
    hess = u.T @ u / samples
    w = rng.standard_normal((rows, n_in)) * rng.uniform(0.2, 2.0, (rows, 1))
    r = rng.standard_normal((rows, n_h))
    bias = rng.standard_normal(rows)
    (qw, qr), fitted = compensated_channels([w, r], hess, bias)

    def loss(w2, r2, b2):
        err = np.concatenate([w - w2, r - r2, (bias - b2)[:, None]], axis=1)
        return float(np.mean((u @ err.T) ** 2))

    def deq(qt):
        return qt.data.astype(np.float64) * np.asarray(qt.params.scales)[:, None]

    near_w, near_r = quantize_symmetric(w, "int8", axis=0), quantize_symmetric(r, "int8", axis=0)
    assert qw.params == near_w.params and qr.params == near_r.params
    assert np.abs(qw.data.astype(int)).max() <= 127 and np.abs(qr.data.astype(int)).max() <= 127
    ours, nearest = loss(deq(qw), deq(qr), fitted), loss(deq(near_w), deq(near_r), bias)
    assert ours < 0.6 * nearest, (ours, nearest)

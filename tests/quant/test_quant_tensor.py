"""The one quantizer (:mod:`edgelstm.quant.tensor`): codes and params, checked by dequantizing.

Every target's arithmetic goes through it; the emitted files are pinned byte for byte by the
target tests, so these check the properties the targets rely on.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm.quant.qparams import ChannelParams, QuantParams
from edgelstm.quant.tensor import (
    product_bias,
    quantize_bias,
    quantize_symmetric,
    to_codes,
    uint8_asymmetric,
)


def test_per_channel_rows_use_the_full_narrow_range(rng):
    w = rng.normal(size=(6, 9)) * np.array([[1e-3], [1], [10], [0], [5], [0.1]])
    qt = quantize_symmetric(w, "int8", axis=0)
    assert isinstance(qt.params, ChannelParams) and qt.params.axis == 0
    peaks = np.abs(qt.data.astype(int)).max(axis=1)
    assert list(peaks) == [127, 127, 127, 0, 127, 127]  # never -128
    assert qt.params.scales[3] == 1.0  # an all-zero row
    steps = np.asarray(qt.params.scales)[:, None]
    assert np.all(np.abs(qt.dequantize() - w) <= steps / 2 * (1 + 1e-6))


def test_per_tensor_min_scale_and_exact_divisor(rng):
    w = rng.normal(size=(4, 5))
    qt = quantize_symmetric(w, "int16", min_scale=1.0)
    assert qt.params.scale >= 1.0 and qt.dtype == "int16"
    exact = quantize_symmetric(w, "int8", divisor="exact")
    stored = quantize_symmetric(w, "int8")
    assert exact.params == stored.params  # same params, codes at most one apart
    assert np.abs(exact.data.astype(int) - stored.data).max() <= 1
    with pytest.raises(ValueError, match="min_scale"):
        quantize_symmetric(w, "int8", min_scale=1.0, divisor="exact")


def test_bias_fits_or_saturates():
    with pytest.raises(OverflowError, match="int32"):
        quantize_bias(np.array([1.0]), 1e-12)
    qt = product_bias(
        np.array([1.0, -1.0, 0.25]), 1e-6, ChannelParams((1e-6, 1e-6, 1.0), (0, 0, 0), "int8")
    )
    assert list(qt.data) == [2**31 - 1, -(2**31) + 1, 250000]
    assert qt.params.scales[2] == pytest.approx(1e-6)


def test_uint8_keeps_zero_exact(rng):
    w = rng.uniform(-0.2, 1.0, size=(8, 3)).astype(np.float32)
    qt = uint8_asymmetric(w)
    assert qt.dtype == "uint8" and isinstance(qt.params, QuantParams)
    assert to_codes(np.zeros(1, np.float32), qt.params.scale, qt.params.zero_point, "uint8")[0] == (
        qt.params.zero_point
    )
    assert np.abs(qt.dequantize() - w).max() <= qt.params.scale / 2 * (1 + 1e-5)


def test_codes_follow_the_precision_of_the_values():
    """float32 values are divided in float32, as a runtime quantizes its float32 input (here
    many halves k + 0.5 round differently in float64)."""
    x = np.arange(1, 20000, dtype=np.float32) * np.float32(0.05)
    got = to_codes(x, 0.1, 0, "int32")
    assert np.array_equal(got, np.rint(x / np.float32(0.1)))
    assert not np.array_equal(got, np.rint(x.astype(np.float64) / 0.1))

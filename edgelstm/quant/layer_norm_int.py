"""The integer layer norm of TFLite's 8x8_16 LSTM kernel (``ApplyLayerNorm``), in numpy.

Per row: mean and variance of the int16 gate accumulator in fixed point (the variance is
exact only when n_cell is a power of two: ``2^20 / n`` is an integer division), an inverse
square root by five Newton-Raphson steps in int32 Q3.28 (``GetInvSqrtQuantizedMultiplierExp``),
then ``coef * normalised + bias`` rescaled to Q3.12 and saturated to int16.
"""

from __future__ import annotations

import numpy as np

from edgelstm.quant.fixedpoint import multiply_by_quantized_multiplier

I32_MAX = 2**31 - 1


def _c_div(a: int, b: int) -> int:
    """C integer division (truncation toward zero) on Python ints."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _rdpot(x: int, exponent: int) -> int:
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _srdhm(a: int, b: int) -> int:
    if a == b == -(2**31):
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _c_div(ab + nudge, 1 << 31)


def _wrap32(v: int) -> int:
    return ((v + 2**31) & 0xFFFFFFFF) - 2**31


def _mul_pot(x: int, exponent: int) -> int:
    """Saturating left shift (exponent > 0) of an int32 fixed-point raw value."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return I32_MAX
    if x < -threshold:
        return -(2**31)
    return _wrap32(x << exponent)


def inv_sqrt_multiplier(value: int, reverse_shift: int = -1) -> tuple[int, int]:
    """(multiplier, shift) of 1/sqrt(value) as the kernel computes it."""
    if value <= 1:
        return I32_MAX, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    max_left_bits = (32 - value.bit_length()) - 1
    pairs = max_left_bits // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    half_input = _rdpot(value >> 1, 1)
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28  # F3 one
    for _ in range(5):
        x3 = _mul_pot(_srdhm(_srdhm(x, x), x), 6)
        x = _mul_pot(_wrap32(_srdhm(half_three, x) - _srdhm(half_input, x3)), 3)
    x = _srdhm(x, 1518500250)
    if shift < 0:
        x <<= -shift
        shift = 0
    return x, shift * reverse_shift


def apply_layer_norm(
    acc: np.ndarray,
    coef: np.ndarray,
    bias: np.ndarray,
    scale: tuple[int, int],
    guard: int,
) -> np.ndarray:
    """int16 Q3.12 gate pre-activations from int16 accumulators ``acc`` [..., n]."""
    shape = acc.shape
    rows = acc.reshape(-1, shape[-1]).astype(np.int64)
    n = rows.shape[1]
    out = np.empty_like(rows)
    temp = (1 << 20) // n
    for k, row in enumerate(rows):
        total, total_sq = int(row.sum()), int((row * row).sum())
        mean = _c_div(total * 1024, n)
        variance = total_sq * temp - mean * mean
        var2 = _c_div(variance, 1 << 20)
        if var2 < 1:
            var2 = guard
        a, b = inv_sqrt_multiplier(var2)
        rescaled = multiply_by_quantized_multiplier(1024 * row - mean, a, b)
        val3 = rescaled * coef + bias
        val4 = np.where(val3 > 0, val3 + 512, val3 - 512)
        val4 = np.where(val4 < 0, -((-val4) // 1024), val4 // 1024)
        val5 = multiply_by_quantized_multiplier(val4, scale[0], scale[1] + 12)
        out[k] = np.clip(val5, -32768, 32767)
    return out.reshape(shape)

"""The integer arithmetic of TFLite's 8x8_16 LSTM kernel, in numpy, bit for bit.

Written from the kernel's documented behaviour (``lstm_eval.cc`` integer path,
``portable_tensor_utils.cc``, gemmlowp's fixed-point rules) so that a diagnosis can replay the
kernel step by step (:mod:`edgelstm.quant.kernel_sim`):

* :func:`quantize_multiplier` / :func:`multiply_by_quantized_multiplier` — a real scale as an
  int32 multiplier and a shift, applied with two roundings (the default, non single-rounding
  build);
* :func:`rounding_divide_by_pot` — the rounding arithmetic right shift;
* :func:`sigmoid_table` / :func:`tanh_table` — the int16 fixed-point logistic (input Q3.12)
  and tanh (input with ``integer_bits``), evaluated once over all 65536 inputs with the same
  int16 operations (wrapping adds, rounding doubling high multiplies, Newton-Raphson) and
  used as lookup tables.

Arrays hold integers in int64 so no intermediate overflows where the kernel's would not.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

I16_MIN, I16_MAX = -32768, 32767


def quantize_multiplier(scale: float) -> tuple[int, int]:
    """(int32 multiplier, shift) with ``scale = multiplier * 2^(shift - 31)`` (TFLite's rule)."""
    if scale == 0:
        return 0, 0
    q, shift = math.frexp(float(scale))
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # std::round (q > 0)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return q_fixed, shift


def _trunc_div(a: np.ndarray, d: int) -> np.ndarray:
    """C integer division (truncation toward zero)."""
    q = np.abs(a) // d
    return np.where(a < 0, -q, q)


def rounding_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """Round-to-nearest (ties away from zero) arithmetic right shift."""
    x = np.asarray(x, dtype=np.int64)
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def _srdhm32(a: np.ndarray, b: int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int32 values."""
    ab = a * np.int64(b)
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = _trunc_div(ab + nudge, 1 << 31)
    overflow = (a == b) & (a == -(2**31))
    return np.where(overflow, 2**31 - 1, out)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """``x * multiplier * 2^(shift-31)`` rounded as the kernel rounds it (two roundings)."""
    x = np.asarray(x, dtype=np.int64)
    left, right = max(shift, 0), max(-shift, 0)
    return rounding_divide_by_pot(_srdhm32(x * (1 << left), multiplier), right)


# -- gemmlowp int16 fixed point -----------------------------------------------------------


def _w16(v: np.ndarray) -> np.ndarray:
    """static_cast<int16_t>: two's-complement wrap."""
    return ((v + 32768) & 0xFFFF) - 32768


def _mul16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """int16 SaturatingRoundingDoublingHighMul."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    out = _w16(_trunc_div(ab + nudge, 1 << 15))
    return np.where((a == b) & (a == I16_MIN), I16_MAX, out)


def _rdpot16(x: np.ndarray, exponent: int) -> np.ndarray:
    return rounding_divide_by_pot(x, exponent)


def _mul_pot16(x: np.ndarray, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT for int16 raw values."""
    if exponent == 0:
        return x
    if exponent < 0:
        return _rdpot16(x, -exponent)
    threshold = (1 << (15 - exponent)) - 1
    out = _w16(x * (1 << exponent))
    out = np.where(x > threshold, I16_MAX, out)
    return np.where(x < -threshold, I16_MIN, out)


def _const16(raw32: int) -> int:
    """An int32 fixed-point constant as int16 (rounding shift by 16)."""
    return int(rounding_divide_by_pot(np.int64(raw32), 16))


def _exp_quarter(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), a and result Q0.15."""
    constant = _const16(1895147668)
    one_third = _const16(715827883)
    x = _w16(a + (1 << 12))
    x2 = _mul16(x, x)
    x3 = _mul16(x2, x)
    x4 = _mul16(x2, x2)
    x4_4 = _mul_pot16(x4, -2)
    poly = _mul_pot16(_w16(_mul16(_w16(x4_4 + x3), one_third) + x2), -1)
    s = constant + _mul16(np.full_like(x, constant), _w16(x + poly))
    return np.clip(s, I16_MIN, I16_MAX)


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
           (3, 720401), (4, 242))  # fmt: skip


def _exp_negative(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 with ``integer_bits``; result Q0.15."""
    frac = 15 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = _w16((a & (quarter - 1)) - quarter)
    result = _exp_quarter(_mul_pot16(a_mod, integer_bits))
    remainder = _w16(a_mod - a)
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where(remainder & bit, _mul16(result, _const16(multiplier)), result)
    if integer_bits > 5:
        clamp = _const16(-(1 << (36 - integer_bits)))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, I16_MAX, result)


def _newton_reciprocal(a: np.ndarray) -> np.ndarray:
    """x ~ 1 / half_denominator in Q2.13 (three Newton-Raphson steps), half_den = (a+1)/2."""
    half = _trunc_div(a + I16_MAX + np.where(a + I16_MAX >= 0, 1, -1), 2)
    x = _w16(_const16(1515870810) + _mul16(half, _const16(-1010580540)))
    for _ in range(3):
        one_minus = _w16((1 << 13) - _mul16(half, x))
        x = _w16(x + _mul_pot16(_mul16(x, one_minus), 2))
    return x


@cache
def sigmoid_table() -> np.ndarray:
    """logistic of every int16 Q3.12 input as Q0.15 (index: raw + 32768)."""
    a = np.arange(I16_MIN, I16_MAX + 1, dtype=np.int64)
    positive = a > 0
    absolute = np.where(positive, a, _w16(-a))
    e = _exp_negative(_w16(-absolute), 3)
    result_pos = _mul_pot16(_newton_reciprocal(e), 1)  # Rescale<0>(x / 2) of Q2.13 -> Q0.15
    result_neg = _w16(I16_MAX - result_pos)
    out = np.where(positive, result_pos, result_neg)
    return np.where(a == 0, _const16(1 << 30), out).astype(np.int16)


@cache
def tanh_table(integer_bits: int) -> np.ndarray:
    """tanh of every int16 input with ``integer_bits`` as Q0.15 (index: raw + 32768)."""
    a = np.arange(I16_MIN, I16_MAX + 1, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, _w16(-a))
    e = _exp_negative(n, integer_bits + 1)  # ExactMulByPot<1>: same raw, one more bit
    t = _mul_pot16(_w16(_newton_reciprocal(e) - (1 << 13)), 2)
    out = np.where(negative, _w16(-t), t)
    return np.where(a == 0, 0, out).astype(np.int16)


def lookup(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``table`` applied to int16 ``codes``."""
    return table[np.asarray(codes, dtype=np.int64) + 32768].astype(np.int64)

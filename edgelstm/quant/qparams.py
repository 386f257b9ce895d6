"""Affine quantization parameters and the integer-kernel rules for choosing them.

Every scale is rounded to float32 the moment it is chosen: the .tflite file stores float32
scales and the kernel derives its fixed-point multipliers from those, so the integers we
compute (biases, clips) must be computed from exactly the same float32 values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

IntDType = Literal["int8", "int16", "int32"]

INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "int16": (-32768, 32767),
    "int32": (-(2**31), 2**31 - 1),
}

CELL_SCALE_EXPONENTS = range(-15, -8)
"""Allowed k of the cell-state scale 2^k: ApplyTanh(15 + k) has 0..6 integer bits only."""


def f32(value: float) -> float:
    """``value`` rounded to float32 (as the flatbuffer will store it), as a Python float."""
    return float(np.float32(value))


@dataclass(frozen=True)
class QuantParams:
    """Per-tensor affine quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int
    dtype: IntDType

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"QuantParams.scale: expected a finite value > 0, found {self.scale}")
        lo, hi = INT_RANGES[self.dtype]
        if not lo <= self.zero_point <= hi:
            raise ValueError(f"QuantParams.zero_point: {self.zero_point} outside {self.dtype}")
        object.__setattr__(self, "scale", f32(self.scale))
        object.__setattr__(self, "zero_point", int(self.zero_point))

    @property
    def qmin(self) -> int:
        return INT_RANGES[self.dtype][0]

    @property
    def qmax(self) -> int:
        return INT_RANGES[self.dtype][1]

    @property
    def real_range(self) -> tuple[float, float]:
        """The real interval the integer range covers."""
        return (
            self.scale * (self.qmin - self.zero_point),
            self.scale * (self.qmax - self.zero_point),
        )

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Saturating quantization exactly as TFLite's QUANTIZE: float32 division, rounding
        half away from zero (std::round), plus the zero point."""
        v = np.asarray(x, dtype=np.float32) / np.float32(self.scale)
        q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + self.zero_point
        return np.clip(q, self.qmin, self.qmax).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, dtype=np.float64) - self.zero_point) * self.scale


def asymmetric_int8(lo: float, hi: float) -> QuantParams:
    """int8 params covering [lo, hi] extended to contain 0 (so 0, the initial state, is exact)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0:
        return QuantParams(1.0 / 128, 0, "int8")
    scale = f32((hi - lo) / 255.0)
    zero_point = int(np.clip(round(-128 - lo / scale), -128, 127))
    return QuantParams(scale, zero_point, "int8")


def symmetric(absmax: float, dtype: IntDType) -> QuantParams:
    """Zero-point-0 params with ``absmax`` at the largest positive code (all-zero → scale 1)."""
    absmax = float(absmax)
    qmax = INT_RANGES[dtype][1]
    if not absmax > 0:
        return QuantParams(1.0, 0, dtype)
    return QuantParams(absmax / qmax, 0, dtype)


def symmetric_weights(values: np.ndarray, dtype: IntDType, min_scale: float = 0.0) -> QuantParams:
    """Symmetric per-tensor params for a constant tensor, at least ``min_scale``."""
    absmax = float(np.max(np.abs(values))) if np.size(values) else 0.0
    params = symmetric(absmax, dtype)
    if params.scale < min_scale:
        params = QuantParams(min_scale * (1 + 2**-20), 0, dtype)
    return params


def quantize_constant(values: np.ndarray, params: QuantParams) -> np.ndarray:
    """Quantize a constant tensor; symmetric tensors use the symmetric range (no -128 / -32768).

    The kernels multiply by these codes; keeping the range symmetric makes ``-w`` exact.
    """
    q = np.round(np.asarray(values, dtype=np.float64) / params.scale) + params.zero_point
    lo = params.qmin + (1 if params.zero_point == 0 and params.dtype != "int32" else 0)
    return np.clip(q, lo, params.qmax).astype(params.dtype)


def quantize_bias(values: np.ndarray, scale: float) -> np.ndarray:
    """int32 bias codes at ``scale`` (the product of two float32 scales, kept in float64)."""
    q = np.round(np.asarray(values, dtype=np.float64) / scale)
    lo, hi = INT_RANGES["int32"]
    if q.size and (q.min() < lo or q.max() > hi):
        raise OverflowError(f"bias does not fit int32 at scale {scale:g}")
    return q.astype(np.int32)


def cell_scale_exponent(absmax: float) -> int:
    """Smallest k in [-15, -9] whose int16 range ±2^(15+k) covers ``absmax`` (else -9)."""
    for k in CELL_SCALE_EXPONENTS:
        if absmax <= 2.0 ** (15 + k) * (32767 / 32768):
            return k
    return CELL_SCALE_EXPONENTS[-1]


def kernel_clip_int16(clip: float, scale: float) -> int:
    """What the kernel computes for cell_clip: trunc(min(max(clip/scale, -32768), 32767))."""
    return int(np.float32(min(max(np.float32(clip) / np.float32(scale), -32768.0), 32767.0)))


def kernel_clip_int8(clip: float, scale: float) -> int:
    """What the kernel computes for proj_clip: trunc(min(max(clip/scale, -128), 127))."""
    return int(np.float32(min(max(np.float32(clip) / np.float32(scale), -128.0), 127.0)))

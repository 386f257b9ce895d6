"""Affine quantization parameters (format-neutral types) and the rules for choosing them.

:class:`QuantParams` is one (scale, zero point) for a whole tensor, :class:`ChannelParams`
one per slice along an axis. Nothing here knows a file format: the TFLite writer turns them
into its ``Quantization`` (:mod:`edgelstm.targets.tflite.quant_desc`), the ONNX pass into
initializers. The arithmetic that turns float arrays into codes is :mod:`.tensor`.

Every scale is rounded to float32 the moment it is chosen: the .tflite file stores float32
scales and the kernel derives its fixed-point multipliers from those, so the integers we
compute (biases, clips) must be computed from exactly the same float32 values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

IntDType = Literal["int8", "uint8", "int16", "int32"]

INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "uint8": (0, 255),
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


@dataclass(frozen=True)
class ChannelParams:
    """Per-channel affine quantization: slice ``i`` along ``axis`` has
    ``real = scales[i] * (q - zero_points[i])``."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    dtype: IntDType
    axis: int = 0

    def __post_init__(self) -> None:
        scales = tuple(f32(s) for s in self.scales)
        if len(self.zero_points) != len(scales):
            raise ValueError(
                f"ChannelParams: {len(scales)} scales but {len(self.zero_points)} zero points"
            )
        if not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError("ChannelParams.scales: expected finite values > 0")
        lo, hi = INT_RANGES[self.dtype]
        if not all(lo <= z <= hi for z in self.zero_points):
            raise ValueError(f"ChannelParams.zero_points: outside {self.dtype}")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "zero_points", tuple(int(z) for z in self.zero_points))

    def broadcast(self, values: tuple[float, ...] | tuple[int, ...], ndim: int) -> np.ndarray:
        """``values`` (scales or zero points) shaped to broadcast against an ndim-array."""
        shape = [1] * ndim
        shape[self.axis] = len(values)
        return np.asarray(values, dtype=np.float64).reshape(shape)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        zero = self.broadcast(self.zero_points, q.ndim)
        return (q - zero) * self.broadcast(self.scales, q.ndim)


Params = QuantParams | ChannelParams


def asymmetric(
    lo: float, hi: float, dtype: IntDType = "int8", empty_scale: float = 1.0
) -> QuantParams:
    """Params covering [lo, hi] extended to contain 0 (so 0, a zero state or a zero weight,
    is exact); an empty range gets ``empty_scale`` and zero point 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0:
        return QuantParams(empty_scale, 0, dtype)
    qmin, qmax = INT_RANGES[dtype]
    scale = f32((hi - lo) / (qmax - qmin))
    zero_point = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return QuantParams(scale, zero_point, dtype)


def asymmetric_int8(lo: float, hi: float) -> QuantParams:
    """int8 activation params covering [lo, hi] and 0 (an empty range: scale 1/128)."""
    return asymmetric(lo, hi, "int8", empty_scale=1.0 / 128)


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

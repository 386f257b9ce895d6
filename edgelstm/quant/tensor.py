"""The one quantizer: float arrays to integer codes plus format-neutral params.

Params types and the rules that choose them live in :mod:`.qparams`; this module does the
arithmetic, for every target and runner: the fused int8 plan, the hybrid op's weights, the
unfused lowering's per-channel matrices and biases, onnxruntime's dynamic-int8 weight
schemes, the runners' input quantization. Only the writers turn the results into file
structures (:func:`edgelstm.targets.tflite.quant_desc.quantization` for TFLite,
:mod:`edgelstm.targets.onnx.weight_schemes` for ONNX initializers).

Rounding is half to even (``np.rint``) in the precision of the values given: float32 values
are divided in float32 (a Python-float scale does not widen them), float64 values in
float64. Symmetric constants use the narrow range (no -128 / -32768): the kernels multiply
by these codes, and a symmetric range makes ``-w`` exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgelstm.quant.qparams import (
    INT_RANGES,
    ChannelParams,
    IntDType,
    Params,
    QuantParams,
    asymmetric,
    symmetric_weights,
)

PAIR_LIMIT = 128
"""Largest |q_k| + |q_k+1| of int8 weights read by u8 x s8 kernels that add adjacent
products in int16 (x86 ``vpmaddubsw`` without VNNI): 255 * 128 = 32640 <= 32767."""


@dataclass(frozen=True)
class QuantTensor:
    """A quantized array: integer codes and their params."""

    data: np.ndarray
    params: Params

    @property
    def dtype(self) -> str:
        return str(self.data.dtype)

    def dequantize(self) -> np.ndarray:
        return self.params.dequantize(self.data)


def to_codes(
    values: np.ndarray,
    scale: float | np.ndarray,
    zero_point: int | np.ndarray = 0,
    dtype: str = "int8",
    *,
    qmin: int | None = None,
    qmax: int | None = None,
) -> np.ndarray:
    """``clip(rint(values / scale) + zero_point)`` into ``dtype`` (or [qmin, qmax]).

    Computed in the precision of ``values`` (see the module docstring); ``scale`` and
    ``zero_point`` may be arrays that broadcast against ``values`` (per channel).
    """
    info = np.iinfo(dtype)
    lo = info.min if qmin is None else qmin
    hi = info.max if qmax is None else qmax
    return np.clip(np.rint(values / scale) + zero_point, lo, hi).astype(dtype)


def from_codes(
    q: np.ndarray, scale: float, zero_point: int = 0, dtype: str = "float64"
) -> np.ndarray:
    """``(q - zero_point) * scale`` computed in ``dtype`` (a runtime's float32 output, or
    float64 for comparisons)."""
    return (np.asarray(q).astype(dtype) - zero_point) * scale


def quantize_constant(values: np.ndarray, params: QuantParams) -> np.ndarray:
    """Codes of a constant at ``params`` (float64 arithmetic); symmetric params use the narrow
    range (no -128 / -32768)."""
    narrow = params.zero_point == 0 and params.dtype != "int32"
    return to_codes(
        np.asarray(values, dtype=np.float64),
        params.scale,
        params.zero_point,
        params.dtype,
        qmin=params.qmin + narrow,
    )


def quantize_symmetric(
    values: np.ndarray,
    dtype: IntDType = "int8",
    *,
    axis: int | None = None,
    min_scale: float = 0.0,
    divisor: Literal["stored", "exact"] = "stored",
) -> QuantTensor:
    """Symmetric (zero point 0) narrow-range quantization, scale = max|x| / qmax.

    ``axis``: one scale per slice along it (all-zero slices get scale 1), else one per
    tensor, at least ``min_scale``. ``divisor="exact"`` divides by max|x| / qmax before it is
    rounded to the float32 stored scale (the hybrid op's codes, kept for byte-identical files;
    the codes can differ by one where x / scale sits on a half).
    """
    arr = np.asarray(values, dtype=np.float64)
    qmin = INT_RANGES[dtype][0] + 1
    if axis is not None:
        others = tuple(a for a in range(arr.ndim) if a != axis % arr.ndim)
        peak = np.max(np.abs(arr), axis=others) if arr.size else np.zeros(arr.shape[axis])
        scales = np.where(peak > 0, peak / INT_RANGES[dtype][1], 1.0).astype(np.float32)
        params = ChannelParams(tuple(scales.tolist()), (0,) * len(scales), dtype, axis)
        scale = params.broadcast(params.scales, arr.ndim)
        return QuantTensor(to_codes(arr, scale, 0, dtype, qmin=qmin), params)
    params = symmetric_weights(arr, dtype, min_scale)
    scale = params.scale
    if divisor == "exact":
        if min_scale:
            raise ValueError("quantize_symmetric: divisor='exact' takes no min_scale")
        peak = float(np.max(np.abs(arr))) if arr.size else 0.0
        scale = peak / INT_RANGES[dtype][1] if peak > 0 else 1.0
    return QuantTensor(to_codes(arr, scale, 0, dtype, qmin=qmin), params)


def quantize_bias(
    values: np.ndarray, scale: float | np.ndarray, *, saturate: bool = False
) -> np.ndarray:
    """int32 bias codes at ``scale`` (a product of float32 scales, kept in float64).

    Out-of-range codes raise :class:`OverflowError`, or with ``saturate`` clip to the
    symmetric int32 range.
    """
    arr = np.asarray(values, dtype=np.float64)
    if saturate:
        return to_codes(arr, scale, 0, "int32", qmin=INT_RANGES["int32"][0] + 1)
    q = np.rint(arr / scale)
    lo, hi = INT_RANGES["int32"]
    if q.size and (q.min() < lo or q.max() > hi):
        raise OverflowError(f"bias does not fit int32 at scale {np.min(scale):g}")
    return q.astype(np.int32)


def product_bias(values: np.ndarray, input_scale: float, weights: Params) -> QuantTensor:
    """The int32 bias of an integer matrix product: scale s_input * s_weight (per channel
    when the weights are), zero point 0, saturating."""
    w_scales = weights.scales if isinstance(weights, ChannelParams) else (weights.scale,)
    scale = np.float64(input_scale) * np.asarray(w_scales, dtype=np.float64)
    data = quantize_bias(values, scale, saturate=True)
    params = ChannelParams(tuple(scale.tolist()), (0,) * len(scale), "int32", 0)
    return QuantTensor(data, params)


# -- weight schemes for u8 x s8 integer kernels (onnxruntime dynamic int8) ---------------------


def max_pair_sum(q: np.ndarray) -> int:
    """Largest |q_k| + |q_k+1| (even k) along axis -2 (the reduction axis of [.., K, N])."""
    a = np.abs(q.astype(np.int32))
    if a.shape[-2] % 2:
        a = np.concatenate([a, np.zeros_like(a[..., :1, :])], axis=-2)
    return int((a[..., 0::2, :] + a[..., 1::2, :]).max(initial=0))


def _symmetric_at(w: np.ndarray, scale: float, limit: int = 127) -> QuantTensor:
    params = QuantParams(scale, 0, "int8")
    return QuantTensor(to_codes(w, params.scale, 0, "int8", qmin=-limit, qmax=limit), params)


def pair_safe_int8(w: np.ndarray) -> QuantTensor:
    """Symmetric int8 of ``w`` [K, N] (K = reduction axis), one scale, with every adjacent
    pair sum |q_k| + |q_k+1| <= :data:`PAIR_LIMIT` and every |q| <= 127."""
    a = np.abs(w.astype(np.float64))
    if a.shape[0] % 2:
        a = np.concatenate([a, np.zeros_like(a[:1])])
    pair_max, w_max = float((a[0::2] + a[1::2]).max(initial=0.0)), float(a.max(initial=0.0))
    if w_max == 0.0:
        return QuantTensor(np.zeros(w.shape, np.int8), QuantParams(1.0, 0, "int8"))
    qt = _symmetric_at(w, max(pair_max / PAIR_LIMIT, w_max / 127.0))
    if max_pair_sum(qt.data) > PAIR_LIMIT:  # rounding added 1 to a pair: 127 + 1 always fits
        qt = _symmetric_at(w, max(pair_max / (PAIR_LIMIT - 1), w_max / 127.0))
    return qt


def seven_bit_int8(w: np.ndarray) -> QuantTensor:
    """Symmetric int8 with |q| <= 64 (onnxruntime's ``reduce_range``)."""
    w_max = float(np.abs(w).max(initial=0.0))
    return _symmetric_at(w, w_max / 64.0 if w_max else 1.0, limit=64)


def uint8_asymmetric(w: np.ndarray) -> QuantTensor:
    """Asymmetric uint8 over [min(w, 0), max(w, 0)] (all-zero: scale 1)."""
    params = asymmetric(float(w.min()), float(w.max()), "uint8")
    return QuantTensor(to_codes(w, params.scale, params.zero_point, "uint8"), params)

"""Integer weight schemes for onnxruntime's dynamic-int8 kernels: the pass that applies them.

onnxruntime's dynamic quantizer stores weights int8 and quantizes activations to uint8 at run
time (0..255). Its x86 u8 x s8 kernels without VNNI (AVX2, AVX-512BW) multiply with
``vpmaddubsw``, which adds the products of each *pair* of adjacent weights along the reduction
axis (k, k+1 for even k; MLAS packs K from 0 and pads with zeros) in int16 and saturates. So a
pair overflows only when 255 * (|q_k| + |q_k+1|) > 32767, i.e. |q_k| + |q_k+1| > 128.

* ``"int8-pair"``: one symmetric scale per tensor (per direction for an LSTM) chosen so
  every such pair sum is <= 128 and every |q| <= 127. It never saturates, on any CPU, and is
  never coarser than 7 bits; where large weights sit next to small ones (most trained
  weights) it keeps close to 8-bit precision. Measured weight RMSE vs 7-bit on the bundled
  models: 0.62-0.86x (8-bit: 0.50x); on Keras's orthogonal init 0.70x, on uniform init 0.98x.
* ``"int8-7bit"``: onnxruntime's ``reduce_range`` (|q| <= 64): safe, half the precision.
* ``"uint8"``: asymmetric uint8 with a zero point; runs on the slower u8 x u8 kernels (16-bit
  products, no saturation): full 8-bit precision at ~1.4x the time.

Which one a file gets is measured: :mod:`edgelstm.targets.onnx.scheme_choice`.

The arithmetic of each scheme is :mod:`edgelstm.quant.tensor` (``pair_safe_int8``,
``seven_bit_int8``, ``uint8_asymmetric``); this module only knows the ONNX graph.

:func:`requantize` rewrites the weights ORT's quantizer produced (``<name>_quantized`` /
``_scale`` / ``_zero_point`` initializers, in the main graph and in Scan bodies) from the float
model's originals; the graph structure is untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from edgelstm.errors import UnsupportedError
from edgelstm.quant.qparams import QuantParams
from edgelstm.quant.tensor import (
    PAIR_LIMIT,
    max_pair_sum,
    pair_safe_int8,
    seven_bit_int8,
    uint8_asymmetric,
)

SCHEMES = ("int8-pair", "int8-7bit", "uint8")
_SCHEME_FUNCTIONS = {
    "int8-pair": pair_safe_int8,
    "int8-7bit": seven_bit_int8,
    "uint8": uint8_asymmetric,
}
__all__ = [
    "PAIR_LIMIT",
    "SCHEMES",
    "float_initializers",
    "int8_weights",
    "pair_sums",
    "requantize",
    "walk_graphs",
]


def _quantize(w: np.ndarray, scheme: str) -> tuple[np.ndarray, float, int]:
    """(codes, scale, zero point) of one [K, N] block under ``scheme``."""
    if scheme not in _SCHEME_FUNCTIONS:
        raise UnsupportedError(
            "onnx", f"weight scheme: expected one of {SCHEMES}, found {scheme!r}"
        )
    qt = _SCHEME_FUNCTIONS[scheme](w)
    assert isinstance(qt.params, QuantParams)  # the schemes are per tensor
    return qt.data, qt.params.scale, qt.params.zero_point


def walk_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every subgraph (Scan/Loop bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from walk_graphs(attr.g)
            for sub in attr.graphs:
                yield from walk_graphs(sub)


def requantize(quantized: onnx.ModelProto, floats: onnx.ModelProto, scheme: str) -> int:
    """Re-derive every quantized weight of ``quantized`` from ``floats`` with ``scheme``.

    ORT lays an LSTM's weights out [D, K, 4H] (float: [D, 4H, K]) with one scale per tensor
    (shape [D]: here one per direction) and MatMul weights [K, N] with a scalar scale. A weight
    whose float original or layout is not recognised keeps ORT's (7-bit, safe) values.
    Returns how many weights were rewritten.
    """
    originals = {i.name: i for g in walk_graphs(floats.graph) for i in g.initializer}
    inits = {i.name: i for g in walk_graphs(quantized.graph) for i in g.initializer}
    done = 0
    for name, init in inits.items():
        base = name.removesuffix("_quantized")
        scale_init, zp_init = inits.get(f"{base}_scale"), inits.get(f"{base}_zero_point")
        if base == name or base not in originals or scale_init is None or zp_init is None:
            continue
        w = numpy_helper.to_array(originals[base]).astype(np.float32)
        shape = tuple(init.dims)
        per_direction = w.ndim == 3 and w.transpose(0, 2, 1).shape == shape
        if not (per_direction or (w.ndim == 2 and w.shape == shape)):
            continue
        blocks = list(w.transpose(0, 2, 1)) if per_direction else [w]
        results = [_quantize(b, scheme) for b in blocks]
        q = np.stack([r[0] for r in results]) if per_direction else results[0][0]
        scale_shape = tuple(scale_init.dims)
        if per_direction and scale_shape == (len(blocks),):
            scales = np.array([r[1] for r in results], np.float32)
            zps = np.array([r[2] for r in results], q.dtype)
        elif int(np.prod(scale_shape)) == 1 and len(results) == 1:
            scales = np.full(scale_shape, results[0][1], np.float32)
            zps = np.full(scale_shape, results[0][2], q.dtype)
        else:  # per-channel or an unknown layout: leave ORT's weights
            continue
        init.CopyFrom(numpy_helper.from_array(q, name))
        scale_init.CopyFrom(numpy_helper.from_array(scales, scale_init.name))
        zp_init.CopyFrom(numpy_helper.from_array(zps, zp_init.name))
        done += 1
    return done


def float_initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer as float32 in the float model's layout, the inverse of
    :func:`requantize`: ``<name>_quantized`` comes back as ``<name>``, (q - zero point) x
    scale (an LSTM's [D, K, 4H] transposed back to [D, 4H, K])."""
    raw = {
        i.name: numpy_helper.to_array(i) for g in walk_graphs(proto.graph) for i in g.initializer
    }
    out = {name: v for name, v in raw.items() if v.dtype.kind == "f"}
    for name, q in raw.items():
        base = name.removesuffix("_quantized")
        if base == name or f"{base}_scale" not in raw or f"{base}_zero_point" not in raw:
            continue
        scale = raw[f"{base}_scale"].astype(np.float64)
        zero = raw[f"{base}_zero_point"].astype(np.float64)
        values = q.astype(np.float64)
        if q.ndim == 3:  # DynamicQuantizeLSTM: [D, K, 4H], scale [D] or [D, 4H]
            shape = (q.shape[0], 1, -1 if scale.ndim == 2 else 1)
            w = (values - zero.reshape(shape)) * scale.reshape(shape)
            out[base] = w.transpose(0, 2, 1).astype(np.float32)
        else:  # MatMul [K, N], scale scalar or [N]
            out[base] = ((values - zero) * scale).astype(np.float32)
    return out


_INT8_WEIGHT_SLOTS = {
    "DynamicQuantizeLSTM": (1, 2),
    "MatMulInteger": (1,),
    "DynamicQuantizeMatMul": (1,),
}


def int8_weights(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every int8 weight an integer kernel reads ([.., K, N], K reduced); unreadable tensors
    are skipped."""
    inits = {i.name: i for g in walk_graphs(proto.graph) for i in g.initializer}
    weights: dict[str, np.ndarray] = {}
    for g in walk_graphs(proto.graph):
        for node in g.node:
            for j in _INT8_WEIGHT_SLOTS.get(node.op_type, ()):
                name = node.input[j] if j < len(node.input) else ""
                if name not in inits or name in weights:
                    continue
                try:
                    q = numpy_helper.to_array(inits[name])
                except Exception:  # noqa: BLE001 - a damaged tensor is reported elsewhere
                    continue
                if q.dtype == np.int8 and q.ndim >= 2:
                    weights[name] = q
    return weights


def pair_sums(proto: onnx.ModelProto) -> dict[str, int]:
    """:func:`max_pair_sum` of every int8 weight an integer kernel reads (above
    :data:`PAIR_LIMIT`: saturates on x86 without VNNI). Unreadable tensors are skipped."""
    return {name: max_pair_sum(q) for name, q in int8_weights(proto).items()}

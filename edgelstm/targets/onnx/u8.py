"""ONNX DynamicQuantizeLSTM with *uint8* weights: full 8-bit precision on every x86 CPU.

edgelstm's dynamic ONNX stores int8 weights whose adjacent pairs are bounded so ORT's u8 x s8
kernels cannot saturate (:mod:`edgelstm.targets.onnx.weight_schemes`). DynamicQuantizeLSTM also
takes uint8 weights with a zero point, which run on MLAS's u8 x u8 kernels (16-bit
products, no saturation): full 8-bit precision for every weight, at some speed (measured at
H=256 on AVX2: 0.52 vs 0.36 ms; at H=1024: 5.6 vs 4.0 ms). It is one more candidate for
:mod:`edgelstm.measure.optimize`.
"""

from __future__ import annotations

import dataclasses

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions


def to_onnx_uint8_weights(model: LSTMModel, options: CompileOptions) -> bytes:
    """The dynamic ONNX model of ``model`` with every quantized weight uint8."""
    from edgelstm.targets.onnx import to_onnx
    from edgelstm.targets.onnx.weight_schemes import requantize

    floats = to_onnx(model, dataclasses.replace(options, quantize="none"))
    proto = to_onnx(model, dataclasses.replace(options, quantize="dynamic"))
    requantize(proto, floats, "uint8")
    props = {p.key: p.value for p in proto.metadata_props}
    props["edgelstm.quantize"] = "dynamic (uint8 weights)"
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()

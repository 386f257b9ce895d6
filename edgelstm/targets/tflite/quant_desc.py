"""The seam to the TFLite writer: an :class:`Int8Plan` as the op's tensor descriptions.

:mod:`edgelstm.targets.tflite.lstm_op` builds the fused op from per-tensor descriptions
(:class:`~edgelstm.targets.tflite.lstm_op.LSTMOpTensors`); hybrid and float produce them too. This
module only translates, so the quantization rules stay in :mod:`.plan`.
"""

from __future__ import annotations

from edgelstm.quant.plan import Int8Plan
from edgelstm.quant.qparams import QuantParams
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors, TensorDesc

INT8_OP_VERSION = 1
"""Full integer shares version 1 with float (versions 2-3 are hybrid, 4 diagonal)."""
PLACEHOLDER = TensorDesc("float32", shape=(0,))
"""Intermediates 0-3 without layer norm: the kernel never reads them (fixed Q3.12)."""


def quantization(params: QuantParams) -> Quantization:
    """Per-tensor schema quantization of ``params``."""
    return Quantization((params.scale,), (params.zero_point,))


def activation_desc(params: QuantParams, shape: tuple[int, ...] | None = None) -> TensorDesc:
    """A data-less tensor (state, output, intermediate) with ``params``."""
    return TensorDesc(params.dtype, quantization=quantization(params), shape=shape)


def int8_op_tensors(plan: Int8Plan) -> LSTMOpTensors:
    """Descriptions of every tensor of the full-integer op (its input is the caller's)."""
    weights = {
        name: TensorDesc(t.dtype, t.data, quantization(t.params))
        for name, t in plan.tensors.items()
    }
    intermediates = tuple(
        PLACEHOLDER if p is None else activation_desc(p, (0,)) for p in plan.intermediates
    )
    return LSTMOpTensors(
        weights=weights,
        output_state=activation_desc(plan.output_state),
        cell_state=activation_desc(plan.cell_state),
        output=activation_desc(plan.output),
        intermediates=intermediates,
        version=INT8_OP_VERSION,
    )

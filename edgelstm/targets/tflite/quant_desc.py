"""The seam to the TFLite writer: quant params as schema ``Quantization``, an :class:`Int8Plan`
as the op's tensor descriptions.

:func:`quantization` is the one place format-neutral params (:mod:`edgelstm.quant.qparams`)
become TFLite structures. :mod:`edgelstm.targets.tflite.lstm_op` builds the fused op from
per-tensor descriptions (:class:`~edgelstm.targets.tflite.lstm_op.LSTMOpTensors`); hybrid and
float produce them too. This module only translates, so the quantization rules stay in
:mod:`edgelstm.quant`.
"""

from __future__ import annotations

from edgelstm.ir.roles import INTERMEDIATES
from edgelstm.quant.plan import Int8Plan
from edgelstm.quant.qparams import ChannelParams, Params, QuantParams
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors, TensorDesc

INT8_OP_VERSION = 1
"""Full integer shares version 1 with float (versions 2-3 are hybrid, 4 diagonal)."""
PLACEHOLDER = TensorDesc("float32", shape=(0,))
"""Intermediates 0-3 without layer norm: the kernel never reads them (fixed Q3.12)."""


def quantization(params: Params) -> Quantization:
    """Schema quantization of per-tensor or per-channel ``params``."""
    if isinstance(params, ChannelParams):
        return Quantization(params.scales, params.zero_points, quantized_dimension=params.axis)
    return Quantization((params.scale,), (params.zero_point,))


def activation_desc(params: QuantParams, shape: tuple[int, ...] | None = None) -> TensorDesc:
    """A data-less tensor (state, output, intermediate) with ``params``."""
    return TensorDesc(params.dtype, quantization=quantization(params), shape=shape)


def _intermediate_desc(params: QuantParams | None) -> TensorDesc:
    """None (gate intermediates without layer norm) becomes the FLOAT32 placeholder."""
    return PLACEHOLDER if params is None else activation_desc(params, (0,))


def int8_op_tensors(plan: Int8Plan) -> LSTMOpTensors:
    """Descriptions of every tensor of the full-integer op (its input is the caller's)."""
    weights = {
        name: TensorDesc(t.dtype, t.data, quantization(t.params))
        for name, t in plan.tensors.items()
    }
    intermediates = {i.name: _intermediate_desc(plan.intermediate(i.name)) for i in INTERMEDIATES}
    return LSTMOpTensors(
        weights=weights,
        output_state=activation_desc(plan.output_state),
        cell_state=activation_desc(plan.cell_state),
        output=activation_desc(plan.output),
        intermediates=intermediates,
        version=INT8_OP_VERSION,
    )

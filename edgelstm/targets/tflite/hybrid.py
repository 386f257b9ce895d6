"""Dynamic-range ("hybrid") tensors for the fused LSTM: int8 weights, float activations.

Weight matrices (input, recurrent, projection) and peephole weights are stored int8,
symmetric per-tensor (zero point 0, scale = max|w| / 127, quantized by
:func:`edgelstm.quant.tensor.quantize_symmetric`): the kernel requires peephole
weights of the same type as ``input_to_forget_weights``. Biases and layer-norm coefficients
stay float32. With ``asymmetric_quantize_inputs`` (op version 3) the kernel quantizes each
input/hidden row asymmetrically at run time, which is more accurate than version 2's
symmetric inputs.

With calibration data (``--quantize dynamic --calibration X``) the int8 codes are chosen by
the same error-compensating rounding as the full-int8 file's
(:func:`edgelstm.quant.plan.compensate_weights`: the gates' output error on the calibration's
second moments, the float biases absorbing its mean): per-tensor nearest rounding was most of
the hybrid file's error on the trained Silero VAD LSTM.
"""

from __future__ import annotations

import numpy as np

from edgelstm.ir.roles import present_weight_roles
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.calibrate import Moments
from edgelstm.quant.plan import compensate_weights
from edgelstm.quant.tensor import QuantTensor, quantize_symmetric
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors, TensorDesc
from edgelstm.targets.tflite.quant_desc import quantization

HYBRID_OP_VERSION = 2
HYBRID_ASYMMETRIC_OP_VERSION = 3
QUANTIZED_KINDS = frozenset({"weight", "recurrent", "projection", "peephole"})
"""Role kinds stored int8 in a hybrid op (biases and layer-norm coefficients stay float)."""


def hybrid_tensors(
    weights: LSTMWeights, asymmetric_inputs: bool = True, moments: Moments | None = None
) -> LSTMOpTensors:
    """Descriptions of a dynamic-range op for ``weights`` (see the module docstring);
    ``moments``: the calibration's second moments of this direction (compensated codes)."""
    tensors: dict[str, QuantTensor] = {}
    floats = dict(weights.tensors)
    for role in present_weight_roles(weights.spec):
        if role.kind in QUANTIZED_KINDS:
            tensors[role.name] = quantize_symmetric(weights[role.name], "int8", divisor="exact")
    if moments is not None:
        floats.update(compensate_weights(weights.spec, weights.tensors, tensors, moments))
    descs: dict[str, TensorDesc] = {}
    for role in present_weight_roles(weights.spec):
        if role.name in tensors:
            qt = tensors[role.name]
            descs[role.name] = TensorDesc("int8", qt.data, quantization(qt.params))
        else:
            descs[role.name] = TensorDesc("float32", np.asarray(floats[role.name], np.float32))
    return LSTMOpTensors(
        weights=descs,
        version=HYBRID_ASYMMETRIC_OP_VERSION if asymmetric_inputs else HYBRID_OP_VERSION,
        asymmetric_quantize_inputs=asymmetric_inputs,
    )

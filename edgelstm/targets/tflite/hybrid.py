"""Dynamic-range ("hybrid") tensors for the fused LSTM: int8 weights, float activations.

Weight matrices (input, recurrent, projection) and peephole weights are stored int8,
symmetric per-tensor (zero point 0, scale = max|w| / 127, quantized by
:func:`edgelstm.quant.tensor.quantize_symmetric`): the kernel requires peephole
weights of the same type as ``input_to_forget_weights``. Biases and layer-norm coefficients
stay float32. With ``asymmetric_quantize_inputs`` (op version 3) the kernel quantizes each
input/hidden row asymmetrically at run time, which is more accurate than version 2's
symmetric inputs.
"""

from __future__ import annotations

import numpy as np

from edgelstm.ir.roles import present_weight_roles
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.tensor import quantize_symmetric
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors, TensorDesc
from edgelstm.targets.tflite.quant_desc import quantization

HYBRID_OP_VERSION = 2
HYBRID_ASYMMETRIC_OP_VERSION = 3
QUANTIZED_KINDS = frozenset({"weight", "recurrent", "projection", "peephole"})
"""Role kinds stored int8 in a hybrid op (biases and layer-norm coefficients stay float)."""


def hybrid_tensors(weights: LSTMWeights, asymmetric_inputs: bool = True) -> LSTMOpTensors:
    """Descriptions of a dynamic-range op for ``weights`` (see the module docstring)."""
    descs: dict[str, TensorDesc] = {}
    for role in present_weight_roles(weights.spec):
        arr = weights[role.name]
        if role.kind in QUANTIZED_KINDS:
            qt = quantize_symmetric(arr, "int8", divisor="exact")
            descs[role.name] = TensorDesc("int8", qt.data, quantization(qt.params))
        else:
            descs[role.name] = TensorDesc("float32", np.asarray(arr, dtype=np.float32))
    return LSTMOpTensors(
        weights=descs,
        version=HYBRID_ASYMMETRIC_OP_VERSION if asymmetric_inputs else HYBRID_OP_VERSION,
        asymmetric_quantize_inputs=asymmetric_inputs,
    )

"""Dynamic-range ("hybrid") tensors for the fused LSTM: int8 weights, float activations.

Weight matrices (input, recurrent, projection) and peephole weights are stored int8,
symmetric per-tensor (zero point 0, scale = max|w| / 127): the kernel requires peephole
weights of the same type as ``input_to_forget_weights``. Biases and layer-norm coefficients
stay float32. With ``asymmetric_quantize_inputs`` (op version 3) the kernel quantizes each
input/hidden row asymmetrically at run time, which is more accurate than version 2's
symmetric inputs.
"""

from __future__ import annotations

import numpy as np

from edgelstm.ir.roles import present_weight_roles
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors, TensorDesc

HYBRID_OP_VERSION = 2
HYBRID_ASYMMETRIC_OP_VERSION = 3
QUANTIZED_KINDS = frozenset({"weight", "recurrent", "projection", "peephole"})
"""Role kinds stored int8 in a hybrid op (biases and layer-norm coefficients stay float)."""


def quantize_symmetric(values: np.ndarray) -> tuple[np.ndarray, float]:
    """int8 symmetric per-tensor quantization: (q in [-127, 127], scale)."""
    arr = np.asarray(values, dtype=np.float64)
    peak = float(np.max(np.abs(arr))) if arr.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.rint(arr / scale), -127, 127).astype(np.int8)
    return q, float(np.float32(scale))


def hybrid_tensors(weights: LSTMWeights, asymmetric_inputs: bool = True) -> LSTMOpTensors:
    """Descriptions of a dynamic-range op for ``weights`` (see the module docstring)."""
    descs: dict[str, TensorDesc] = {}
    for role in present_weight_roles(weights.spec):
        arr = weights[role.name]
        if role.kind in QUANTIZED_KINDS:
            q, scale = quantize_symmetric(arr)
            descs[role.name] = TensorDesc("int8", q, Quantization((scale,), (0,)))
        else:
            descs[role.name] = TensorDesc("float32", np.asarray(arr, dtype=np.float32))
    return LSTMOpTensors(
        weights=descs,
        version=HYBRID_ASYMMETRIC_OP_VERSION if asymmetric_inputs else HYBRID_OP_VERSION,
        asymmetric_quantize_inputs=asymmetric_inputs,
    )

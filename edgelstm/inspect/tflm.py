"""Will a .tflite file load and run correctly on TFLite Micro? Decided from the file alone.

TFLM must never be handed a file it cannot run: some (a fused int8 LSTM with peephole and
projection, or a too-small arena) segfault the interpreter, and a hybrid (dynamic-range)
file loads and returns ~99% NaN without an error. So the runner and ``inspect`` check the
ops, their options and tensors here, before any load, and say why a file is refused.

``TFLM_OPS`` is the builtin-op list of the ``tflite-micro`` Python package we test with
(its ``Register_*`` kernels, version below); tests/runtime/test_tflm.py checks it against the
installed package. What TFLM's fused LSTM kernel lacks (``lstm_eval.cc``): peephole,
projection, CIFG and layer norm; it requires the 24-input form of the op.
"""

from __future__ import annotations

from edgelstm.inspect.info import LSTM_OP, ModelInfo, OpInfo
from edgelstm.ir.roles import BY_NAME, N_INPUTS

TFLM_VERSION = "0.dev20261023182759"
"""The tflite-micro package whose op list :data:`TFLM_OPS` is."""

_OP_NAMES = (  # the Register_* kernels of that package, alphabetical
    "ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL "
    "BATCH_TO_SPACE_ND BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D "
    "COS CUMSUM DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE DETECTION_POSTPROCESS DIV "
    "DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL FLOOR FLOOR_DIV "
    "FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF "
    "L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGICAL_NOT "
    "LOGICAL_OR LOGISTIC LOG_SOFTMAX MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG "
    "NOT_EQUAL PACK PAD PADV2 PRELU QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN "
    "RELU RELU6 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT "
    "SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND SPACE_TO_DEPTH SPLIT SPLIT_V SQRT "
    "SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH TRANSPOSE "
    "TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE"
)
TFLM_OPS: frozenset[str] = frozenset(_OP_NAMES.split())

_MISSING_FEATURES = (  # (feature, a weight role that is present exactly when it is used)
    ("peephole", "cell_to_output_weights"),
    ("projection", "projection_weights"),
    ("layer norm", "output_layer_norm_coefficients"),
)


def _present(op: OpInfo, role: str) -> bool:
    index = BY_NAME[role].index
    return index < len(op.inputs) and op.inputs[index] is not None


def _lstm_blockers(op: OpInfo) -> list[str]:
    """Why TFLM's fused LSTM kernel cannot run this op ([] when it can)."""
    where = f"op #{op.index} {LSTM_OP}"
    if len(op.inputs) != N_INPUTS:
        return [
            f"{where} has {len(op.inputs)} inputs; TFLM requires the {N_INPUTS}-input form "
            "(recompile the file with this edgelstm)"
        ]
    reasons = []
    x, w = op.inputs[0], op.inputs[BY_NAME["input_to_output_weights"].index]
    if x is not None and w is not None and x.dtype == "float32" and w.dtype == "int8":
        reasons.append(
            f"{where} is hybrid (int8 weights, float activations): TFLM loads it and returns "
            "~99% NaN; compile with --quantize int8 (full integer) or none"
        )
    used = [name for name, role in _MISSING_FEATURES if _present(op, role)]
    if not _present(op, "input_to_input_weights"):
        used.append("CIFG")
    if used:
        reasons.append(
            f"{where} uses {', '.join(used)}: TFLM's fused LSTM kernel has no "
            f"{', '.join(used)} (it would fail or crash); only plain and cell-clip cells run there"
        )
    return reasons


def tflm_blockers(info: ModelInfo) -> list[str]:
    """Every reason ``info``'s file cannot run (correctly) on TFLite Micro; [] = it can."""
    if info.format != "tflite":
        return [f"{info.format} file: TFLite Micro runs .tflite files only"]
    reasons = []
    unknown = sorted({op.op for op in info.ops if op.op not in TFLM_OPS})
    if unknown:
        reasons.append(f"ops {', '.join(unknown)} are not in TFLite Micro {TFLM_VERSION}'s op list")
    for op in info.ops:
        if op.op == LSTM_OP:
            reasons.extend(_lstm_blockers(op))
    return reasons


def tflm_verdict(info: ModelInfo) -> str:
    """The one line ``edgelstm inspect`` prints: "loads on TFLM: yes" or "no (why)"."""
    reasons = tflm_blockers(info)
    return "loads on TFLM: " + ("yes" if not reasons else "no (" + "; ".join(reasons) + ")")

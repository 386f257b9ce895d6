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

import math

from edgelstm.inspect.info import LSTM_OP, ModelInfo, OpInfo, TensorInfo
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
_ITEMSIZE = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "float16": 2, "int32": 4,
             "float32": 4, "int64": 8}  # fmt: skip

GATE_WORDS = {
    "int16": "all-integer lowering: int8 weights, int16 gate math",
    "float32": "unfused lowering with float32 gate math (software float without an FPU)",
}

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
    dynamic = [t.name for t in info.inputs if any(not isinstance(d, int) or d < 0 for d in t.shape)]
    if dynamic:
        reasons.append(
            f"input {dynamic[0]!r} has a dynamic shape: TFLite Micro needs fixed shapes "
            "(compile with --target tflm --seq-len T, or --batch B --seq-len T)"
        )
    return reasons


def _tensor_bytes(t: TensorInfo) -> int | None:
    """Bytes of an activation tensor (None when a dimension is dynamic)."""
    dims = [d for d in t.shape if not isinstance(d, int) or d < 0]
    if dims or t.dtype not in _ITEMSIZE:
        return None
    return int(math.prod(t.shape)) * _ITEMSIZE[t.dtype]


PER_OP, PER_TENSOR, PER_QUANTIZED = 233, 24, 22
"""TFLM's own bytes in the arena per node, per tensor and per quantized tensor (least
squares over 31 unfused files of the feature matrix, measured with tflite-micro
0.dev20261023: the planned activation bytes are a few KB, this bookkeeping 10-25 KB)."""


def _lstm_scratch(op: OpInfo) -> int:
    """The fused LSTM kernel's scratch buffers: about six [B, N] gate-sized int32/float
    buffers (its gate and cell arithmetic), not tensors of the file."""
    cell = op.inputs[BY_NAME["cell_state"].index] if len(op.inputs) > N_INPUTS - 4 else None
    if cell is None or _tensor_bytes(cell) is None:
        return 0
    return 6 * 4 * int(math.prod(cell.shape))


def estimate_arena(info: ModelInfo) -> int | None:
    """An arena estimate without TFLM, for ``inspect``: the peak of the activation bytes
    alive at once (per subgraph; a tensor lives from the op writing it, or the start for
    inputs, to its last reader; the main graph's peak plus the largest other subgraph's, as
    a WHILE body runs while the main graph holds its tensors; 16-byte aligned) plus TFLM's
    bookkeeping per op and tensor (:data:`PER_OP`, ...) and the fused LSTM's scratch.
    Measured against TFLM: within about 20% on our files. None for dynamic shapes."""
    peaks: dict[int, int] = {}
    for sub in sorted({op.subgraph for op in info.ops}):
        ops = [op for op in info.ops if op.subgraph == sub]
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        size: dict[int, int] = {}
        for k, op in enumerate(ops):
            written = {id(t) for t in op.outputs}
            for t in [*op.inputs, *op.outputs]:
                if t is None or t.constant or t.index is None:
                    continue
                n = _tensor_bytes(t)
                if n is None:
                    return None
                size[t.index] = -(-n // 16) * 16
                first.setdefault(t.index, k if id(t) in written else 0)
                last[t.index] = k
        delta = [0] * (len(ops) + 1)  # a sweep over the op order: bytes alive at each op
        for i, n in size.items():
            delta[first[i]] += n
            delta[last[i] + 1] -= n
        live = peak = 0
        for change in delta:
            live += change
            peak = max(peak, live)
        peaks[sub] = peak
    if not peaks:
        return None
    main = peaks.pop(0, 0)
    tensors = {(op.subgraph, t.index): t for op in info.ops for t in [*op.inputs, *op.outputs]
               if t is not None}  # fmt: skip
    quantized = sum(1 for t in tensors.values() if t.quantization)
    books = PER_OP * len(info.ops) + PER_TENSOR * len(tensors) + PER_QUANTIZED * quantized
    scratch = sum(_lstm_scratch(op) for op in info.ops if op.op == LSTM_OP)
    return main + max(peaks.values(), default=0) + books + scratch


NOT_MEASURED = "TFLM arena: not measured"


Measured = int | BaseException | None
"""An arena found on TFLite Micro itself (bytes), the error TFLM raised, or None (not run)."""


def tflm_arena_line(info: ModelInfo, measured: Measured = None) -> str:
    """``TFLM arena: N B (measured ...)`` for an arena measured on TFLM (by the caller: see
    :func:`edgelstm.runtime.tflm.min_arena`), else the labelled estimate of
    :func:`estimate_arena`; "" for files TFLM cannot run."""
    if info.format != "tflite" or tflm_blockers(info):
        return ""
    if isinstance(measured, BaseException):
        return f"{NOT_MEASURED} ({type(measured).__name__}: {measured})"
    if measured is not None:
        return f"TFLM arena: {measured:,} B (measured on TFLite Micro: smallest that runs)"
    estimate = estimate_arena(info)
    if estimate is None:
        return "TFLM arena: no estimate (dynamic shapes: TFLM needs fixed ones)"
    return (
        f"TFLM arena: ~{estimate:,} B (estimate from tensor sizes and lifetimes; "
        "measured: edgelstm bench FILE --backend tflm, with the tflm extra)"
    )


def tflm_verdict(info: ModelInfo, measured: Measured = None) -> str:
    """What ``edgelstm inspect`` prints: "loads on TFLM: yes" or "no (why)", and for a file
    that loads the arena line (:func:`tflm_arena_line`) beneath."""
    reasons = tflm_blockers(info)
    text = "loads on TFLM: " + ("yes" if not reasons else "no (" + "; ".join(reasons) + ")")
    meta = info.metadata.get("edgelstm")
    lowering = meta.get("lowering") if isinstance(meta, dict) else None
    gates = lowering.get("gates") if isinstance(lowering, dict) else None
    if not reasons and isinstance(gates, str) and gates in GATE_WORDS:  # untrusted metadata
        planes = lowering.get("weight_planes") if isinstance(lowering, dict) else None
        extra = f", weights in {planes} int8 planes" if planes == 2 else ""
        text += f" ({GATE_WORDS[gates]}{extra})"
    line = tflm_arena_line(info, measured) if not reasons else ""
    if line.startswith(NOT_MEASURED):  # TFLM itself refused it: the verdict is its answer
        return f"loads on TFLM: no ({line[len(NOT_MEASURED) :].strip(' ()')})"
    return text + (f"\n{line}" if line else "")

"""What happens where one linked part feeds another (:mod:`.link`), and the wiring check.

Equal dtype and quantization connect directly; different int8/uint8/int16 quantization gets
a requantizing QUANTIZE op, float into an integer input a QUANTIZE, an integer output into a
float input a DEQUANTIZE (each an explicit op: nothing is approximated silently). Shapes
merge when they agree except where one side is dynamic (-1): the fixed size wins. Anything
else raises :class:`UnsupportedError` naming both tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgelstm.errors import SpecError, UnsupportedError
from edgelstm.targets.tflite.link_merge import text
from edgelstm.targets.tflite.schema import BuiltinOperator, BuiltinOptions, TensorType, schema

INTEGER = frozenset({TensorType.INT8, TensorType.UINT8, TensorType.INT16})
FLOAT = frozenset({TensorType.FLOAT32})
REQUANTIZE = frozenset(
    {
        (TensorType.INT8, TensorType.INT8),
        (TensorType.INT8, TensorType.UINT8),
        (TensorType.INT8, TensorType.INT16),
        (TensorType.UINT8, TensorType.UINT8),
        (TensorType.UINT8, TensorType.INT8),
        (TensorType.INT16, TensorType.INT16),
        (TensorType.INT16, TensorType.INT8),
    }
)
"""(input, output) types TFLite's QUANTIZE kernel requantizes."""


def dtype_name(t: schema.TensorT) -> str:
    for name, value in vars(TensorType).items():
        if value == t.type and not name.startswith("_"):
            return name.lower()
    return f"type#{t.type}"


def signature(t: schema.TensorT) -> list[int]:
    """The shape with -1 for dynamic dimensions."""
    return [int(d) for d in (t.shapeSignature if t.shapeSignature is not None else t.shape)]


def qparams(t: schema.TensorT) -> tuple | None:
    """(scales, zero points, quantized dimension), None for an unquantized tensor."""
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zp = [] if q.zeroPoint is None else [int(z) for z in q.zeroPoint]
    return tuple(float(s) for s in q.scale), tuple(zp), int(q.quantizedDimension or 0)


def describe(t: schema.TensorT) -> str:
    """A tensor for error messages: name, dtype, shape and its quantization."""
    q = qparams(t)
    scales = "" if q is None else ", ".join(f"{s:.7g}" for s in q[0])
    quant = "" if q is None else f" scale [{scales}] zero point {list(q[1])}"
    return f"{text(t.name)!r} {dtype_name(t)} {signature(t)}{quant}"


def side(t: schema.TensorT) -> dict[str, Any]:
    """A boundary tensor for the segments record (scales exact, as stored)."""
    q = qparams(t)
    record: dict[str, Any] = {"name": text(t.name), "dtype": dtype_name(t), "shape": signature(t)}
    if q is not None:
        record.update(scale=list(q[0]), zero_point=list(q[1]))
    return record


def merge_shape(
    out: schema.TensorT, inp: schema.TensorT, where: str
) -> tuple[list[int], list[int] | None]:
    """(shape, shape_signature or None when static) both sides accept: a dynamic (-1)
    dimension takes the other side's fixed size; different fixed sizes or ranks are refused."""
    ps, cs = signature(out), signature(inp)
    if len(ps) != len(cs) or any(p not in (c, -1) and c != -1 for p, c in zip(ps, cs, strict=True)):
        raise UnsupportedError(
            "tflite",
            f"{where}: the producer's output has shape {ps}, the consumer's input {cs} "
            "(-1 = dynamic): convert the segments with matching shapes (batch, sequence length)",
        )
    sig = [c if p == -1 else p for p, c in zip(ps, cs, strict=True)]
    shape = [s if s != -1 else int(d) for s, d in zip(sig, out.shape, strict=True)]
    return shape, (sig if sig != shape else None)


def boundary_op(out: schema.TensorT, inp: schema.TensorT, where: str) -> int | None:
    """None to connect directly, else the builtin op (QUANTIZE / DEQUANTIZE) converting."""
    po, pi = qparams(out), qparams(inp)
    for role, t, q in (("output", out, po), ("input", inp, pi)):
        if t.type in INTEGER and (q is None or len(q[0]) != 1):
            raise UnsupportedError(
                "tflite",
                f"{where}: the {role} {describe(t)} is not quantized per tensor; a boundary "
                "between integer segments needs per-tensor scales (convert with int8 I/O)",
            )
    if out.type == inp.type and (out.type not in INTEGER or po == pi):
        return None
    if (out.type, inp.type) in REQUANTIZE:
        return BuiltinOperator.QUANTIZE
    if out.type in FLOAT and inp.type in INTEGER:
        return BuiltinOperator.QUANTIZE
    if out.type in INTEGER and inp.type in FLOAT:
        return BuiltinOperator.DEQUANTIZE
    raise UnsupportedError(
        "tflite",
        f"{where}: the producer's output {describe(out)} cannot feed the consumer's input "
        f"{describe(inp)}: convert the segments with matching I/O types "
        "(inference_input_type / inference_output_type, Int8Options(io=True))",
    )


def op_version(op: int, out: schema.TensorT, inp: schema.TensorT) -> int:
    """TFLite's version of the boundary op (as tools/versioning/op_version.cc assigns it)."""
    if op == BuiltinOperator.QUANTIZE:
        return 2 if inp.type == TensorType.INT16 else 1
    return {TensorType.INT8: 2, TensorType.INT16: 3}.get(out.type, 1)


def convert_operator(op: int, opcode: int, src: int, dst: int) -> schema.OperatorT:
    """The QUANTIZE / DEQUANTIZE operator reading tensor ``src`` and writing ``dst``."""
    new = schema.OperatorT()
    new.opcodeIndex = opcode
    new.inputs, new.outputs = [src], [dst]
    if op == BuiltinOperator.QUANTIZE:
        new.builtinOptionsType = BuiltinOptions.QuantizeOptions
        new.builtinOptions = schema.QuantizeOptionsT()
    else:
        new.builtinOptionsType = BuiltinOptions.DequantizeOptions
        new.builtinOptions = schema.DequantizeOptionsT()
    return new


def check_wiring(
    n_inputs: Sequence[int],
    n_outputs: Sequence[int],
    inputs: Sequence[tuple[int, int]],
    edges: Mapping[tuple[int, int], tuple[int, int]],
    outputs: Sequence[tuple[int, int]],
) -> None:
    """Every (part, position) exists, edges run from earlier to later parts, every part
    input is fed exactly once (by an edge or as a graph input), some output is chosen."""

    def valid(port: tuple[int, int], counts: Sequence[int]) -> bool:
        return 0 <= port[0] < len(counts) and 0 <= port[1] < counts[port[0]]

    bad = [("inputs", p) for p in inputs if not valid(p, n_inputs)]
    bad += [("edges", p) for p in edges if not valid(p, n_inputs)]
    bad += [("edges", p) for p in edges.values() if not valid(p, n_outputs)]
    bad += [("outputs", p) for p in outputs if not valid(p, n_outputs)]
    if bad:
        raise SpecError(f"link_graph: no such part input/output: {bad}")
    backwards = [(c, p) for c, p in edges.items() if p[0] >= c[0]]
    if backwards:
        raise SpecError(f"link_graph: edges must run from earlier to later parts: {backwards}")
    fed = list(inputs) + list(edges)
    wanted = [(k, j) for k, n in enumerate(n_inputs) for j in range(n)]
    twice = sorted({p for p in fed if fed.count(p) > 1})
    missing = sorted(set(wanted) - set(fed))
    if twice or missing or not outputs:
        raise SpecError(
            f"link_graph: every part input must be fed exactly once (by an edge or as a graph "
            f"input) and some output chosen: fed twice {twice}, not fed {missing}, "
            f"outputs {list(outputs)}"
        )

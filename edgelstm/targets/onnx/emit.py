"""Emit an :class:`~edgelstm.ir.model.LSTMModel` as ONNX: fused LSTM where exact, else composite.

Opset :data:`OPSET` = 17 (IR 8), chosen deliberately: it is the first opset with
``LayerNormalization`` (needed by the layer-norm composite), has ``LSTM``-14 with every
feature used here (peepholes, per-direction activations, ``sequence_lens``), ``Scan``-16
and ``Loop``-16, runs on ORT >= 1.11 and other runtimes, and ORT's dynamic quantizer keeps
it (``com.microsoft`` ``DynamicQuantizeLSTM`` v1 is added as a second opset import).

Per direction, the ``LSTM`` node is used whenever it computes the canonical cell exactly
(see :func:`edgelstm.targets.onnx.params.fused_blocker`); otherwise the composite of
:mod:`edgelstm.targets.onnx.composite`. The I/O contract is in :mod:`edgelstm.targets.onnx.names`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgelstm._io import write_bytes_atomic
from edgelstm.errors import SpecError, UnsupportedError
from edgelstm.ir.model import LayerVisit, LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.onnx import OPSET, names
from edgelstm.targets.onnx.builder import GraphBuilder
from edgelstm.targets.onnx.composite import emit_composite
from edgelstm.targets.onnx.fused import emit_fused
from edgelstm.targets.onnx.params import fused_blocker, fused_reason, onnx_params

IR_VERSION = 8
SEQUENCE_LENS_REASON = (
    "sequence_lens needs every direction to be a fused LSTM node (the composite has no "
    "ragged-length form); pad the batch to one length, or drop OnnxOptions(sequence_lens=True)"
)
INT32_MAX = 2**31 - 1
STATIC_INT8_REASON = (
    "static int8 is not supported for ONNX: onnxruntime has no integer LSTM kernel "
    "(quantize_static leaves LSTM float or wraps it in fake-quant QDQ, which is slower); "
    "use quantize='dynamic' (int8 weights, DynamicQuantizeLSTM / integer MatMuls)"
)

INT16X8_REASON = (
    "int16x8 is not supported for ONNX: the ONNX integer matrix ops (MatMulInteger, "
    "QLinearMatMul, ConvInteger) take int8/uint8 operands only and onnxruntime has no int16 "
    "LSTM kernel (int16 QDQ runs as float); use quantize='dynamic' for ONNX, or a .tflite "
    "output for int16x8"
)


@dataclass(frozen=True)
class Choice:
    """How one direction is emitted."""

    layer: int
    direction: int
    fused: bool
    reason: str


def plan(model: LSTMModel | LSTMWeights, force_composite: bool = False) -> list[Choice]:
    """Fused-or-composite decision (with its reason) for every direction of ``model``."""
    model = LSTMModel.of(model)
    choices = []
    for v in model.walk():
        blocker = fused_blocker(v.weights.spec)
        if force_composite:
            choices.append(Choice(v.k, v.d, False, "composite (forced)"))
        elif blocker is None:
            choices.append(Choice(v.k, v.d, True, fused_reason(v.weights.spec)))
        else:
            choices.append(Choice(v.k, v.d, False, f"composite: {blocker}"))
    return choices


def _reverse_time(gb: GraphBuilder, x: str, lens64: str | None) -> str:
    """Reverse time-major ``x`` (within each sequence's length when lengths are given)."""
    if lens64 is not None:
        return gb.op("ReverseSequence", [x, lens64], hint="rev", batch_axis=1, time_axis=0)
    return gb.op(
        "Slice",
        [
            x,
            gb.ints("start", [-1]),
            gb.ints("end", [-(2**63)]),
            gb.ints("axes0", [0]),
            gb.ints("step", [-1]),
        ],
        hint="rev",
    )


def _metadata(model: LSTMModel, options: CompileOptions, choices: list[Choice]) -> dict[str, str]:
    from edgelstm._version import __version__

    layers = [
        {
            "forward": layer.forward.spec.to_dict(),
            "backward": layer.backward.spec.to_dict() if layer.backward is not None else None,
            "go_backwards": layer.go_backwards,
            "reverse": layer.reverse,
        }
        for layer in model.layers
    ]
    digests = [[w.digest() for w in layer.directions] for layer in model.layers]
    props = {
        "edgelstm.version": __version__,
        "edgelstm.source": options.source,
        "edgelstm.model": model.describe(),
        "edgelstm.spec": json.dumps(layers, sort_keys=True),
        "edgelstm.weights_digest": json.dumps(digests),
        "edgelstm.provenance": json.dumps(dict(model.provenance), sort_keys=True, default=str),
        "edgelstm.emit": json.dumps(
            [{"layer": c.layer, "direction": c.direction, "how": c.reason} for c in choices]
        ),
        "edgelstm.options": json.dumps(
            {
                "return_sequences": model.return_sequences,
                "return_state": model.return_state,
                "stateful": model.stateful,
                "batch": options.batch,
                "seq_len": options.seq_len,
                "quantize": options.quantize,
                "state_inputs": _streaming(model, options),
                "sequence_lens": options.onnx.sequence_lens,
                "time_major": model.time_major
                if options.time_major is None
                else options.time_major,
            },
            sort_keys=True,
        ),
        "edgelstm.opset": str(OPSET),
    }
    for key in ("forget_bias_folded", "forget_bias"):  # importers record the folded value
        if key in model.provenance:
            props["edgelstm.folded_forget_bias"] = json.dumps(model.provenance[key], default=str)
            break
    if model.head is not None:
        props["edgelstm.head_digest"] = model.head.digest()
        props["edgelstm.head_activation"] = model.head.activation
    return props


@dataclass
class _Ctx:
    """What every part of one model's graph needs."""

    gb: GraphBuilder
    model: LSTMModel
    options: CompileOptions
    fused: dict[tuple[int, int], bool]
    batch: int | str
    batch_1d: str | None = None
    """Shape(x)[batch] as a 1-D tensor when the batch is dynamic."""
    lens: str | None = None
    lens64: str | None = None


def _streaming(model: LSTMModel, options: CompileOptions) -> bool:
    """Initial states as required inputs: asked for, or implied by a stateful model."""
    return options.onnx.state_inputs or model.stateful


def _state_inputs(ctx: _Ctx) -> dict[tuple[int, int, str], str | None]:
    """Initial states: required graph inputs when streaming, else zeros built in the graph.

    No initializer-backed inputs: onnxruntime warns about each of those on every session.
    Stateless fused directions get None (the ``LSTM`` node's omitted initial h/c = zeros);
    composite directions a zero constant ([1, width] broadcast when the batch is dynamic).
    """
    gb, states = ctx.gb, {}
    streaming = _streaming(ctx.model, ctx.options)
    zeros: dict[int, str] = {}
    for v in ctx.model.walk():
        for which, width in (("h", v.weights.spec.n_output), ("c", v.weights.spec.n_cell)):
            name = names.initial_state(v.k, v.d, which)
            if streaming:
                states[v.k, v.d, which] = gb.add_input(name, [ctx.batch, width])
            elif ctx.fused[v.k, v.d]:
                states[v.k, v.d, which] = None
            else:
                if width not in zeros:
                    zeros[width] = _zero_state(ctx, width)
                states[v.k, v.d, which] = zeros[width]
    return states


def _zero_state(ctx: _Ctx, width: int) -> str:
    """A zero [B, width] state (a constant, broadcast to a dynamic batch)."""
    gb = ctx.gb
    value = gb.const("zero_state", np.zeros((ctx.options.batch or 1, width), np.float32))
    if ctx.batch_1d is not None:
        shape = gb.op("Concat", [ctx.batch_1d, gb.ints("width", [width])], axis=0)
        value = gb.op("Expand", [value, shape], hint="zero_state_b")
    return value


def _sequence_lens_input(ctx: _Ctx, x_tm: str) -> None:
    """Required ``sequence_lens`` [B] int32, clamped to T (INT32_MAX: full length)."""
    gb = ctx.gb
    given = gb.add_input(names.SEQUENCE_LENS, [ctx.batch], TensorProto.INT32)
    if ctx.options.seq_len is not None:  # a fixed T: a constant, not Shape -> Cast
        t32 = gb.const("seq_len", [ctx.options.seq_len], np.int32)
    else:
        t32 = gb.op("Cast", [gb.op("Shape", [x_tm], start=0, end=1)], to=TensorProto.INT32)
    ctx.lens = gb.op("Min", [given, t32], hint="lens")
    if any(layer.go_backwards for layer in ctx.model.layers):
        ctx.lens64 = gb.op("Cast", [ctx.lens], hint="lens64", to=TensorProto.INT64)


def _layer(
    ctx: _Ctx, visit: LayerVisit, seq: str, states: dict[tuple[int, int, str], str | None]
) -> tuple[str, list[tuple[str, str]]]:
    """Emit one layer on time-major ``seq``: (output [T,B,F], [(h, c) per direction])."""
    gb, layer, k = ctx.gb, visit.layer, visit.k
    params = [onnx_params(v.weights) for v in visit.directions]
    h0 = [states[k, d, "h"] for d in range(len(params))]
    c0 = [states[k, d, "c"] for d in range(len(params))]
    hint = f"layer{k}"
    fused = [ctx.fused[k, d] for d in range(len(params))]
    if layer.bidirectional and all(fused) and params[0].spec.n_cell == params[1].spec.n_cell:
        return emit_fused(gb, seq, params, "bidirectional", h0, c0, ctx.lens, hint)
    ys, finals = [], []
    for v, p in zip(visit.directions, params, strict=True):
        d = v.d
        dhint = hint + (".backward" if d else "")
        if fused[d]:
            inp = _reverse_time(gb, seq, ctx.lens64) if layer.go_backwards else seq
            direction = "reverse" if v.realigns else "forward"
            y, fin = emit_fused(gb, inp, [p], direction, [h0[d]], [c0[d]], ctx.lens, dhint)
            finals += fin
        else:
            y, h, c = emit_composite(
                gb,
                seq,
                p,
                h0[d],
                c0[d],
                reverse_input=v.runs_reversed,
                reverse_output=v.realigns,
                hint=dhint,
                recurrence=ctx.options.onnx.recurrence,
            )
            finals.append((h, c))
        ys.append(y)
    return (ys[0] if len(ys) == 1 else gb.op("Concat", ys, hint=f"{hint}.y", axis=2)), finals


def _swap_time_batch(ctx: _Ctx, value: str, hint: str, to_time_major: bool) -> str:
    """[B, T, F] <-> [T, B, F]. With a fixed batch of 1 the two layouts hold the same bytes,
    so a Reshape (no data movement) replaces the Transpose. The structural importer reads it
    back (a Reshape that only moves size-1 axes). Measured speed gain: within noise."""
    if ctx.options.batch == 1:
        shape = [-1, 1, 0] if to_time_major else [1, -1, 0]
        return ctx.gb.op("Reshape", [value, ctx.gb.ints("layout", shape)], hint=hint)
    return ctx.gb.op("Transpose", [value], hint=hint, perm=[1, 0, 2])


def _head(ctx: _Ctx, seq: str, last_finals: list[tuple[str, str]]) -> str:
    """Last step (if asked) and the dense head on the time-major output."""
    gb, model = ctx.gb, ctx.model
    out = seq
    if not model.return_sequences:  # last step == final h of every direction (also Keras bidi)
        last = [h for h, _ in last_finals]
        out = last[0] if len(last) == 1 else gb.op("Concat", last, hint="last", axis=1)
    head = model.head
    if head is not None:
        if model.return_sequences:
            out = gb.op("MatMul", [out, gb.const("head.kernelT", head.kernel.T)], hint="head")
            out = gb.op("Add", [out, gb.const("head.bias", head.bias)], hint="head")
        else:
            kernel, bias = gb.const("head.kernel", head.kernel), gb.const("head.bias", head.bias)
            out = gb.op("Gemm", [out, kernel, bias], hint="head", transB=1)
        if head.activation == "softmax":
            out = gb.op("Softmax", [out], hint="softmax", axis=-1)
    return out


def _float_model(model: LSTMModel, options: CompileOptions) -> onnx.ModelProto:
    time_major = options.time_major if options.time_major is not None else model.time_major
    steps = options.seq_len if options.seq_len is not None else "time"
    choices = plan(model, options.onnx.force_composite)
    ctx = _Ctx(
        GraphBuilder(),
        model,
        options,
        {(c.layer, c.direction): c.fused for c in choices},
        options.batch if options.batch is not None else "batch",
    )
    gb = ctx.gb
    gb.claim(names.OUTPUT)
    for v in model.walk():
        gb.claim(names.final_state(v.k, v.d, "h"))
        gb.claim(names.final_state(v.k, v.d, "c"))
    layout = [steps, ctx.batch] if time_major else [ctx.batch, steps]
    x = gb.add_input(names.INPUT, [*layout, model.n_input])
    x_tm = x if time_major else _swap_time_batch(ctx, x, "x_tm", to_time_major=True)
    if options.batch is None and not _streaming(model, options) and not all(ctx.fused.values()):
        ctx.batch_1d = gb.op("Shape", [x_tm], hint="batch", start=1, end=2)  # zero states
    states = _state_inputs(ctx)
    if options.onnx.sequence_lens:
        if not all(c.fused for c in choices):
            raise UnsupportedError("onnx", SEQUENCE_LENS_REASON)
        _sequence_lens_input(ctx, x_tm)

    seq = x_tm
    layer_finals = []
    for visit in model.walk_layers():
        seq, finals = _layer(ctx, visit, seq, states)
        layer_finals.append(finals)
    out = _head(ctx, seq, layer_finals[-1])
    if model.return_sequences:
        if not time_major:
            out = _swap_time_batch(ctx, out, "y_bm", to_time_major=False)
        gb.add_output(out, names.OUTPUT, [*layout, model.n_output])
    else:
        gb.add_output(out, names.OUTPUT, [ctx.batch, model.n_output])
    for v in model.walk():
        h, c = layer_finals[v.k][v.d]
        gb.add_output(h, names.final_state(v.k, v.d, "h"), [ctx.batch, v.weights.spec.n_output])
        gb.add_output(c, names.final_state(v.k, v.d, "c"), [ctx.batch, v.weights.spec.n_cell])

    from edgelstm._version import __version__

    proto = helper.make_model(
        gb.graph("edgelstm"),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="edgelstm",
        producer_version=__version__,
        doc_string=model.describe(),
    )
    proto.ir_version = IR_VERSION
    helper.set_model_props(proto, _metadata(model, options, choices))
    return proto


def to_onnx(
    model: LSTMModel | LSTMWeights,
    options: CompileOptions | None = None,
    *,
    force_composite: bool | None = None,
    recurrence: str | None = None,
) -> onnx.ModelProto:
    """Build the ONNX model (float, or dynamic-int8 when ``options.quantize == "dynamic"``).

    ``options.onnx`` (:class:`~edgelstm.ir.options.OnnxOptions`) picks composite-only and
    the recurrence; the ``force_composite`` / ``recurrence`` keywords, when given, override it.
    """
    options = options or CompileOptions()
    if not isinstance(options, CompileOptions):
        raise SpecError(f"options: expected CompileOptions, found {type(options).__name__}")
    options = _with_keywords(options, force_composite, recurrence)
    model = LSTMModel.of(model)
    if options.quantize == "int8":
        raise UnsupportedError("onnx", STATIC_INT8_REASON)
    if options.quantize == "int16x8":
        raise UnsupportedError("onnx", INT16X8_REASON)
    proto = _float_model(model, options)
    if options.quantize == "dynamic":
        from edgelstm.targets.onnx.dynamic import quantize_dynamic_model

        proto = quantize_dynamic_model(
            proto,
            calibration=options.calibration,
            priority=options.onnx.dynamic_priority,
            lstm=model,
        )
    return proto


def _with_keywords(
    options: CompileOptions, force_composite: bool | None, recurrence: str | None
) -> CompileOptions:
    """``options`` with the keyword shorthands of :func:`to_onnx` folded into ``onnx``."""
    if force_composite is None and recurrence is None:
        return options
    onnx_options = options.onnx
    if force_composite is not None:
        onnx_options = replace(onnx_options, force_composite=force_composite)
    if recurrence is not None:
        onnx_options = replace(onnx_options, recurrence=recurrence)  # type: ignore[arg-type]
    return replace(options, onnx=onnx_options)


def save_onnx(
    model: LSTMModel | LSTMWeights,
    path: str | os.PathLike[str],
    options: CompileOptions | None = None,
    *,
    force_composite: bool | None = None,
    recurrence: str | None = None,
) -> None:
    """Write :func:`to_onnx` to ``path`` atomically (no partial file on failure)."""
    proto = to_onnx(model, options, force_composite=force_composite, recurrence=recurrence)
    write_bytes_atomic(path, proto.SerializeToString())

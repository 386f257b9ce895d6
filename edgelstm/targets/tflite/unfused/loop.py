"""Schedules of one layer's recurrence: fully unrolled, or a WHILE loop of K steps per trip.

Both read the hoisted input GEMM's result ``xw`` [B, T, C] (every direction of the layer
has its G*N columns at ``offset``) and run all directions of the layer side by side.

**Unrolled** (fixed T): UNPACK xw along time once, T cell steps, PACK the outputs. No loop
overhead, but XNNPACK packs the recurrent weights once *per FULLY_CONNECTED node*, so T
steps hold T copies (measured: +50 MB RSS for T=50, H=256 float); it wins only while the
copies stay cache-resident (short T, small H).

**WHILE** (fixed or dynamic T): loop-carried values are ``[counter, limit, xw, (h, c) per
direction, (outputs) per direction]``. TFLite's static WHILE copies every body output back
to its input between trips except when they are the same tensor, so ``xw`` and ``limit``
are passed through untouched (free) and only h, c, the counter and the output buffers move.
A trip SLICEs a [B, K, G*N] block at the counter (backward directions at T-K-counter),
runs K cell steps (one XNNPACK partition), and DYNAMIC_UPDATE_SLICEs the K outputs into the
output buffer. K > 1 amortises the per-trip cost (cond subgraph, body invoke, buffer copy)
over K steps at the price of K weight copies; K must divide T (K = 1 for dynamic T). With a
fixed T the sequence can be split into segments of S steps: T/S WHILE ops share one body
(one weight copy), each filling an [B, S, P] buffer, concatenated at the end, so a trip
copies S instead of T output rows (H=1024: 6.27 -> 5.84 ms).

An op must not write into a body *input* in place (it would make DYNAMIC_UPDATE_SLICE free)
and no tensor may be variable: either turns XNNPACK off for the graph (measured 1.4 vs
0.64 ms), so the output buffer is copied once per trip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelstm.targets.tflite.builder import GraphBuilder
from edgelstm.targets.tflite.schema import BuiltinOperator, BuiltinOptions, schema
from edgelstm.targets.tflite.unfused.cell import Cell, StaticQuant
from edgelstm.targets.tflite.unfused.icell import IntCell
from edgelstm.targets.tflite.unfused.iranges import IntCellQuant
from edgelstm.targets.tflite.unfused.ops import Ops
from edgelstm.targets.tflite.unfused.params import DirectionParams


@dataclass(frozen=True)
class Direction:
    """One direction of a layer, as the schedule sees it."""

    name: str
    params: DirectionParams
    offset: int
    """First column of this direction's gates in xw."""
    reverse: bool
    """Processes time backwards (bidirectional backward, or go_backwards)."""
    realign: bool
    """Writes each output at its input time (bidirectional backward), not in step order."""
    h0: int
    c0: int
    static: StaticQuant | IntCellQuant | None = None
    columns: int = 0
    """Columns of ``xw`` a step reads (0: the G*N gate columns). The integer (TFLM)
    lowering passes the layer input itself (its I columns) and multiplies per step."""

    @property
    def width(self) -> int:
        return self.columns or self.params.width


@dataclass(frozen=True)
class Result:
    """Main-graph tensors of one direction after the recurrence."""

    sequence: int | None
    """[B, T, P] outputs (None when not kept)."""
    h: int
    c: int


def _columns(ops: Ops, xw: int, d: Direction) -> int:
    shape = ops.shape(xw)
    width = d.width
    if d.offset == 0 and shape[-1] == width:
        return xw
    return ops.slice(xw, [0, 0, d.offset], [-1, -1, width], shape[:-1] + [width])


def make_cell(ops: Ops, d: Direction, mode: str, hint: str) -> Cell | IntCell:
    """The step emitter of ``d``: the integer cell (mode "int16", TFLite Micro) or
    :class:`.cell.Cell` (float gate math)."""
    if mode == "int16":
        assert isinstance(d.static, IntCellQuant)
        return IntCell(ops, d.params, d.static, hint)
    assert not isinstance(d.static, IntCellQuant)
    return Cell(ops, d.params, mode, d.static, hint=hint)


def _zeros(ops: Ops, d: Direction, shape: list[int]) -> int:
    """A zero output buffer like ``d``'s h: FILL for float, a constant for int16 (TFLM's
    FILL has no int16 output)."""
    if ops.dtype.get(d.h0) == "int16":
        return ops.const("zeros", np.zeros(shape, np.int16), "int16", ops.quant[d.h0])
    return ops.zeros(shape, shape)


def _floats(ops: Ops, xs: list[int]) -> list[int]:
    """Step inputs as float32 (the TFLM profile carries the hoisted GEMM output as int8)."""
    return [ops.dequantize(x) if ops.dtype.get(x) == "int8" else x for x in xs]


def unrolled(
    ops: Ops, xw: int, dirs: list[Direction], steps: int, mode: str, keep: bool
) -> list[Result]:
    """All T steps in the current graph (T fixed)."""
    results = []
    for d in dirs:
        xs = _floats(ops, ops.unpack(_columns(ops, xw, d), axis=1))
        cell = make_cell(ops, d, mode, d.name)
        h, c, hs = d.h0, d.c0, []
        for t in range(steps - 1, -1, -1) if d.reverse else range(steps):
            h, c = cell.step(xs[t], h, c)
            hs.append(h)
        seq = None
        if keep:
            seq = ops.pack(hs[::-1] if d.realign else hs, axis=1)
        results.append(Result(seq, h, c))
    return results


def while_loop(
    g: GraphBuilder,
    ops: Ops,
    xw: int,
    dirs: list[Direction],
    steps: int | None,
    chunk: int,
    mode: str,
    keep: bool,
    segment: int | None = None,
) -> list[Result]:
    """WHILE loops of ``chunk`` = K steps per trip (K divides T; 1 when T is dynamic).

    With ``segment`` = S (a multiple of K dividing a fixed T), T/S WHILE ops run one after
    another, all on the same cond/body subgraphs (one copy of the weights), each writing a
    [B, S, P] output buffer; the buffers are concatenated at the end. A trip then copies
    2*S*P floats instead of 2*T*P.
    """
    if steps is None and chunk != 1:
        raise ValueError("a dynamic sequence length needs chunk 1")
    if steps is not None and steps % chunk:
        raise ValueError(f"chunk {chunk} does not divide the sequence length {steps}")
    span = steps if (segment is None or steps is None or not keep) else segment
    if span is not None and steps is not None and (steps % span or span % chunk):
        raise ValueError(f"segment {span} must divide T={steps} and be a multiple of {chunk}")
    scope = dirs[0].name.split("/")[0]  # "layer{k}"
    batch = ops.shape(xw)[0]
    total = ops.ints([steps]) if steps is not None else ops.slice(ops.shape_of(xw), [1], [1], [1])
    buffers0 = []
    if keep:
        for d in dirs:
            p = d.params.spec.n_output
            if batch > 0 and span is not None:
                buffers0.append(_zeros(ops, d, [batch, span, p]))
            else:
                lead = ops.slice(ops.shape_of(xw), [0], [1 if span else 2], [1 if span else 2])
                tail = [span, p] if span else [p]
                dims = ops.concat([lead, ops.ints(tail)], 0, "int32")
                buffers0.append(ops.zeros(dims, [batch, span or -1, p]))
    # loop vars: counter, limit, steps, base, xw, (h, c) per direction, buffers
    first = [ops.ints([0]), total, total, ops.ints([0]), xw]
    states0 = [t for d in dirs for t in (d.h0, d.c0)]
    kinds = [  # shape, dtype, quantization (an int8 xw keeps its scale in every subgraph)
        (ops.shape(t), ops.dtype.get(t, "float32"), ops.quant.get(t))
        for t in first + states0 + buffers0
    ]
    cond_index, body_index = _loop_subgraphs(g, scope, kinds, dirs, chunk, mode, keep)

    opts = schema.WhileOptionsT()
    opts.condSubgraphIndex = cond_index
    opts.bodySubgraphIndex = body_index
    bounds = (
        [(0, None)]
        if span is None or steps is None
        else [(b, b + span) for b in range(0, steps, span)]
    )
    states, pieces = states0, [[] for _ in dirs]
    for base, end in bounds:
        init = list(first)
        if end is not None:
            init[0], init[1], init[3] = ops.ints([base]), ops.ints([end]), ops.ints([base])
        results = [ops.tensor("while", s, dt, q) for s, dt, q in kinds]
        g.add_operator(
            BuiltinOperator.WHILE, init + states + buffers0, results, BuiltinOptions.WhileOptions,
            opts,
        )  # fmt: skip
        states = results[5 : 5 + len(states0)]
        for j, t in enumerate(results[5 + len(states0) :]):
            pieces[j].append(t)
    out = []
    for j, d in enumerate(dirs):
        seq = None
        if keep:
            parts = pieces[j][::-1] if d.realign else pieces[j]
            seq = parts[0] if len(parts) == 1 else ops.concat(parts, 1)
        out.append(Result(seq, states[2 * j], states[2 * j + 1]))
    return out


def _loop_subgraphs(
    g: GraphBuilder,
    scope: str,
    kinds: list,
    dirs: list[Direction],
    chunk: int,
    mode: str,
    keep: bool,
) -> tuple[int, int]:
    """The cond (counter < limit) and body subgraphs; returns their indices."""
    cond_index, cg = g.add_subgraph(f"{scope}/cond")
    cops = Ops(cg, f"{scope}/cond")
    cin = [cops.tensor("arg", s, dt, q) for s, dt, q in kinds]
    for k, t in enumerate(cin):
        cg.add_input(f"arg{k}", t)
    cg.add_output("continue", cops.binary("less", cin[0], cin[1]))

    body_index, bg = g.add_subgraph(f"{scope}/body")
    bops = Ops(bg, f"{scope}/body")
    args = [bops.tensor("arg", s, dt, q) for s, dt, q in kinds]
    for k, t in enumerate(args):
        bg.add_input(f"arg{k}", t)
    counter, limit, steps, base, b_xw = args[:5]
    states = args[5 : 5 + 2 * len(dirs)]
    buffers = args[5 + 2 * len(dirs) :]
    k_const = bops.ints([chunk])
    back = back_write = fwd_write = None
    if any(d.reverse for d in dirs):  # read at T - K - counter
        back = bops.int_op("sub", bops.int_op("sub", steps, counter), k_const)
    if keep and any(d.realign for d in dirs):  # its segment holds [T - limit, T - base)
        back_write = bops.int_op("sub", bops.int_op("sub", limit, counter), k_const)
    if keep and not all(d.realign for d in dirs):
        fwd_write = bops.int_op("sub", counter, base)
    new_states, new_buffers = [], []
    for j, d in enumerate(dirs):
        width = d.width
        begin = bops.concat(
            [bops.ints([0]), back if d.reverse else counter, bops.ints([d.offset])], 0, "int32"
        )
        block = bops.slice(b_xw, begin, [-1, chunk, width], [kinds[4][0][0], chunk, width])
        xs = bops.unpack(block, axis=1) if chunk > 1 else [bops.reshape(block, [-1, width])]
        xs = _floats(bops, xs)
        cell = make_cell(bops, d, mode, d.name.split("/")[-1])
        h, c, hs = states[2 * j], states[2 * j + 1], []
        for k in range(chunk - 1, -1, -1) if d.reverse else range(chunk):
            h, c = cell.step(xs[k], h, c)
            hs.append(h)
        new_states += [h, c]
        if keep:
            p = d.params.spec.n_output
            order = hs[::-1] if d.realign else hs
            update = bops.pack(order, axis=1) if chunk > 1 else bops.reshape(h, [-1, 1, p])
            where = bops.concat(
                [bops.ints([0]), back_write if d.realign else fwd_write, bops.ints([0])],
                0,
                "int32",
            )
            new_buffers.append(bops.update_slice(buffers[j], update, where))
    outputs = [bops.int_op("add", counter, k_const), limit, steps, base, b_xw]
    for k, t in enumerate(outputs + new_states + new_buffers):
        bg.add_output(f"out{k}", t)
    return cond_index, body_index

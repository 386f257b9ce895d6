"""The exact composite: one direction as a hoisted input MatMul plus a Scan (or Loop) cell.

Everything the ``LSTM`` op cannot express — projection ± bias, TF cell_clip (clip of the
new cell state, before the output peephole), proj_clip, layer norm, relu6 / relu_n1_to_1 —
is spelled out with plain ops, in the canonical order of :mod:`edgelstm.reference`.

``X·W`` (plus the gate bias when there is no layer norm) is computed for all time steps by
one MatMul outside the recurrence; the per-step body does only ``h·R`` and the elementwise
cell. The recurrence is a ``Scan`` by default (reversal via its direction attributes, no
copies); ``Loop`` is kept for measurement (``tools/bench_onnx.py``).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from edgelstm.errors import SpecError
from edgelstm.ir.options import RECURRENCES
from edgelstm.ir.roles import name_of
from edgelstm.reference import LAYER_NORM_EPSILON
from edgelstm.targets.onnx.builder import GraphBuilder
from edgelstm.targets.onnx.params import ONNX_GATES, OnnxParams

DEFAULT_RECURRENCE = "scan"
"""Measured (tools/bench_onnx.py, H=256, T=50, 1 thread): Scan is faster than Loop."""


def _activation(gb: GraphBuilder, name: str, x: str, hint: str) -> str:
    if name == "tanh":
        return gb.op("Tanh", [x], hint=hint)
    if name == "relu":
        return gb.op("Relu", [x], hint=hint)
    if name == "sigmoid":
        return gb.op("Sigmoid", [x], hint=hint)
    if name == "linear":
        return x
    low, high = {"relu6": (0.0, 6.0), "relu_n1_to_1": (-1.0, 1.0)}[name]
    lo = gb.const("clip_lo", np.float32(low))
    hi = gb.const("clip_hi", np.float32(high))
    return gb.op("Clip", [x, lo, hi], hint=hint)


def _clip(gb: GraphBuilder, x: str, bound: float, hint: str) -> str:
    lo = gb.const(f"{hint}_lo", np.float32(-bound))
    hi = gb.const(f"{hint}_hi", np.float32(bound))
    return gb.op("Clip", [x, lo, hi], hint=hint)


def _cell(
    gb: GraphBuilder, p: OnnxParams, h_prev: str, c_prev: str, xw_t: str, hint: str
) -> tuple[str, str]:
    """One time step: returns (h, c). ``xw_t`` is X·W (+ bias unless layer norm) [B, 4N]."""
    spec = p.spec
    t = p.tensors
    n = spec.n_cell
    rt = gb.const(f"{hint}.RT", p.R.T)
    # MatMul + Add (not Gemm): as fast in ORT (fused), and dynamic quantization takes MatMul.
    z = gb.op("Add", [gb.op("MatMul", [h_prev, rt], hint="hR"), xw_t], hint="z")
    act = spec.activation

    if not spec.peephole and not spec.layer_norm:
        # i, o, f are contiguous in ONNX order: one Sigmoid over 3N.
        z_iof, z_c = gb.op("Split", [z, gb.ints("split", [3 * n, n])], 2, hint="z", axis=1)
        s = gb.op("Sigmoid", [z_iof], hint="gates")
        gate = dict(zip(ONNX_GATES[:3], gb.op("Split", [s], 3, hint="gate", axis=1), strict=True))
        g = _activation(gb, act, z_c, "g")
        c = gb.op("Add", [gb.op("Mul", [gate["forget"], c_prev]), gb.op("Mul", [gate["input"], g])])
        if spec.cell_clip > 0:
            c = _clip(gb, c, spec.cell_clip, "cell_clip")
        o = gate["output"]
    else:
        zs = dict(zip(ONNX_GATES, gb.op("Split", [z], 4, hint="z", axis=1), strict=True))

        def pre(g: str, cell: str | None) -> str:
            v = zs[g]
            if cell is not None and spec.peephole:
                peep = gb.const(f"{hint}.peep_{g}", t[name_of("peephole", g)])
                v = gb.op("Add", [v, gb.op("Mul", [cell, peep])], hint=f"z_{g}")
            if spec.layer_norm:
                coef = gb.const(f"{hint}.ln_{g}", t[name_of("ln", g)])
                bias = gb.const(f"{hint}.b_{g}", t[name_of("bias", g)])
                v = gb.op(
                    "LayerNormalization",
                    [v, coef, bias],
                    hint=f"ln_{g}",
                    axis=-1,
                    epsilon=LAYER_NORM_EPSILON,
                )
            return v

        f = gb.op("Sigmoid", [pre("forget", c_prev)], hint="f")
        i = gb.op("Sigmoid", [pre("input", c_prev)], hint="i")
        g = _activation(gb, act, pre("cell", None), "g")
        c = gb.op("Add", [gb.op("Mul", [f, c_prev]), gb.op("Mul", [i, g])], hint="c")
        if spec.cell_clip > 0:
            c = _clip(gb, c, spec.cell_clip, "cell_clip")
        o = gb.op("Sigmoid", [pre("output", c)], hint="o")
    h = gb.op("Mul", [o, _activation(gb, act, c, "act_c")], hint="m")
    if spec.projection:
        h = gb.op("MatMul", [h, gb.const(f"{hint}.projT", p.projection.T)], hint="proj")
        if spec.projection_bias:
            h = gb.op("Add", [h, gb.const(f"{hint}.proj_bias", p.projection_bias)], hint="proj")
        if spec.proj_clip > 0:
            h = _clip(gb, h, spec.proj_clip, "proj_clip")
    return h, c


def emit_composite(
    gb: GraphBuilder,
    x: str,
    p: OnnxParams,
    h0: str,
    c0: str,
    *,
    reverse_input: bool,
    reverse_output: bool,
    hint: str,
    recurrence: str = DEFAULT_RECURRENCE,
) -> tuple[str, str, str]:
    """Emit one direction over time-major ``x`` [T,B,I]; returns (Y [T,B,P], h, c).

    ``reverse_input`` walks the steps from last to first; ``reverse_output`` stores step
    outputs from the end (re-aligning a backward direction to input time).
    """
    if recurrence not in RECURRENCES:
        raise SpecError(f"recurrence: expected one of {RECURRENCES}, found {recurrence!r}")
    spec = p.spec
    n4, n_out, n_cell = 4 * spec.n_cell, spec.n_output, spec.n_cell
    xw = gb.op("MatMul", [x, gb.const(f"{hint}.WT", p.W.T)], hint=f"{hint}.xw")
    if not spec.layer_norm:  # with layer norm the bias is added after normalisation
        xw = gb.op("Add", [xw, gb.const(f"{hint}.B", p.B)], hint=f"{hint}.xw")

    body = GraphBuilder(gb)
    if recurrence == "scan":
        h_prev = body.add_input(f"{hint}.h_prev", [None, n_out], fresh=True)
        c_prev = body.add_input(f"{hint}.c_prev", [None, n_cell], fresh=True)
        xw_t = body.add_input(f"{hint}.xw_t", [None, n4], fresh=True)
    else:
        it = body.add_input(f"{hint}.iter", [], TensorProto.INT64, fresh=True)
        cond = body.add_input(f"{hint}.cond", [], TensorProto.BOOL, fresh=True)
        h_prev = body.add_input(f"{hint}.h_prev", [None, n_out], fresh=True)
        c_prev = body.add_input(f"{hint}.c_prev", [None, n_cell], fresh=True)
        steps = gb.op("Shape", [x], hint=f"{hint}.steps", start=0, end=1)
        trips = gb.op("Squeeze", [steps, gb.ints("axes0", [0])], hint=f"{hint}.trips")
        index = it
        if reverse_input:
            last = gb.op("Sub", [trips, gb.const("one", np.int64(1), np.int64)], hint="last")
            index = body.op("Sub", [last, it], hint="t")
        xw_t = body.op("Gather", [xw, index], hint="xw_t", axis=0)
        body.add_output(body.op("Identity", [cond], hint="cond"), None, [], TensorProto.BOOL)
    h, c = _cell(body, p, h_prev, c_prev, xw_t, hint)
    body.add_output(h, None, [None, n_out])
    body.add_output(c, None, [None, n_cell])
    body.add_output(body.op("Identity", [h], hint="y_t"), None, [None, n_out])
    names = [gb.fresh(f"{hint}.h"), gb.fresh(f"{hint}.c"), gb.fresh(f"{hint}.y")]
    if recurrence == "scan":
        gb.op(
            "Scan",
            [h0, c0, xw],
            names,
            hint=f"{hint}.scan",
            body=body.graph(f"{hint}_cell"),
            num_scan_inputs=1,
            scan_input_directions=[int(reverse_input)],
            scan_output_directions=[int(reverse_output)],
        )
        return names[2], names[0], names[1]
    gb.op("Loop", [trips, "", h0, c0], names, hint=f"{hint}.loop", body=body.graph(f"{hint}_cell"))
    y = names[2]
    if reverse_output:
        y = gb.op(
            "Slice",
            [
                y,
                gb.ints("start", [-1]),
                gb.ints("end", [-(2**63)]),
                gb.ints("axes0", [0]),
                gb.ints("step", [-1]),
            ],
            hint=f"{hint}.y",
        )
    return y, names[0], names[1]

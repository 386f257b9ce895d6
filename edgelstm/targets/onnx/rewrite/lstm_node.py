"""Rule: an ONNX ``LSTM`` / ``com.microsoft.DynamicQuantizeLSTM`` node -> edgelstm's lowering.

The node's canonical layer (:func:`edgelstm.importers.onnx_lstm.site_layer`) is emitted by
:func:`edgelstm.targets.onnx.to_onnx` as a one-layer model (fused ``LSTM`` or composite, as
:func:`~edgelstm.targets.onnx.emit.plan` decides; time-major for ``layout=0``), wrapped in
adapters to the node's own interface (initial states [D, B, H] -> per-direction [B, H];
``Y`` -> [T, D, B, H]; ``Y_h``/``Y_c`` -> [D, B, H]; ``layout=1`` transposed), converted to
the model's opset (:func:`_convert`) and inlined under a unique name prefix. A single fused
time-major node needs no adapters: it reads and returns the original tensors directly and
keeps the original node's name.

States: zero / constant-zero initial states are folded (the stateless form; the exporter's
shape glue that built them is then dead and pruned); any other tensor — a graph input (the
VAD streaming pattern), a slice of one, or a run-time value — is wired to the streaming
form's state inputs, so the graph's state interface is unchanged. ``sequence_lens`` is wired
when every direction is fused (the composite has no ragged form).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelstm.errors import EdgeLSTMError, UnsupportedError
from edgelstm.targets.onnx import OPSET, names
from edgelstm.targets.onnx.rewrite.protos import live_nodes, reads, rename
from edgelstm.targets.onnx.rewrite.rule import Context, Match, Replacement, RewriteRule

_IN = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c")
_OUT = ("Y", "Y_h", "Y_c")


@dataclasses.dataclass
class _Prepared:
    """What :meth:`LstmNodeRule.check` found, reused by the rewrite."""

    site: Any
    model: Any  # the one-layer LSTMModel
    n_dir: int
    hidden: int
    layout: int
    wired: dict[str, str]  # wrapper input name -> the original tensor it reads
    folded: list[str]  # state inputs folded as zeros
    plan: list[Any]


class LstmNodeRule(RewriteRule):
    """Replace every compilable LSTM node by edgelstm's exact lowering."""

    name = "lstm-node"

    def match(self, ctx: Context) -> Iterator[Match]:
        from edgelstm.importers.onnx_intake import find_lstms

        for site in find_lstms(ctx.model):
            yield Match(site.scope.graph, site.path, site.node, site.where, site)

    def check(self, ctx: Context, match: Match) -> str | None:
        try:
            match.data = _prepare(ctx, match.data)
        except EdgeLSTMError as exc:
            return str(exc)
        except (ValueError, IndexError, TypeError) as exc:  # inputs of impossible shapes
            return f"LSTM {match.where!r}: malformed inputs ({exc})"
        return None

    def rewrite(self, ctx: Context, match: Match) -> Replacement:
        prep: _Prepared = match.data
        wrapper = _wrapper(ctx, prep)
        if ctx.opset != OPSET:
            wrapper = _convert(wrapper, ctx.opset, match.where)
        prefix = ctx.unique_prefix(prep.site.name)
        node = prep.site.node
        boundary = dict(prep.wired)
        boundary |= {o: node.output[k] for k, o in enumerate(_OUT) if _has(node.output, k)}
        graph = wrapper.graph
        rename(graph, lambda n: boundary.get(n) or prefix + n)
        needed = {node.output[k] for k in range(len(_OUT)) if _has(node.output, k)}
        nodes = live_nodes(list(graph.node), needed)
        lstms = [n for n in nodes if n.op_type == "LSTM"]
        if len(lstms) == 1 and node.name:  # the one fused node keeps the user's node name
            lstms[0].name = node.name
        read = set().union(*(reads(n) for n in nodes))
        inits = [t for t in graph.initializer if t.name in read]
        fused = all(c.fused for c in prep.plan)
        how = "fused LSTM" if fused else "composite (" + ctx.options.onnx.recurrence + ")"
        if node.op_type == "DynamicQuantizeLSTM":
            how += " from DynamicQuantizeLSTM, dequantized"
        info = {
            "directions": prep.n_dir,
            "hidden_size": prep.hidden,
            "emit": [c.reason for c in prep.plan],
            "states": "wired" if prep.wired.keys() & {"initial_h", "initial_c"} else "zeros",
            "weights": sorted(t.name for t in inits),
            **({"folded": prep.folded} if prep.folded else {}),
            **({"notes": list(prep.site.notes)} if prep.site.notes else {}),
        }
        return Replacement(nodes, inits, how, info, dead=list(prep.site.used))


def _has(seq: Any, k: int) -> bool:
    return len(seq) > k and bool(seq[k])


def _prepare(ctx: Context, site: Any) -> _Prepared:
    """The node's layer and state wiring, or the typed reason it cannot be rewritten."""
    from edgelstm.importers.onnx_lstm import site_layer
    from edgelstm.ir.model import LSTMModel
    from edgelstm.targets.onnx.emit import SEQUENCE_LENS_REASON, plan

    if site.error is not None and "P" not in site.params:  # weights/attributes: refused
        raise site.error
    node = site.node
    layer = site_layer(dataclasses.replace(site, error=None))  # states are wired, not stored
    dtype = _elem_type(ctx, node.input[0] if node.input else "")
    if dtype not in (None, TensorProto.FLOAT):
        name = TensorProto.DataType.Name(dtype)
        raise UnsupportedError("onnx", f"LSTM {site.where!r}: X is {name}; only float32")
    wired, folded = {}, []
    for k, what in ((4, "sequence_lens"), (5, "initial_h"), (6, "initial_c")):
        if not _has(node.input, k):
            continue
        got = site.scope.resolve(node.input[k])
        zero = got.kind == "zero" or (got.kind == "const" and not np.any(got.value))
        if zero and what != "sequence_lens":
            folded.append(node.input[k])
        else:
            wired[what] = node.input[k]
    wired["X"] = node.input[0]
    time_major = int(site.attrs.get("layout", 0)) == 0
    model = LSTMModel(
        layers=(layer,),
        return_sequences=True,
        return_state=True,
        time_major=time_major,
        provenance={"source": "onnx", "nodes": [site.where], "notes": list(site.notes)},
    )
    choices = plan(model, ctx.options.onnx.force_composite)
    if "sequence_lens" in wired and not all(c.fused for c in choices):
        raise UnsupportedError("onnx", f"LSTM {site.where!r}: {SEQUENCE_LENS_REASON}")
    n_dir = 2 if layer.bidirectional else 1
    return _Prepared(
        site,
        model,
        n_dir,
        int(layer.forward.spec.n_cell),
        0 if time_major else 1,
        wired,
        folded,
        choices,
    )


def _elem_type(ctx: Context, name: str) -> int | None:
    """The element type of ``name`` (graph input, value_info or inferred), None if unknown."""
    types = ctx.cache.get("types")
    if types is None:
        from edgelstm.targets.onnx.weight_schemes import walk_graphs

        try:
            inferred = onnx.shape_inference.infer_shapes(ctx.model)
        except Exception:  # noqa: BLE001 - inference is best effort
            inferred = ctx.model
        types = {}
        for g in walk_graphs(inferred.graph):
            for vi in (*g.input, *g.value_info, *g.output):
                if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                    types[vi.name] = vi.type.tensor_type.elem_type
            for t in g.initializer:
                types[t.name] = t.data_type
        ctx.cache["types"] = types
    return types.get(name)


def _wrapper(ctx: Context, prep: _Prepared) -> onnx.ModelProto:
    """The emitted one-layer model inside adapters to the ONNX LSTM node's interface."""
    from edgelstm.ir.options import CompileOptions, OnnxOptions
    from edgelstm.targets.onnx.emit import to_onnx

    wired = prep.wired
    stateful = bool(wired.keys() & {"initial_h", "initial_c"})
    opts = ctx.options.onnx
    emitted = to_onnx(
        prep.model,
        CompileOptions(
            batch=None,
            source=prep.site.where,
            onnx=OnnxOptions(
                force_composite=opts.force_composite,
                recurrence=opts.recurrence,
                state_inputs=stateful,
                sequence_lens="sequence_lens" in wired,
            ),
        ),
    )
    g = emitted.graph
    rename(g, lambda n: "e/" + n)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: Any) -> str:
        if all(t.name != name for t in inits):
            inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    axis = prep.layout  # direction axis of initial_h / Y_h (layout 0: [D,B,H]; 1: [B,D,H])
    renamed = {"e/" + names.INPUT: "X"}
    if "sequence_lens" in wired:
        renamed["e/" + names.SEQUENCE_LENS] = "sequence_lens"
    sources: dict[str, str] = {}  # initial_h / initial_c as [D, B, H] tensors
    if stateful:
        for which in ("h", "c"):
            src = f"initial_{which}"
            if src not in wired:  # the other state is given: this one starts at zero
                other = "initial_c" if which == "h" else "initial_h"
                shape = f"a/{src}.shape"
                nodes.append(helper.make_node("Shape", [other], [shape]))
                nodes.append(
                    helper.make_node(
                        "ConstantOfShape",
                        [shape],
                        [f"a/{src}"],
                        value=numpy_helper.from_array(np.zeros(1, np.float32)),
                    )
                )
                src = f"a/{src}"
            sources[which] = src
            for d in range(prep.n_dir):
                out = f"a/{which}0.{d}"
                index = const(f"a/index{d}", np.int64(d))
                nodes.append(helper.make_node("Gather", [src, index], [out], axis=axis))
                renamed["e/" + names.initial_state(0, d, which)] = out
    emitted_inputs = {i.name for i in g.input}
    rename(g, lambda n: renamed.get(n, n))
    missing = emitted_inputs - set(renamed)
    if missing:  # pragma: no cover - the emitter's interface changed
        raise UnsupportedError("onnx", f"unexpected emitted inputs {sorted(missing)}")
    nodes.extend(g.node)
    inits.extend(g.initializer)
    nodes += _outputs(prep, const)
    nodes = _direct(nodes, prep, sources)
    seq = ["t", "b"] if prep.layout == 0 else ["b", "t"]
    dirs = ["d", "b"] if prep.layout == 0 else ["b", "d"]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [*seq, "i"])]
    for what in ("initial_h", "initial_c"):
        if what in wired:
            inputs.append(helper.make_tensor_value_info(what, TensorProto.FLOAT, [*dirs, "h"]))
    if "sequence_lens" in wired:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["b"]))
    ys = [*seq[:1], "d", *seq[1:]] if prep.layout == 0 else [*seq, "d"]
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [*ys, "h"])]
    outputs += [helper.make_tensor_value_info(o, TensorProto.FLOAT, [*dirs, "h"]) for o in _OUT[1:]]
    graph = helper.make_graph(nodes, "lstm", inputs, outputs, inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    proto.ir_version = emitted.ir_version
    return proto


def _direct(
    nodes: list[onnx.NodeProto], prep: _Prepared, sources: dict[str, str]
) -> list[onnx.NodeProto]:
    """One fused time-major LSTM node: it reads X and the [D, B, H] states and returns Y,
    Y_h, Y_c itself — the emitter's per-direction glue and the adapters around it compose
    to the identity, so they are dropped (same tensors, no copies at run time)."""
    lstms = [n for n in nodes if n.op_type == "LSTM"]
    if prep.layout != 0 or len(lstms) != 1 or lstms[0].input[0] != "X":
        return nodes
    (lstm,) = lstms
    ins = [*lstm.input, *[""] * (7 - len(lstm.input))]
    if sources:
        ins[5], ins[6] = sources["h"], sources["c"]
    while ins and not ins[-1]:
        ins.pop()
    lstm.input[:] = ins
    kept = [n for n in nodes if n is lstm or not set(n.output) & set(_OUT)]
    lstm.output[:] = list(_OUT)
    return live_nodes(kept, set(_OUT))


def _outputs(prep: _Prepared, const: Any) -> list[onnx.NodeProto]:
    """Emitted y [T,B,D*H] (or [B,T,D*H]) and per-direction [B,H] -> Y, Y_h, Y_c."""
    d, h, axis = prep.n_dir, prep.hidden, prep.layout
    y = "e/" + names.OUTPUT
    out = []
    if d == 1 and axis == 0:  # [T, B, H] -> [T, 1, B, H]
        out.append(helper.make_node("Unsqueeze", [y, const("a/axis1", [1])], ["Y"]))
    else:
        shape = const("a/ydirs", np.array([0, 0, d, h], np.int64))
        if axis == 0:  # [T, B, D, H] -> [T, D, B, H]
            out.append(helper.make_node("Reshape", [y, shape], ["a/y4"]))
            out.append(helper.make_node("Transpose", ["a/y4"], ["Y"], perm=[0, 2, 1, 3]))
        else:  # layout 1: Y is [B, T, D, H]
            out.append(helper.make_node("Reshape", [y, shape], ["Y"]))
    axes = const("a/axisdir", np.array([axis], np.int64))
    for which, name in (("h", "Y_h"), ("c", "Y_c")):
        parts = []
        for k in range(d):
            part = name if d == 1 else f"a/{which}.{k}"
            final = "e/" + names.final_state(0, k, which)
            out.append(helper.make_node("Unsqueeze", [final, axes], [part]))
            parts.append(part)
        if d > 1:
            out.append(helper.make_node("Concat", parts, [name], axis=axis))
    return out


def _convert(wrapper: onnx.ModelProto, opset: int, where: str) -> onnx.ModelProto:
    """The wrapper at the model's opset, or why it cannot be expressed there.

    Newer opsets: onnx's version converter. Older ones (it has few down adapters): the
    inputs that became attributes below opset 13 (Squeeze/Unsqueeze axes, Split sizes) are
    moved back, the opset is relabelled, and onnx's checker — which validates every node
    against its schema at that opset — must accept the result.
    """
    try:
        if opset > OPSET:
            from onnx import version_converter

            converted = version_converter.convert_version(wrapper, opset)
        else:
            converted = _downgrade(wrapper, opset)
        onnx.checker.check_model(converted)
    except Exception as exc:  # noqa: BLE001 - the converter/checker raise several kinds
        text = str(exc).strip()
        detail = text.splitlines()[-1] if text else type(exc).__name__
        raise UnsupportedError(
            "onnx",
            f"LSTM {where!r}: edgelstm's lowering (opset {OPSET}) cannot be expressed at the "
            f"model's opset {opset} ({detail[:200]}); convert the model to opset {OPSET} "
            "first (onnx.version_converter.convert_version) and retry",
        ) from None
    return converted


_AS_ATTRIBUTE = {"Squeeze": "axes", "Unsqueeze": "axes", "Split": "split"}  # inputs since 13


def _downgrade(wrapper: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    from edgelstm.targets.onnx.weight_schemes import walk_graphs

    out = onnx.ModelProto()
    out.CopyFrom(wrapper)
    graphs = list(walk_graphs(out.graph))
    consts = {t.name: numpy_helper.to_array(t) for g in graphs for t in g.initializer}
    for g in graphs:
        for node in g.node:
            attr = _AS_ATTRIBUTE.get(node.op_type)
            if opset < 13 and attr and len(node.input) > 1 and node.input[1]:
                if node.input[1] not in consts:
                    raise UnsupportedError("onnx", f"{node.op_type} {attr} are not constant")
                values = [int(v) for v in np.ravel(consts[node.input[1]])]
                node.attribute.append(helper.make_attribute(attr, values))
                del node.input[1]
    for o in out.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = opset
    return out

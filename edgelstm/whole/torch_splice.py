"""``nn.LSTM(proj_size>0)`` in a whole-module ONNX export: a placeholder, then edgelstm's lowering.

The ONNX ``LSTM`` op has no projection: torch's TorchScript exporter refuses such an LSTM and
the dynamo exporter writes a wrong graph. So while the module is exported each one is swapped
for a placeholder that exports as a single ``edgelstm.splice::LSTM`` node (TorchScript: an
``autograd.Function`` with a ``symbolic``; dynamo: a ``torch.library`` custom op with a
translation), and afterwards that node is replaced by edgelstm's exact composite of the same
``nn.LSTM`` (:func:`edgelstm.from_torch` + :func:`edgelstm.targets.onnx.to_onnx`), converted
to the model's opset, with the placeholder's interface: ``(y, h_n, c_n)`` from ``x`` and the
optional ``(h0, c0)``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgelstm.errors import UnsupportedError
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.onnx import OPSET, names

SPLICE_DOMAIN = "edgelstm.splice"
"""Domain of the placeholder node a projection ``nn.LSTM`` exports as (never in a result)."""
_OP_NAME = "edgelstm_splice::lstm"
_FROZEN: dict[int, Any] = {}
"""Frozen LSTM copies the dynamo custom op runs, by key (only while a module is exported)."""
_KEYS = itertools.count()


@dataclass
class _Swap:
    """One projection nn.LSTM replaced by a placeholder while the module is exported."""

    index: int  # the placeholder node's "index" attribute
    path: str  # the submodule's name in the user's module
    lstm: Any  # the user's nn.LSTM (restored afterwards)
    called: int = 0
    key: int | None = None  # the dynamo custom op's registry key


def _placeholder_function(torch: Any, swap: _Swap) -> Any:
    """An autograd.Function that runs a frozen copy of the LSTM and exports as one node."""
    frozen = copy.deepcopy(swap.lstm).requires_grad_(False).eval()
    index = swap.index

    class Placeholder(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, *states: Any) -> Any:
            with torch.no_grad():
                y, (h, c) = frozen(x, tuple(states) if states else None)
            return y, h, c

        @staticmethod
        def symbolic(g: Any, x: Any, *states: Any) -> Any:
            return g.op(f"{SPLICE_DOMAIN}::LSTM", x, *states, index_i=index, outputs=3)

    return Placeholder


def _splice_module(torch: Any, swap: _Swap, dynamo: bool) -> Any:
    """The placeholder module (the nn.LSTM is held outside the module tree: no parameters)."""
    if dynamo:
        op = _custom_op(torch)
        swap.key = next(_KEYS)
        _FROZEN[swap.key] = copy.deepcopy(swap.lstm).requires_grad_(False).eval()

        def function_apply(x: Any, *states: Any) -> Any:
            h0, c0 = states if states else (None, None)
            return op(x, swap.key, swap.index, h0, c0)

    else:
        function_apply = _placeholder_function(torch, swap).apply

    class _Splice(torch.nn.Module):
        def forward(self, x: Any, hx: Any = None) -> Any:
            if not isinstance(x, torch.Tensor):
                raise UnsupportedError(
                    "onnx",
                    f"nn.LSTM {swap.path!r} gets a {type(x).__name__} (e.g. a PackedSequence): "
                    "only a padded [B, T, I] / [T, B, I] tensor exports; pad the batch",
                )
            if x.dim() != 3 or x.dtype != torch.float32:
                raise UnsupportedError(
                    "onnx",
                    f"nn.LSTM {swap.path!r} gets a {x.dim()}-D {x.dtype} input; only a batched "
                    "3-D float32 input exports",
                )
            swap.called += 1
            y, h, c = function_apply(x, *(hx or ()))
            return y, (h, c)

    return _Splice()


def swap_projections(torch: Any, module: Any, dynamo: bool) -> list[tuple[Any, str, Any, _Swap]]:
    """Put a placeholder in place of every ``nn.LSTM(proj_size>0)`` (undo: :func:`restore`)."""
    done: list[tuple[Any, str, Any, _Swap]] = []
    try:
        for path, sub in list(module.named_modules()):
            if isinstance(sub, torch.nn.LSTM) and sub.proj_size > 0:
                done.append(_swap_one(torch, module, path, sub, len(done), dynamo))
    except BaseException:
        restore(done)  # the user's module is never left half-swapped
        raise
    return done


def _swap_one(
    torch: Any, module: Any, path: str, sub: Any, index: int, dynamo: bool
) -> tuple[Any, str, Any, _Swap]:
    if type(sub).forward is not torch.nn.LSTM.forward:
        raise UnsupportedError("onnx", f"{type(sub).__name__} {path!r} overrides nn.LSTM.forward")
    parent_path, _, attr = path.rpartition(".")
    if not attr:
        raise UnsupportedError(
            "onnx",
            "the module is itself an nn.LSTM with proj_size: compile it with "
            "edgelstm.to_onnx(edgelstm.from_torch(lstm))",
        )
    parent = module.get_submodule(parent_path) if parent_path else module
    swap = _Swap(index, path, sub)
    setattr(parent, attr, _splice_module(torch, swap, dynamo))
    return parent, attr, sub, swap


def restore(swapped: Sequence[tuple[Any, str, Any, _Swap]]) -> None:
    """Put the user's nn.LSTMs back (and drop the dynamo op's frozen copies)."""
    for parent, attr, original, swap in swapped:
        setattr(parent, attr, original)
        _FROZEN.pop(swap.key, None)


def splice_all(
    proto: onnx.ModelProto, swaps: list[_Swap], options: CompileOptions
) -> tuple[list[dict[str, Any]], set[str]]:
    """Replace every placeholder node by edgelstm's lowering of its nn.LSTM (in place)."""
    from edgelstm.targets.onnx.rewrite.protos import splice

    by_index = {s.index: s for s in swaps}
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    spliced, weights = [], set()
    for count, node in enumerate([n for n in proto.graph.node if n.domain == SPLICE_DOMAIN]):
        index = next(a.i for a in node.attribute if a.name == "index")
        swap = by_index[index]
        prefix = f"edgelstm.splice{count}.{swap.path}/"
        nodes, inits, how = _lowering(swap, node, options, prefix, opset)
        splice(proto.graph, node, nodes, inits)
        weights |= {t.name for t in inits}
        spliced.append({"module": swap.path, "how": how, "node": node.name})
    missing = {s.path for s in swaps} - {d["module"] for d in spliced}
    if missing:  # e.g. called inside a scripted loop: not one node of the top graph
        raise UnsupportedError(
            "onnx",
            f"nn.LSTM {sorted(missing)} (proj_size) did not export as a call in the module's "
            "top graph; compile it alone with edgelstm.from_torch(lstm)",
        )
    keep = [o for o in proto.opset_import if o.domain != SPLICE_DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    return spliced, weights


def _lowering(
    swap: _Swap, node: onnx.NodeProto, options: CompileOptions, prefix: str, opset: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """edgelstm's ONNX of ``swap.lstm`` wired to the placeholder node's inputs and outputs."""
    from edgelstm.importers.torch_lstm import from_torch
    from edgelstm.targets.onnx.emit import plan, to_onnx
    from edgelstm.targets.onnx.rewrite.protos import rename

    model = from_torch(swap.lstm)
    with_states = len([n for n in node.input if n]) == 3  # this call passed (h0, c0)
    onnx_options = replace(options.onnx, state_inputs=with_states, sequence_lens=False)
    emitted = to_onnx(
        model,
        CompileOptions(batch=None, source=f"torch module {swap.path}", onnx=onnx_options),
    )
    if opset != OPSET:  # the dynamo exporter's opset (18+)
        emitted = _at_opset(emitted, opset, swap.path)
    graph = emitted.graph
    boundary: dict[str, str] = {names.INPUT: node.input[0]}
    extra: list[onnx.NodeProto] = []
    extra_inits: list[onnx.TensorProto] = []
    walk = list(model.walk())
    n_dir = max(v.d for v in walk) + 1
    for v in walk:
        slot = v.k * n_dir + v.d  # torch's h_n / c_n order: layer-major, direction minor
        if with_states:
            for which, src in (("h", node.input[1]), ("c", node.input[2])):
                index = f"{prefix}index{slot}"
                if not any(t.name == index for t in extra_inits):
                    extra_inits.append(numpy_helper.from_array(np.int64(slot), index))
                out = f"{prefix}{which}0.{slot}"
                extra.append(helper.make_node("Gather", [src, index], [out], axis=0))
                boundary[names.initial_state(v.k, v.d, which)] = out
    rename(graph, lambda n: boundary.get(n, prefix + n))
    tail: list[onnx.NodeProto] = []
    axes = f"{prefix}axis0"
    extra_inits.append(numpy_helper.from_array(np.array([0], np.int64), axes))
    tail.append(helper.make_node("Identity", [prefix + names.OUTPUT], [node.output[0]]))
    for which, out in (("h", node.output[1]), ("c", node.output[2])):
        parts = []
        for v in walk:
            part = f"{prefix}{which}_n.{v.k}.{v.d}"
            final = prefix + names.final_state(v.k, v.d, which)
            tail.append(helper.make_node("Unsqueeze", [final, axes], [part]))
            parts.append(part)
        tail.append(helper.make_node("Concat", parts, [out], axis=0))
    choices = plan(model, options.onnx.force_composite)
    how = "fused LSTM" if all(c.fused for c in choices) else "composite"
    nodes = [*extra, *graph.node, *tail]
    return _live(nodes, set(node.output)), [*extra_inits, *graph.initializer], how


def _at_opset(emitted: onnx.ModelProto, opset: int, path: str) -> onnx.ModelProto:
    """edgelstm's lowering (opset OPSET) at the exported model's opset, or why not."""
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(emitted, opset)
        onnx.checker.check_model(converted)
    except Exception as exc:  # noqa: BLE001 - the converter raises several kinds
        raise UnsupportedError(
            "onnx",
            f"nn.LSTM {path!r}: edgelstm's lowering (opset {OPSET}) cannot be expressed at the "
            f"exported opset {opset} ({str(exc).strip()[:200]}); use dynamo=False",
        ) from None
    return converted


def _live(nodes: list[onnx.NodeProto], needed: set[str]) -> list[onnx.NodeProto]:
    from edgelstm.targets.onnx.rewrite.protos import live_nodes

    return live_nodes(nodes, {n for n in needed if n})


_REGISTERED: list[Any] = []


def _custom_op(torch: Any) -> Any:
    """The dynamo placeholder: a custom op running the frozen LSTM (registered once)."""
    if _REGISTERED:
        return _REGISTERED[0]

    def run(x: Any, key: int, index: int, h0: Any, c0: Any) -> tuple[Any, Any, Any]:
        with torch.no_grad():
            y, (h, c) = _FROZEN[key](x, None if h0 is None else (h0, c0))
        return y.clone(), h.clone(), c.clone()

    op = torch.library.custom_op(
        _OP_NAME,
        run,
        mutates_args=(),
        schema="(Tensor x, int key, int index, Tensor? h0, Tensor? c0) -> (Tensor, Tensor, Tensor)",
    )

    @op.register_fake
    def _shapes(x: Any, key: int, index: int, h0: Any, c0: Any) -> Any:
        lstm = _FROZEN[key]
        dirs = 2 if lstm.bidirectional else 1
        width = lstm.proj_size or lstm.hidden_size
        batch, steps = (x.shape[0], x.shape[1]) if lstm.batch_first else (x.shape[1], x.shape[0])
        seq = (batch, steps) if lstm.batch_first else (steps, batch)
        layers = lstm.num_layers * dirs
        return (
            x.new_empty((*seq, dirs * width)),
            x.new_empty((layers, batch, width)),
            x.new_empty((layers, batch, lstm.hidden_size)),
        )

    _REGISTERED.append(op)
    return op


def translation_table(torch: Any) -> dict[Any, Any]:
    """The dynamo exporter's translation of the custom op: one ``edgelstm.splice::LSTM``."""
    from onnx.defs import OpSchema
    from onnxscript import values

    param, optional = OpSchema.FormalParameter, OpSchema.FormalParameterOption.Optional
    schema = OpSchema(
        "LSTM",
        SPLICE_DOMAIN,
        1,
        inputs=[
            param("X", "T"),
            param("initial_h", "T", param_option=optional),
            param("initial_c", "T", param_option=optional),
        ],
        outputs=[param("Y", "T"), param("Y_h", "T"), param("Y_c", "T")],
        type_constraints=[("T", ["tensor(float)"], "")],
        attributes=[OpSchema.Attribute("index", OpSchema.AttrType.INT, "")],
    )
    from onnxscript._internal.values import Op

    placeholder = Op(values.Opset(SPLICE_DOMAIN, 1), "LSTM", schema)

    def translate(x: Any, key: int, index: int, h0: Any = None, c0: Any = None) -> Any:
        states = () if h0 is None else (h0, c0)
        return placeholder(x, *states, index=index)

    return {torch.ops.edgelstm_splice.lstm.default: translate}

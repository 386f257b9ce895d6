"""Resolve what feeds an LSTM input: constants, zeros built from shapes, graph inputs.

Exporters rarely hand an LSTM plain initializers. torch.onnx builds zero states with
``Shape -> Gather -> Concat -> Expand``/``ConstantOfShape`` on the batch size and slices
them per layer; tf2onnx ``Unsqueeze``-s a zeros tensor; the onnx backend cases pass weights
as graph inputs with initializer defaults. A :class:`Scope` answers, for one tensor name:

* ``const``: its value, when every ancestor is a constant (folded with onnx's reference
  evaluator on the sub-model that computes it);
* ``zero``: provably all zeros for *any* input shape, by structure (a zero
  ``ConstantOfShape`` / constant, passed only through zero-preserving ops) — no sampling;
* ``input``: a graph input (per-layer ``Slice``/``Squeeze`` of one is followed to it);
* ``computed``: anything else, with the op that computes it (the caller refuses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.errors import ModelFileError
from edgelstm.importers.onnx_graph import node_attrs

# Ops whose output is all zeros whenever their first (data) input is.
_ZERO_KEEPING = {"Expand", "Slice", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Identity"}
_ZERO_KEEPING |= {"Cast", "Tile", "Gather", "Flatten", "Split", "CastLike"}
# Ops followed back to a graph input as "a slice of that input" (per-layer state slices).
_SLICING = {"Slice", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Gather", "Split"}
_MAX_FOLD_NODES = 200


@dataclass
class Resolved:
    """What one tensor name turned out to be (see the module docstring)."""

    kind: str  # "const" | "zero" | "input" | "computed" | "absent"
    value: np.ndarray | None = None
    source: str = ""  # the graph input (kind "input") or the computing op (kind "computed")
    nodes: list[Any] = field(default_factory=list)  # the nodes this answer accounts for


class Scope:
    """Name resolution over one graph; a subgraph's scope falls back to its parent's."""

    def __init__(self, graph: Any, where: str, opsets: dict[str, int], parent: Scope | None):
        from onnx import numpy_helper

        self.graph, self.where, self.opsets, self.parent = graph, where, opsets, parent
        self.producer: dict[str, Any] = {}
        self.inits: dict[str, Any] = {t.name: t for t in graph.initializer}
        self.consts: dict[str, np.ndarray] = {}
        self.inputs = {i.name: i for i in graph.input if i.name not in self.inits}
        self.defaulted = {i.name for i in graph.input if i.name in self.inits}
        self._np = numpy_helper
        self._zeros: dict[str, Resolved | None] = {}
        for node in graph.node:
            self.producer.update((o, node) for o in node.output if o)

    def owner(self, name: str) -> Scope | None:
        """The innermost scope that defines ``name``."""
        if name in self.producer or name in self.inits or name in self.inputs:
            return self
        return self.parent.owner(name) if self.parent else None

    def resolve(self, name: str) -> Resolved:
        """Classify ``name``; never raises for well-formed graphs."""
        if not name:
            return Resolved("absent")
        scope = self.owner(name)
        if scope is None:
            return Resolved("computed", source="nothing (undefined name)")
        return scope._resolve_here(name)

    def _resolve_here(self, name: str) -> Resolved:
        if name in self.inits:
            return Resolved("const", self._init(name))
        if name in self.inputs:
            return Resolved("input", source=name)
        node = self.producer[name]
        folded = self._fold(name)
        if folded is not None:
            return folded
        zero = self._zero(name, 0)
        if zero is not None:
            return zero
        sliced = self._sliced_input(name)
        if sliced is not None:
            return sliced
        return Resolved("computed", source=f"{node.op_type} node {node.name!r}")

    def _init(self, name: str) -> np.ndarray:
        if name not in self.consts:
            try:
                self.consts[name] = np.asarray(self._np.to_array(self.inits[name]))
            except Exception as exc:  # noqa: BLE001 - malformed TensorProto
                raise ModelFileError(
                    f"{self.where}: tensor {name!r} is unreadable ({exc})"
                ) from None
        return self.consts[name]

    def _ancestors(self, name: str) -> tuple[list[Any], set[str]] | None:
        """Nodes computing ``name`` in this scope and the initializers they read; None when
        a graph input, an outer-scope name or a subgraph-carrying node is reached."""
        nodes: dict[int, Any] = {}
        needed: set[str] = set()
        stack = [name]
        while stack:
            cur = stack.pop()
            if not cur or cur in needed:
                continue
            if cur in self.inits:
                needed.add(cur)
                continue
            node = self.producer.get(cur)
            if node is None or any(a.type in (5, 10) for a in node.attribute):  # GRAPH(S)
                return None
            if id(node) not in nodes:
                nodes[id(node)] = node
                if len(nodes) > _MAX_FOLD_NODES:
                    return None
                stack.extend(node.input)
        order = {id(n): k for k, n in enumerate(self.graph.node)}
        return sorted(nodes.values(), key=lambda n: order[id(n)]), needed

    def _fold(self, name: str) -> Resolved | None:
        """Evaluate ``name`` when it depends on constants only (onnx's reference evaluator)."""
        found = self._ancestors(name)
        if found is None:
            return None
        nodes, needed = found
        if any(n.domain not in ("", "ai.onnx") for n in nodes):
            return None
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        graph = helper.make_graph(
            nodes,
            "fold",
            [],
            [helper.make_value_info(name, helper.TypeProto())],
            [self.inits[n] for n in sorted(needed)],
        )
        opsets = [helper.make_opsetid(d, v) for d, v in self.opsets.items()]
        try:
            (value,) = ReferenceEvaluator(helper.make_model(graph, opset_imports=opsets)).run(
                None, {}
            )
        except Exception:  # noqa: BLE001 - not foldable here: the caller refuses with a reason
            return None
        return Resolved("const", np.asarray(value), nodes=nodes)

    def _zero(self, name: str, depth: int) -> Resolved | None:
        """A structural proof that ``name`` is all zeros for any input shape, or None."""
        if name in self._zeros:  # memo: Concat fan-in is not re-walked; a cycle gives None
            return self._zeros[name]
        self._zeros[name] = None
        self._zeros[name] = self._zero_walk(name, depth)
        return self._zeros[name]

    def _zero_walk(self, name: str, depth: int) -> Resolved | None:
        node = self.producer.get(name)
        if depth > 64 or (node is None and name not in self.inits):
            return None
        if node is None or node.op_type in ("ConstantOfShape", "Constant"):
            return self._zero_source(name, node)
        if node.op_type == "Concat":
            parts = [self._zero(i, depth + 1) for i in node.input]
        elif node.op_type in _ZERO_KEEPING and node.input:
            shape = Resolved("zero", nodes=self._shape_nodes(node))  # its shape helpers
            parts = [self._zero(node.input[0], depth + 1), shape]
        else:
            return None
        if not all(parts):
            return None
        return Resolved("zero", nodes=[node, *(n for p in parts if p for n in p.nodes)])

    def _zero_source(self, name: str, node: Any) -> Resolved | None:
        """An initializer, Constant or ConstantOfShape that holds only zeros."""
        if node is None:
            value = self._init(name)
            ok = np.issubdtype(value.dtype, np.number) and not np.any(value)
            return Resolved("zero") if ok else None
        if node.op_type == "ConstantOfShape":
            value = node_attrs(node).get("value")
            ok = value is None or not np.any(self._np.to_array(value))
            return Resolved("zero", nodes=[node, *self._shape_nodes(node)]) if ok else None
        folded = self._fold(name)
        if folded is not None and folded.value is not None and not np.any(folded.value):
            return Resolved("zero", nodes=folded.nodes)
        return None

    def shape_only(self, name: str) -> bool:
        """True when ``name`` depends on graph inputs only through their shapes."""
        stack, seen = [name], set()
        while stack:
            cur = stack.pop()
            if not cur or cur in seen or cur in self.inits:
                continue
            seen.add(cur)
            if cur in self.inputs or cur not in self.producer:
                return False
            node = self.producer[cur]
            if node.op_type != "Shape":
                stack.extend(node.input)
        return True

    def _shape_nodes(self, node: Any) -> list[Any]:
        """The shape-only helpers of a zero-keeping node (its non-data inputs' producers)."""
        out: list[Any] = []
        stack = list(node.input[1:] if node.op_type != "ConstantOfShape" else node.input)
        while stack:
            n = self.producer.get(stack.pop())
            if n is not None and n not in out:
                out.append(n)
                if n.op_type != "Shape":
                    stack.extend(n.input)
        return out

    def _sliced_input(self, name: str) -> Resolved | None:
        """A graph input reached through slicing steps (a per-layer slice of a state)."""
        steps: list[Any] = []
        while name in self.producer and self.producer[name].op_type in _SLICING:
            if any(step is self.producer[name] for step in steps):  # a cycle: not an input
                return None
            steps.append(self.producer[name])
            name = self.producer[name].input[0] if self.producer[name].input else ""
        if steps and name in self.inputs:
            return Resolved("input", source=name, nodes=steps)
        return None

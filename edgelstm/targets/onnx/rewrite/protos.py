"""Graph surgery on ONNX protos that the rules share: rename, splice, prune.

Subgraphs (If/Loop/Scan bodies) read outer-scope names implicitly, so every "which names
does this node read" question here recurses into them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import onnx

GRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graph attributes of ``node`` (live references)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def reads(node: onnx.NodeProto) -> set[str]:
    """Every name ``node`` reads: its inputs and what its subgraphs take from outer scopes."""
    names = {n for n in node.input if n}
    for sub in subgraphs(node):
        names |= outer_reads(sub)
    return names


def outer_reads(graph: onnx.GraphProto) -> set[str]:
    """Names ``graph`` reads but does not define (they come from enclosing scopes)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.name for t in graph.sparse_initializer}
    used: set[str] = {o.name for o in graph.output}
    for node in graph.node:
        defined.update(o for o in node.output if o)
        used |= reads(node)
    return used - defined


def rename(graph: onnx.GraphProto, fn: Callable[[str], str]) -> None:
    """Rename every tensor and node name of ``graph`` and its subgraphs by ``fn`` (in place).

    Empty names (omitted optional inputs/outputs) stay empty.
    """

    def new(name: str) -> str:
        return fn(name) if name else name

    for vi in (*graph.input, *graph.output, *graph.value_info):
        vi.name = new(vi.name)
    for t in graph.initializer:
        t.name = new(t.name)
    for node in graph.node:
        node.name = new(node.name)
        node.input[:] = [new(n) for n in node.input]
        node.output[:] = [new(n) for n in node.output]
        for sub in subgraphs(node):
            rename(sub, fn)


def live_nodes(nodes: list[onnx.NodeProto], needed: set[str]) -> list[onnx.NodeProto]:
    """The nodes (in order) that contribute to ``needed`` names; the others are dead."""
    want = set(needed)
    keep = [False] * len(nodes)
    for k in range(len(nodes) - 1, -1, -1):
        if any(o and o in want for o in nodes[k].output):
            keep[k] = True
            want |= reads(nodes[k])
    return [n for n, k in zip(nodes, keep, strict=True) if k]


def consumers(graph: onnx.GraphProto) -> set[str]:
    """Names read by ``graph``'s nodes (subgraphs included) or returned as its outputs."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used |= reads(node)
    return used


def prune(
    graph: onnx.GraphProto,
    candidates: list[onnx.NodeProto],
    init_names: set[str],
) -> int:
    """Drop the ``candidates`` (and initializers in ``init_names``) nothing reads any more.

    Only candidates are dropped (the nodes a rewritten LSTM used for its weights and folded
    states), never other nodes of the user's graph; names read inside subgraphs count as
    read. Graph inputs and their initializer defaults
    stay (the graph's interface is kept). Returns how many nodes were removed.
    """
    keys = {_key(n) for n in candidates}
    removed = 0
    while True:
        used = consumers(graph)
        dead = [
            k
            for k, n in enumerate(graph.node)
            if _key(n) in keys and not any(o and o in used for o in n.output)
        ]
        if not dead:
            break
        for k in reversed(dead):
            del graph.node[k]
        removed += len(dead)
    used = consumers(graph) | {i.name for i in graph.input}
    keep = [t for t in graph.initializer if t.name not in init_names or t.name in used]
    if len(keep) != len(graph.initializer):
        kept = [onnx.TensorProto() for _ in keep]
        for dst, src in zip(kept, keep, strict=True):
            dst.CopyFrom(src)
        del graph.initializer[:]
        graph.initializer.extend(kept)
    names = {o for n in graph.node for o in n.output} | {t.name for t in graph.initializer}
    names |= {i.name for i in graph.input}
    stale = [vi for vi in graph.value_info if vi.name not in names]
    for vi in stale:
        graph.value_info.remove(vi)
    return removed


def _key(node: onnx.NodeProto) -> tuple[str, ...]:
    """A node's identity within a graph (its outputs are unique there)."""
    return (node.op_type, node.name, *node.output)


def splice(
    graph: onnx.GraphProto,
    node: onnx.NodeProto,
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
) -> None:
    """Replace ``node`` in ``graph`` by ``nodes`` at its position; add ``initializers``."""
    key = _key(node)
    spot = next(k for k, n in enumerate(graph.node) if _key(n) == key)
    rest = [onnx.NodeProto() for _ in range(len(graph.node) - spot - 1)]
    for dst, src in zip(rest, graph.node[spot + 1 :], strict=True):
        dst.CopyFrom(src)
    del graph.node[spot:]
    graph.node.extend(nodes)
    graph.node.extend(rest)
    graph.initializer.extend(initializers)

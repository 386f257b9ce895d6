"""A small rewrite-rule base for ONNX protos, in the style of onnxscript's rewriter.

A rule finds candidate nodes (:meth:`RewriteRule.match`), says why one cannot be rewritten
(:meth:`RewriteRule.check` returns a reason, or None) and builds its replacement
(:meth:`RewriteRule.rewrite`). :mod:`.apply` drives the rules over the top graph and every
subgraph and records each decision in a :class:`RewriteReport`, so nothing is refused silently.

Why our own base instead of onnxscript's pattern rewriter: the LSTM rule matches one node
whose meaning depends on graph-level facts (initializers, outer scopes, folded shape glue)
that :mod:`edgelstm.importers.onnx_intake` already resolves on protos, and its replacement is
a whole subgraph emitted by :func:`edgelstm.targets.onnx.to_onnx`; a pattern DAG matcher adds
a dependency (onnxscript/onnx-ir) without making either part simpler.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

    from edgelstm.ir.options import CompileOptions


@dataclass
class Match:
    """One candidate: a node of ``graph`` (at ``path``) and what the rule found about it."""

    graph: onnx.GraphProto
    path: str  # "" for the top-level graph (as :mod:`edgelstm.importers.onnx_intake` names it)
    node: onnx.NodeProto
    where: str  # path/name, for the report
    data: Any = None  # rule-specific (the LSTM rule: its LstmSite)


@dataclass
class Replacement:
    """Nodes and initializers that take the matched node's place (same output names)."""

    nodes: list[onnx.NodeProto]
    initializers: list[onnx.TensorProto]
    how: str  # one line for the report ("fused LSTM", "composite (Scan)", ...)
    details: dict[str, Any] = field(default_factory=dict)
    dead: list[onnx.NodeProto] = field(default_factory=list)  # nodes to drop if now unused


class Context:
    """What rules read: the model, its default-domain opset and the compile options."""

    def __init__(self, model: onnx.ModelProto, options: CompileOptions) -> None:
        self.model = model
        self.options = options
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.cache: dict[str, Any] = {}  # facts rules compute once per model
        self._taken: set[str] = set()
        self._counter = 0

    def unique_prefix(self, hint: str) -> str:
        """A name prefix no name in the model starts with."""
        from edgelstm.targets.onnx.weight_schemes import walk_graphs

        if not self._taken:
            for g in walk_graphs(self.model.graph):
                self._taken.update(i.name for i in (*g.input, *g.output, *g.initializer))
                for n in g.node:
                    self._taken.update((*n.input, *n.output, n.name))
        clean = "".join(c if c.isalnum() or c in "._-" else "_" for c in hint).strip("_")
        while True:
            self._counter += 1
            prefix = f"edgelstm{self._counter}.{clean}/"
            if not any(t.startswith(prefix) for t in self._taken):
                self._taken.add(prefix)
                return prefix


class RewriteRule:
    """One pattern: subclasses set :attr:`name` and implement the three steps."""

    name = "rule"

    def match(self, ctx: Context) -> Iterable[Match]:
        raise NotImplementedError

    def check(self, ctx: Context, match: Match) -> str | None:
        """None when ``match`` can be rewritten, else the reason it is kept unchanged."""
        return None

    def rewrite(self, ctx: Context, match: Match) -> Replacement:
        raise NotImplementedError


@dataclass
class RuleResult:
    """What one rule did with one node."""

    rule: str
    where: str  # subgraph path / node name
    op: str
    applied: bool
    detail: str  # how it was rewritten, or why it was kept
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewriteReport:
    """Every decision of a rewrite: applied rules and refused nodes, with reasons."""

    results: list[RuleResult] = field(default_factory=list)
    kept_nodes: int = 0  # nodes of the original graphs left as they were
    opset: int = 0
    quantize: str = "none"
    notes: list[str] = field(default_factory=list)

    @property
    def applied(self) -> list[RuleResult]:
        return [r for r in self.results if r.applied]

    @property
    def refused(self) -> list[RuleResult]:
        return [r for r in self.results if not r.applied]

    def summary(self) -> str:
        """One line: how many nodes were rewritten (and how), how many kept."""
        hows: dict[str, int] = {}
        for r in self.applied:
            hows[r.detail] = hows.get(r.detail, 0) + 1
        shown = ", ".join(f"{n} {how}" if n > 1 else how for how, n in hows.items())
        text = f"rewrote {len(self.applied)} LSTM node(s)" + (f" ({shown})" if shown else "")
        text += f"; kept {self.kept_nodes} other node(s)"
        if self.refused:
            text += f"; {len(self.refused)} LSTM node(s) kept unchanged (see notes)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "opset": self.opset,
            "quantize": self.quantize,
            "kept_nodes": self.kept_nodes,
            "rewritten": [
                {"node": r.where, "op": r.op, "rule": r.rule, "how": r.detail, **r.info}
                for r in self.applied
            ],
            "refused": [
                {"node": r.where, "op": r.op, "rule": r.rule, "reason": r.detail}
                for r in self.refused
            ],
            **({"notes": self.notes} if self.notes else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

"""Run the rewrite rules over a whole ONNX model (every graph), keeping its interface.

Each rule's matches are checked and rewritten against the untouched model, then spliced in
place; the nodes a rewritten LSTM used only for its weights and folded zero states are
pruned. The result keeps the graph inputs/outputs (names, dtypes, shapes), the opset and
every other node; it must pass ``onnx.checker`` (and strict shape inference when the
original does) or nothing is returned.
"""

from __future__ import annotations

import json
from typing import Any

import onnx

from edgelstm.errors import EdgeLSTMError, ModelFileError, SpecError, UnsupportedError
from edgelstm.targets.onnx.rewrite.lstm_node import LstmNodeRule
from edgelstm.targets.onnx.rewrite.protos import prune, splice
from edgelstm.targets.onnx.rewrite.rule import (
    Context,
    Match,
    Replacement,
    RewriteReport,
    RewriteRule,
    RuleResult,
)

RULES: tuple[type[RewriteRule], ...] = (LstmNodeRule,)
REPORT_KEY = "edgelstm.rewrite"
"""Metadata key of the JSON :class:`RewriteReport` in every rewritten model."""


def rewrite_model(
    obj: Any, options: Any = None, feeds: Any = None
) -> tuple[onnx.ModelProto, RewriteReport]:
    """See :func:`edgelstm.targets.onnx.rewrite.rewrite_onnx`."""
    from edgelstm.importers.onnx_graph import load_model
    from edgelstm.ir.options import CompileOptions
    from edgelstm.targets.onnx.emit import STATIC_INT8_REASON
    from edgelstm.targets.onnx.weight_schemes import walk_graphs

    options = options or CompileOptions()
    if not isinstance(options, CompileOptions):
        raise SpecError(f"options: expected CompileOptions, found {type(options).__name__}")
    if options.quantize == "int8":
        raise UnsupportedError("onnx", STATIC_INT8_REASON)
    source, where = load_model(obj)
    from edgelstm.targets.onnx.reader import is_edgelstm_onnx

    if is_edgelstm_onnx(source):
        raise UnsupportedError(
            "onnx",
            f"{where} is edgelstm's own ONNX file (its LSTMs already are edgelstm's lowering): "
            "use it as it is, or compile it to another target (edgelstm compile FILE -o X)",
        )
    samples = _samples(source, options, feeds)
    model = onnx.ModelProto()
    model.CopyFrom(source)  # the caller's proto is never changed
    before = sum(len(g.node) for g in walk_graphs(model.graph))
    checks_before = _checks(model)
    ctx = Context(model, options)
    report = RewriteReport(opset=ctx.opset, quantize=options.quantize)
    done: list[tuple[Match, Replacement]] = []
    for rule_type in RULES:
        rule = rule_type()
        for match in list(rule.match(ctx)):
            reason = rule.check(ctx, match)
            replacement = None
            if reason is None:
                try:
                    replacement = rule.rewrite(ctx, match)
                except EdgeLSTMError as exc:  # e.g. no form at the model's opset
                    reason = str(exc)
            if replacement is None:
                op = match.node.op_type
                report.results.append(RuleResult(rule.name, match.where, op, False, str(reason)))
                continue
            report.results.append(
                RuleResult(
                    rule.name,
                    match.where,
                    match.node.op_type,
                    True,
                    replacement.how,
                    replacement.details,
                )
            )
            done.append((match, replacement))
    if not report.results:
        ops = sorted({n.op_type for g in walk_graphs(model.graph) for n in g.node})
        raise UnsupportedError(
            "onnx", f"{where}: no LSTM node to rewrite (ops: {ops[:20]}); nothing to compile"
        )
    removed = _apply(model, done)
    report.kept_nodes = before - len(report.results) - removed  # refused LSTMs: counted apart
    _finish(model, report, where)
    _check(model, checks_before, where)
    if options.quantize == "dynamic":
        from edgelstm.targets.onnx.rewrite.quantize import quantize_whole

        weights = {n for r in report.applied for n in r.info.get("weights", [])}
        model = quantize_whole(
            model,
            weights,
            checks_before[0],
            calibration=samples if samples is not None else options.calibration,
            priority=options.onnx.dynamic_priority,
        )
    for r in report.refused:
        report.notes.append(f"{r.where}: kept unchanged ({r.detail})")
    return model, report


def _samples(source: onnx.ModelProto, options: Any, feeds: Any) -> list[dict[str, Any]] | None:
    """``feeds`` checked against the source's inputs (None when not given)."""
    if feeds is None:
        return None
    if options.quantize != "dynamic":
        raise SpecError(
            "feeds measure the dynamic int8 weight scheme: give them with "
            "CompileOptions(quantize='dynamic') (--quantize dynamic), or drop them"
        )
    if options.calibration is not None:
        raise SpecError(
            "give the representative inputs once: feeds= (the graph's own inputs) or "
            "CompileOptions(calibration=...) ([N, T, I] LSTM sequences), not both"
        )
    from edgelstm.measure.feeds import check_feeds

    return check_feeds(feeds, source)


def _apply(model: onnx.ModelProto, done: list[tuple[Match, Replacement]]) -> int:
    """Splice every replacement in; prune what only the replaced nodes needed."""
    from edgelstm.targets.onnx.weight_schemes import walk_graphs

    dead, inits = [], set()
    # Deepest graphs first: splicing a graph copies the nodes after the spot (with their
    # subgraphs), so a subgraph must be final before its parent graph is spliced.
    for match, repl in sorted(done, key=lambda mr: -len(mr[0].path)):
        splice(match.graph, match.node, repl.nodes, repl.initializers)
        dead += repl.dead
        inits |= {n for n in match.node.input if n}
        inits |= {n for d in repl.dead for n in d.input if n}
    removed = 0
    for graph in reversed(list(walk_graphs(model.graph))):
        removed += prune(graph, dead, inits)
    return removed


def _finish(model: onnx.ModelProto, report: RewriteReport, where: str) -> None:
    """producer edgelstm, and metadata saying what was rewritten (existing props kept)."""
    from edgelstm._version import __version__

    if model.ir_version < 4:  # IR 3 wants every initializer listed as a graph input
        report.notes.append(f"IR version {model.ir_version} raised to 4 (constant weights)")
        model.ir_version = 4
    model.producer_name = "edgelstm"
    model.producer_version = __version__
    props = {p.key: p.value for p in model.metadata_props}
    props[REPORT_KEY] = report.to_json()
    props["edgelstm.version"] = __version__
    props["edgelstm.source"] = where
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)


def _checks(model: onnx.ModelProto) -> tuple[bool, bool]:
    """(passes onnx.checker, infers shapes strictly): what the result must keep passing."""
    try:
        onnx.checker.check_model(model)
    except Exception:  # noqa: BLE001 - the original's own problem: not required of the result
        return False, False
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception:  # noqa: BLE001 - as above
        return True, False
    return True, True


def _check(model: onnx.ModelProto, before: tuple[bool, bool], where: str) -> None:
    """The rewritten model must pass what the original passed (checker, strict inference)."""
    try:
        if before[0]:
            onnx.checker.check_model(model)
        if before[1]:
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # noqa: BLE001 - any checker failure is ours to report
        raise ModelFileError(
            f"{where}: the rewritten model fails onnx's checker ({str(exc)[:300]}); this is a "
            "bug in edgelstm's rewrite: please report it, and compile one LSTM with --lstm NAME "
            "meanwhile"
        ) from None


def report_of(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The rewrite report stored in a rewritten model's metadata (None for other models)."""
    for p in model.metadata_props:
        if p.key == REPORT_KEY:
            return json.loads(p.value)
    return None

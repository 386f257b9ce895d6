"""Whole-graph ONNX rewrite: every compilable LSTM node -> edgelstm's exact lowering.

:func:`rewrite_onnx` keeps everything else of an exporter's graph (graph inputs/outputs with
their names, dtypes and shapes; If/Loop/Scan bodies) and replaces each ``LSTM`` /
``com.microsoft.DynamicQuantizeLSTM`` node the intake can compile by the fused-or-composite
ONNX that :func:`edgelstm.targets.onnx.to_onnx` emits for it. Nodes that cannot be compiled
stay as they are and are listed, with the reason, in the returned :class:`RewriteReport`.
``CompileOptions(quantize="dynamic")`` gives one dynamic-int8 model (see :mod:`.quantize`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgelstm.targets.onnx.rewrite.rule import RewriteReport, RewriteRule, RuleResult

if TYPE_CHECKING:
    import os

    import onnx

    from edgelstm.ir.options import CompileOptions
    from edgelstm.measure.feeds import Feeds


def rewrite_onnx(
    model: onnx.ModelProto | str | os.PathLike[str] | bytes,
    options: CompileOptions | None = None,
    *,
    feeds: Feeds | None = None,
) -> tuple[onnx.ModelProto, RewriteReport]:
    """Rewrite ``model`` whole: (the new model, what was rewritten and what was refused).

    ``options.quantize``: "none" (float) or "dynamic" (int8 weights, float activations:
    onnxruntime's ``quantize_dynamic`` over the rewritten graph, Conv left float, the weight
    scheme chosen by measurement against the float graph, by default never less accurate
    than ORT's own defaults: :mod:`.quantize`); "int8" is refused. ``feeds``: representative
    inputs of the graph to measure the scheme on (:data:`edgelstm.measure.feeds.Feeds`: a
    mapping input name -> [N, *input shape], one [N, *shape] array for a one-input graph, or
    a list of feed dicts; checked, CalibrationError), else seeded N(0, 1) inputs, which can
    be far from real data (images, token ids) — give ``feeds`` when you have them.
    Other options that do not apply to a whole foreign graph (batch/seq_len are the graph's
    own) are ignored.
    Raises :class:`~edgelstm.errors.UnsupportedError` when the model holds no LSTM node;
    when every LSTM node is refused, the model comes back unchanged but for its metadata
    (check ``report.applied``). The report is also stored in the model's metadata
    (``edgelstm.rewrite``, read back with :func:`.apply.report_of`).
    """
    from edgelstm.targets.onnx.rewrite.apply import rewrite_model

    return rewrite_model(model, options, feeds)


__all__ = ["RewriteReport", "RewriteRule", "RuleResult", "rewrite_onnx"]

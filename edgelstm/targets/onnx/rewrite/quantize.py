"""Whole-graph dynamic int8: one model, its weight scheme chosen by measurement.

onnxruntime's ``quantize_dynamic`` runs over the rewritten float model (subgraphs included,
``Conv`` left float), with the settings of :mod:`edgelstm.targets.onnx.dynamic`. It turns the
fused LSTMs into ``DynamicQuantizeLSTM`` and the MatMuls of the rest of the graph (and of
composite LSTMs) into integer kernels. Every weight is then re-derived with each candidate
scheme, each measured (and grown by the simulated saturation cost where pairs exceed 128,
for CPUs without VNNI), and the policy picks one, ORT's own defaults among the candidates:
by default never less accurate than they are (:mod:`edgelstm.targets.onnx.scheme_choice`).
"""

from __future__ import annotations

import json

import numpy as np
import onnx

from edgelstm.errors import ModelFileError, SpecError, UnsupportedError
from edgelstm.ir.options import DynamicPriority
from edgelstm.targets.onnx.dynamic import (
    PER_CHANNEL,
    _ort_quantize_dynamic,
)
from edgelstm.targets.onnx.weight_schemes import walk_graphs

SKIPPED_OPS = ("Conv",)
"""Left float: onnxruntime's dynamic ``ConvInteger`` quantizes activations per call and was
measured slower than float and far less accurate on the Silero VAD's Conv front end (20.4 ms
float vs 32.1 ms; output probability error 0.63 with ORT's own defaults, 0.79 at 7 bits).
Dynamic int8 is for the recurrent and dense parts; convolutions want static quantization."""


def op_types() -> list[str]:
    """The op types onnxruntime's dynamic quantizer may rewrite, minus :data:`SKIPPED_OPS`."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    return [op for op in IntegerOpsRegistry if op not in SKIPPED_OPS]


def quantize_whole(
    model: onnx.ModelProto,
    lstm_weights: set[str],
    checked: bool = True,
    *,
    calibration: np.ndarray | list[dict[str, np.ndarray]] | None = None,
    priority: DynamicPriority = "accuracy",
) -> onnx.ModelProto:
    """Dynamic-int8 ``model``; ``lstm_weights``: the float initializers edgelstm emitted for
    the rewritten LSTMs (counted in the metadata; every weight takes the chosen scheme);
    ``checked``: the result must pass ``onnx.checker`` (when the original did);
    ``calibration``: [N, T, I] sequences or feeds of the graph to measure the schemes on
    (else seeded inputs: :func:`~edgelstm.targets.onnx.scheme_choice.default_feeds`);
    ``priority``: the scheme policy (``OnnxOptions.dynamic_priority``)."""
    from edgelstm.targets.onnx.scheme_choice import SCHEME_KEY, choose_scheme

    try:
        quantized, choice = choose_scheme(
            model,
            _ort_quantize_dynamic,
            calibration,
            priority=priority,
            per_channel=PER_CHANNEL,
            op_types_to_quantize=op_types(),
            extra_options={"EnableSubgraph": True},
        )
    except (UnsupportedError, SpecError):
        raise
    except Exception as exc:  # noqa: BLE001 - the quantizer's own failures on odd graphs
        text = str(exc).strip().splitlines()
        raise UnsupportedError(
            "onnx",
            f"onnxruntime's quantize_dynamic failed on this graph ({type(exc).__name__}: "
            f"{(text[-1] if text else '')[:200]}); compile without --quantize (float)",
        ) from None
    names = {i.name for g in walk_graphs(quantized.graph) for i in g.initializer}
    count = sum(f"{w}_quantized" in names for w in lstm_weights)
    for g in walk_graphs(quantized.graph):  # the quantizer's shape notes can be wrong in bodies
        del g.value_info[:]
    props = {p.key: p.value for p in model.metadata_props}
    props["edgelstm.quantize"] = "dynamic"
    props[SCHEME_KEY] = choice
    props["edgelstm.weight_scheme"] = (
        f"{json.loads(choice)['chosen']} on every quantized weight ({count} of them LSTM's)"
    )
    del quantized.metadata_props[:]
    onnx.helper.set_model_props(quantized, props)
    quantized.producer_name = model.producer_name
    quantized.producer_version = model.producer_version
    try:
        if checked:
            onnx.checker.check_model(quantized)
    except Exception as exc:  # noqa: BLE001 - reported with the way out
        raise ModelFileError(
            f"the dynamic-int8 model fails onnx's checker ({str(exc)[:300]}); compile without "
            "--quantize (float) or report this"
        ) from None
    return quantized

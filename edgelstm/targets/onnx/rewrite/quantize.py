"""Whole-graph dynamic int8: one model, the rewritten LSTMs on edgelstm's weight scheme.

onnxruntime's ``quantize_dynamic`` runs once over the rewritten float model (subgraphs
included), with the settings of :mod:`edgelstm.targets.onnx.dynamic` (per-tensor, 7-bit
weights: never saturating on CPUs without VNNI). It turns the fused LSTMs into
``DynamicQuantizeLSTM`` and the MatMuls of the rest of the graph (and of composite LSTMs)
into integer kernels. Then only the weights of the LSTMs edgelstm rewrote are re-derived
with the pair-safe scheme (:func:`edgelstm.targets.onnx.weight_schemes.requantize`); the
rest of the graph keeps onnxruntime's quantization.
"""

from __future__ import annotations

import onnx

from edgelstm.errors import ModelFileError, UnsupportedError
from edgelstm.targets.onnx.dynamic import (
    PER_CHANNEL,
    REDUCE_RANGE,
    WEIGHT_SCHEME,
    _ort_quantize_dynamic,
)
from edgelstm.targets.onnx.weight_schemes import requantize, walk_graphs

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
    model: onnx.ModelProto, lstm_weights: set[str], checked: bool = True
) -> onnx.ModelProto:
    """Dynamic-int8 ``model``; ``lstm_weights``: the float initializers edgelstm emitted for
    the rewritten LSTMs (re-derived with edgelstm's scheme, the rest left to onnxruntime);
    ``checked``: the result must pass ``onnx.checker`` (when the original did)."""
    try:
        data = _ort_quantize_dynamic(
            model,
            per_channel=PER_CHANNEL,
            reduce_range=REDUCE_RANGE,
            op_types_to_quantize=op_types(),
            extra_options={"EnableSubgraph": True},
        )
    except UnsupportedError:
        raise
    except Exception as exc:  # noqa: BLE001 - the quantizer's own failures on odd graphs
        text = str(exc).strip().splitlines()
        raise UnsupportedError(
            "onnx",
            f"onnxruntime's quantize_dynamic failed on this graph ({type(exc).__name__}: "
            f"{(text[-1] if text else '')[:200]}); compile without --quantize (float)",
        ) from None
    quantized = onnx.load_model_from_string(data)
    floats = onnx.ModelProto()
    floats.graph.initializer.extend(
        t for g in walk_graphs(model.graph) for t in g.initializer if t.name in lstm_weights
    )
    count = requantize(quantized, floats, WEIGHT_SCHEME)
    for g in walk_graphs(quantized.graph):  # the quantizer's shape notes can be wrong in bodies
        del g.value_info[:]
    props = {p.key: p.value for p in model.metadata_props}
    props["edgelstm.quantize"] = "dynamic"
    props["edgelstm.weight_scheme"] = f"{WEIGHT_SCHEME} on {count} LSTM weight(s); rest: ORT"
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

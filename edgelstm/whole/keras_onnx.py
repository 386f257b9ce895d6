"""A whole Keras model -> one ONNX model: tf2onnx converts it, edgelstm's rewrite takes its LSTMs.

One path, not two: tf2onnx (the real exporter, an optional extra) converts every layer, then
:func:`edgelstm.targets.onnx.rewrite.rewrite_onnx` replaces each ONNX ``LSTM`` node it wrote by
edgelstm's exact lowering and keeps the rest (input names and dtypes follow the Keras model:
int32 token ids stay int32). ``quantize="dynamic"``: edgelstm's int8 for the LSTMs, onnxruntime's
``quantize_dynamic`` for the rest (the rewrite's quantizer).

tf2onnx fuses only plain cells. A peephole/projection/clip cell, Keras 3's
``recurrent_activation="hard_sigmoid"`` or a ``Masking`` layer make it write a ``Loop`` graph
instead — numerically right, but with no LSTM node for edgelstm to replace. That is refused
by default (``strict=True``): a file that says "compiled by edgelstm" while holding none of
edgelstm's LSTMs would mislead (it is slower, and ``--quantize dynamic`` would not give it
edgelstm's int8); ``strict=False`` keeps the exporter's correct graph with a warning.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgelstm.errors import MissingDependencyError, UnsupportedError
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.onnx import OPSET

EXPORT_EXTRA = "pip install 'edgelstm[onnx-export]'"
"""The optional extra that brings the exporters' ONNX helpers (tf2onnx, onnxscript)."""
WHOLE_KEY = "edgelstm.whole"
"""Metadata key: JSON of how the whole model was made (exporter, LSTMs rewritten/spliced)."""
LSTM_OPS = ("LSTM", "DynamicQuantizeLSTM")
WRONG_EXPORT = "dropped the projection"
"""How the intake names torch's dynamo export of nn.LSTM(proj_size): a wrong graph, not kept."""
FALLBACK_CAUSES = (
    "tf2onnx fuses only plain LSTM cells; it writes a Loop for a peephole/projection/clip cell "
    "(e.g. tf.compat.v1 LSTMCell in keras.layers.RNN), Keras 3's "
    "recurrent_activation='hard_sigmoid', or a Masking layer before the LSTM"
)


def keras_to_onnx(
    model: Any,
    options: CompileOptions | None = None,
    *,
    strict: bool = True,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """Convert a whole Keras 3 / tf-keras model (or a ``.keras``/``.h5`` path) to ONNX.

    Every LSTM becomes edgelstm's exact lowering (fused ``LSTM`` or composite); everything
    else is tf2onnx's conversion. ``options.quantize``: "none" or "dynamic" ("int8" is
    refused: onnxruntime has no integer LSTM kernel). ``strict`` (default) refuses a model
    whose LSTMs tf2onnx did not write as LSTM nodes, or that the rewrite could not take;
    ``strict=False`` keeps the exporter's (correct, unfused) graph there and warns.
    """
    options = _check_options(options)
    keras_model = _load(model)
    proto = _export(keras_model, opset)
    layers = list(_lstm_layers(keras_model))
    found = count_lstm_nodes(proto)
    problems = []
    if layers and found < len(layers):
        problems.append(_fallback_message(layers, found))
    return rewrite_exported(
        proto,
        options,
        exporter=_exporter_name(),
        strict=strict,
        problems=problems,
        alone="edgelstm.from_keras(model.get_layer(NAME))",
    )


def _check_options(options: CompileOptions | None) -> CompileOptions:
    from edgelstm.errors import SpecError
    from edgelstm.targets.onnx.emit import INT16X8_REASON, STATIC_INT8_REASON

    options = options or CompileOptions(batch=None)
    if not isinstance(options, CompileOptions):
        raise SpecError(f"options: expected CompileOptions, found {type(options).__name__}")
    if options.quantize == "int8":
        raise UnsupportedError("onnx", STATIC_INT8_REASON)
    if options.quantize == "int16x8":
        raise UnsupportedError("onnx", INT16X8_REASON)
    return options


def _load(model: Any) -> Any:
    """A Keras model object, or one loaded from a ``.keras``/``.h5`` path (safe mode)."""
    if isinstance(model, (str, PathLike)):
        from edgelstm.importers.keras import _load as load_keras

        return load_keras(Path(model))
    return model


def _tf2onnx() -> Any:
    try:
        import tf2onnx
    except ImportError:
        raise MissingDependencyError(
            f"a whole Keras model to ONNX needs tf2onnx: {EXPORT_EXTRA} (and TensorFlow: "
            "pip install 'edgelstm[tf]'); or convert to TFLite (-o model.tflite), or compile "
            "the LSTM alone (edgelstm.from_keras(model.get_layer(NAME)))"
        ) from None
    return tf2onnx


def _exporter_name() -> str:
    import tf2onnx

    return f"tf2onnx {tf2onnx.__version__}"


def _export(keras_model: Any, opset: int) -> onnx.ModelProto:
    """tf2onnx's conversion at ``opset``, checked to hold only ONNX ops."""
    tf2onnx = _tf2onnx()
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "tensorflow")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto, _ = tf2onnx.convert.from_keras(keras_model, opset=opset)
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises many kinds; all mean "cannot"
        raise UnsupportedError(
            "onnx",
            f"tf2onnx could not convert the Keras model ({type(exc).__name__}: "
            f"{str(exc).strip()[:300]}); convert to TFLite instead (-o model.tflite), or "
            "compile the LSTM alone (edgelstm.from_keras(model.get_layer(NAME)))",
        ) from None
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # noqa: BLE001 - tf2onnx leaves ops it cannot map in the graph
        raise UnsupportedError(
            "onnx",
            f"tf2onnx wrote an invalid ONNX model (ops it could not convert stay TF ops: "
            f"{str(exc).strip().splitlines()[0][:300]}); convert to TFLite instead "
            "(-o model.tflite)",
        ) from None
    return proto


def _children(layer: Any) -> list[Any]:
    """Sub-layers of a nested model (Sequential/Functional inside a model)."""
    inner = getattr(layer, "layers", None)
    return list(inner) if isinstance(inner, (list, tuple)) else []


def _lstm_layers(model: Any) -> Iterator[Any]:
    """Every LSTM-like Keras layer (a Bidirectional counts once), nested models included."""
    for layer in _children(model):
        kind = type(layer).__name__
        if kind == "Bidirectional":
            inner = getattr(layer, "forward_layer", None) or getattr(layer, "layer", None)
            if inner is not None and _is_lstm(inner):
                yield layer
        elif _is_lstm(layer):
            yield layer
        else:
            yield from _lstm_layers(layer)


def _is_lstm(layer: Any) -> bool:
    if type(layer).__name__ == "LSTM":
        return True
    cell = getattr(layer, "cell", None)
    return cell is not None and "lstm" in type(cell).__name__.lower()


def _walk(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    from edgelstm.targets.onnx.weight_schemes import walk_graphs

    return walk_graphs(graph)


def count_lstm_nodes(proto: onnx.ModelProto) -> int:
    """ONNX ``LSTM`` / ``DynamicQuantizeLSTM`` nodes anywhere in ``proto`` (subgraphs too)."""
    return sum(n.op_type in LSTM_OPS for g in _walk(proto.graph) for n in g.node)


def _fallback_message(layers: Sequence[Any], found: int) -> str:
    names = ", ".join(repr(getattr(layer, "name", "?")) for layer in layers)
    return (
        f"tf2onnx wrote {found} ONNX LSTM node(s) for {len(layers)} LSTM layer(s) ({names}): "
        f"{len(layers) - found} became a Loop graph, which has no LSTM node for edgelstm to "
        f"replace ({FALLBACK_CAUSES})"
    )


def rewrite_exported(
    proto: onnx.ModelProto,
    options: CompileOptions,
    *,
    exporter: str,
    strict: bool,
    alone: str,
    problems: Sequence[str] = (),
    spliced: Sequence[dict[str, Any]] = (),
    spliced_weights: frozenset[str] = frozenset(),
) -> onnx.ModelProto:
    """An exporter's graph -> edgelstm's LSTMs in it (the rewrite), quantized if asked.

    ``problems``: what the caller found wrong with the export (LSTMs it did not write as
    nodes); ``spliced``/``spliced_weights``: LSTMs the caller already put in as edgelstm's
    lowering (their float weights, so ``quantize="dynamic"`` gives them edgelstm's int8).
    Strict: any problem or any LSTM node the rewrite refused raises, with the ways out
    (``alone``: how to compile one LSTM of this framework by itself).
    """
    from edgelstm.targets.onnx.rewrite import rewrite_onnx
    from edgelstm.targets.onnx.rewrite.quantize import quantize_whole

    if problems and strict:  # the caller's findings: refuse before the rewrite's work
        _refuse(problems, alone)
    report = None
    if count_lstm_nodes(proto):
        proto, report = rewrite_onnx(proto, replace(options, quantize="none"))
        wrong = [r for r in report.refused if WRONG_EXPORT in r.detail]
        if wrong:  # keeping the exporter's graph would keep a wrong answer: never
            raise UnsupportedError(
                "onnx",
                f"{wrong[0].where}: {wrong[0].detail}. For a whole model, convert the "
                "nn.Module itself: edgelstm.from_torch_module(module, x) splices edgelstm's "
                "exact composite in place of each nn.LSTM(proj_size), with either exporter",
            )
        problems = [*problems, *(f"{r.where}: {r.detail}" for r in report.refused)]
    elif not spliced and not problems:
        raise UnsupportedError(
            "onnx", f"the {exporter} export holds no LSTM node: nothing for edgelstm to compile"
        )
    if problems:
        if strict:
            _refuse(problems, alone)
        text = "; ".join(problems)
        warnings.warn(f"kept the exporter's graph: {text}", UserWarning, stacklevel=3)
    if options.quantize == "dynamic":
        weights = set(spliced_weights)
        if report is not None:
            weights |= {n for r in report.applied for n in r.info.get("weights", [])}
        proto = quantize_whole(
            proto,
            weights,
            calibration=_framework_feeds(proto, options.calibration),
            priority=options.onnx.dynamic_priority,
        )
    _stamp(proto, exporter, report, spliced, problems, options.quantize)
    return proto


def _framework_feeds(proto: onnx.ModelProto, calibration: np.ndarray | None):
    """The framework's calibration samples ([N, *sample], as the Keras / PyTorch model takes
    them batched) as one-sample feeds of a one-input graph whose rank they match — so the
    dynamic scheme is measured on them (token ids, images), not only when they happen to be
    [N, T, I] float sequences; otherwise ``calibration`` unchanged."""
    from edgelstm.measure.feeds import graph_inputs
    from edgelstm.targets.onnx.scheme_measure import MAX_SEQUENCES

    inputs = graph_inputs(proto)
    if calibration is None or len(inputs) != 1:
        return calibration
    data = np.asarray(calibration)
    name, shape, dtype = inputs[0]
    if data.ndim != len(shape) or not data.size:
        return calibration
    static = [(got, want) for got, want in zip((1, *data.shape[1:]), shape, strict=True)]
    if any(isinstance(want, int) and got != want for got, want in static):
        return calibration  # not samples of this input (e.g. another layout)
    return [{name: data[k : k + 1].astype(dtype)} for k in range(min(len(data), MAX_SEQUENCES))]


def _refuse(problems: Sequence[str], alone: str) -> None:
    raise UnsupportedError(
        "onnx",
        f"{'; '.join(problems)}. Ways out: strict=False keeps the exporter's graph there "
        "(correct, not edgelstm's lowering); -o model.tflite (whole-model TFLite, edgelstm "
        f"fuses the LSTMs itself); or compile the LSTM alone: {alone}",
    )


def _stamp(
    proto: onnx.ModelProto,
    exporter: str,
    report: Any,
    spliced: Sequence[dict[str, Any]],
    problems: Sequence[str],
    quantize: str,
) -> None:
    """producer edgelstm and the :data:`WHOLE_KEY` metadata (other props kept)."""
    from edgelstm._version import __version__

    whole = {
        "exporter": exporter,
        "quantize": quantize,
        "rewritten": len(report.applied) if report is not None else 0,
        "spliced": list(spliced),
        **({"kept_unchanged": list(problems)} if problems else {}),
    }
    props = {p.key: p.value for p in proto.metadata_props}
    props[WHOLE_KEY] = json.dumps(whole, sort_keys=True, default=str)
    props.setdefault("edgelstm.version", __version__)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    proto.producer_name = "edgelstm"
    proto.producer_version = __version__

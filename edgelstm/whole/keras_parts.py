"""Convert the segments of a split Keras model: TF's converter for the other layers,
edgelstm for the LSTMs (float, dynamic, or int8 with int8 internal boundaries).

Each :class:`~.segments.KerasSegment` is converted by ``tf.lite.TFLiteConverter`` (from a
concrete function of its layers on an input of the boundary shape: the same path for Keras 3
and tf-keras); each :class:`~.segments.LstmSegment` by :func:`edgelstm.targets.tflite.to_tflite`.
:mod:`.keras_tflite` links them; :mod:`.optimize` links other lowerings of the same parts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import CalibrationError, MissingDependencyError, UnsupportedError
from edgelstm.ir.options import CompileOptions
from edgelstm.whole.segments import (
    KerasSegment,
    LstmSegment,
    WholeModel,
    apply_layers,
)

_FLOAT_IO = ("float32", "float32")
MAX_REPRESENTATIVE = 256
"""Calibration samples the converter's quantizer sees per segment (it is slow per sample)."""


def _tf() -> Any:
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError(
            "converting a whole Keras model needs TensorFlow's converter: "
            "pip install 'edgelstm[tf]'"
        ) from None
    return tf


def _link() -> Any:
    try:
        from edgelstm.targets.tflite.link import link_chain
    except ImportError as exc:
        raise UnsupportedError(
            "tflite",
            f"the TFLite linker (edgelstm.targets.tflite.link) is not available ({exc}); "
            "convert the LSTM alone: edgelstm compile with a pure LSTM model",
        ) from None
    return link_chain


def boundary_types(
    whole: WholeModel, quantize: str, io_types: tuple[str, str] = ("float32", "float32")
) -> list[str]:
    """The dtype at every boundary: model input, between segments, model output.

    ``io_types`` are the model's (input, output) types when they are float (an integer
    input such as token ids keeps its dtype). With int8 every internal boundary is int8,
    except where an LSTM segment touches a float model input/output: its I/O is one flag
    (``Int8Options.io``), so its other side is float.
    """
    n = len(whole.segments)
    first = whole.input_dtype
    if first == "float32":
        first = io_types[0]
    types = [first] + ["int8" if quantize == "int8" else "float32"] * (n - 1)
    types.append(io_types[1])
    for k, seg in enumerate(whole.segments):
        if isinstance(seg, LstmSegment) and types[k] != types[k + 1]:
            types[k] = types[k + 1] = "float32"
    return types


def segment_inputs(whole: WholeModel, x: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """Each segment's input when the float Keras model runs on ``x`` (eager, in batches)."""
    tf = _tf()
    feeds = [np.asarray(x)]
    for seg in whole.segments[:-1]:
        run = apply_layers(seg.layers, isinstance(seg, LstmSegment) and seg.masked)
        outs = [
            np.asarray(run(tf.constant(feeds[-1][i : i + batch]))) for i in range(0, len(x), batch)
        ]
        feeds.append(np.concatenate(outs).astype(np.float32))
    return feeds


def _representative(x: np.ndarray) -> Any:
    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(min(len(x), MAX_REPRESENTATIVE)):
            yield [x[i : i + 1]]

    return gen


def convert_keras_segment(
    seg: KerasSegment,
    *,
    batch: int | None,
    quantize: str,
    representative: np.ndarray | None = None,
    input_type: str = "float32",
    output_type: str = "float32",
) -> bytes:
    """One run of non-LSTM layers -> .tflite bytes by TensorFlow's converter."""
    tf = _tf()
    fn = tf.function(apply_layers(seg.layers))
    spec = tf.TensorSpec([batch, *seg.input_shape], seg.input_dtype)
    concrete = fn.get_concrete_function(spec)
    # The trackable object must own the captured tf.Variables themselves: given the Keras 3
    # model (whose variables wrap them), the converter freezes garbage (measured: 2e5 off).
    owner = tf.Module()
    owner.variables_ = list(concrete.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], owner)
    if quantize in ("dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        assert representative is not None
        converter.representative_dataset = _representative(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if input_type == "int8":
            converter.inference_input_type = tf.int8
        if output_type == "int8":
            converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001 - the converter's own error, named and relayed
        layers = ", ".join(type(layer).__name__ for layer in seg.layers)
        raise UnsupportedError(
            "tflite",
            f"TensorFlow's converter failed on the layers {layers}: {type(exc).__name__}: "
            f"{str(exc)[:400]}",
        ) from None


def convert_lstm_segment(seg: LstmSegment, options: CompileOptions, io: bool) -> bytes:
    """One run of LSTM layers -> fused .tflite bytes (int8 I/O when ``io``)."""
    from edgelstm.targets.tflite import to_tflite

    steps = seg.input_shape[0]
    opts = replace(
        options,
        seq_len=steps,  # the boundary's own length (None: dynamic)
        time_major=False,
        int8=replace(options.int8, io=io),
    )
    if not seg.masked:
        return to_tflite(seg.model, opts)
    from edgelstm.whole.masking import add_mask_tail

    full = to_tflite(replace(seg.model, return_sequences=True), opts)
    return add_mask_tail(full, return_sequences=seg.model.return_sequences, steps=steps)


def tf_op_names(parts: Sequence[bytes]) -> tuple[str, ...]:
    """The distinct operator names in ``parts`` (first-seen order)."""
    from edgelstm.inspect.tflite import inspect_tflite

    names: dict[str, None] = {}
    for data in parts:
        for op in inspect_tflite(Path("segment.tflite"), data).ops:
            names.setdefault(op.op)
    return tuple(names)


def _check_calibration(whole: WholeModel, x: np.ndarray | None) -> np.ndarray:
    if x is None:
        raise CalibrationError(
            "--quantize int8 needs calibration inputs of the whole model: --calibration X.npy "
            f"shaped [N, {', '.join(str(d) for d in whole.input_shape)}]"
        )
    x = np.asarray(x)
    want = whole.input_shape
    if x.ndim == len(want) + 2 and x.shape[-1] == 1:  # ids saved as [N, T, 1]
        x = x[..., 0]
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise CalibrationError("calibration data: expected finite real numbers")
    if x.ndim != len(want) + 1 or any(
        d is not None and d != s for d, s in zip(want, x.shape[1:], strict=True)
    ):
        raise CalibrationError(
            f"calibration shape {list(x.shape)}: expected [N, "
            f"{', '.join('any' if d is None else str(d) for d in want)}] (the model's input)"
        )
    return x.astype(whole.input_dtype)


def convert_parts(
    whole: WholeModel, options: CompileOptions, io_types: tuple[str, str] | None = None
) -> list[bytes]:
    """Every segment converted on its own, in order (before linking)."""
    quantize = options.quantize
    if io_types is None:
        io_types = ("int8", "int8") if quantize == "int8" and options.int8.io else _FLOAT_IO
    elif quantize != "int8" and "int8" in io_types:
        raise UnsupportedError("tflite", "int8 model input/output needs --quantize int8")
    types = boundary_types(whole, quantize, io_types)
    feeds: list[np.ndarray | None] = [None] * len(whole.segments)
    if quantize == "int8":
        feeds = list(segment_inputs(whole, _check_calibration(whole, options.calibration)))
    parts = []
    for k, seg in enumerate(whole.segments):
        if isinstance(seg, KerasSegment):
            parts.append(
                convert_keras_segment(
                    seg,
                    batch=options.batch,
                    quantize=quantize,
                    representative=feeds[k],
                    input_type=types[k],
                    output_type=types[k + 1],
                )
            )
        else:
            opts = replace(options, calibration=feeds[k])
            parts.append(convert_lstm_segment(seg, opts, io=types[k] == "int8"))
    return parts

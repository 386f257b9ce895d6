"""A whole Keras model split into segments: runs of LSTM layers and runs of other layers.

Each LSTM run becomes one canonical :class:`LSTMModel` (edgelstm compiles it to fused ops);
each run of other layers stays Keras layers (TensorFlow's converter converts them). The
segments are in series: segment k's output is segment k+1's input, so a chain model (a
Sequential or a functional model whose layers each consume the previous output) is what
splits; a branching model is refused with the way to convert its LSTM alone. TensorFlow is
imported only to trace the boundary shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.errors import UnsupportedError
from edgelstm.importers.keras import (
    _MODEL_TYPES,
    _chain,
    _convert_layer,
    _flavor,
    _is_lstm,
    _kind,
    _label,
    _options,
    _refuse_foreign,
)
from edgelstm.ir.model import LSTMLayer, LSTMModel

IDENTITY_LAYERS = (
    "InputLayer",
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
)
"""Layers that are the identity at inference: dropped from the segments."""

Shape = tuple[int | None, ...]
"""A tensor shape without the batch axis (None = any size)."""

WHOLE_INT16X8 = (
    "int16x8 is the all-integer lowering of one LSTM stack; a whole model's other layers are "
    "converted by TensorFlow / litert-torch, whose int8 paths edgelstm links: use quantize="
    "'int8' for the whole model, or compile the LSTM alone with quantize='int16x8'"
)
"""Why whole-model conversion refuses ``quantize="int16x8"`` (Keras and PyTorch alike)."""


@dataclass(frozen=True, eq=False)
class KerasSegment:
    """Consecutive non-LSTM Keras layers, converted by TensorFlow's own converter.

    ``input_shape``/``output_shape`` exclude the batch axis; dtypes are numpy names.
    """

    layers: tuple[Any, ...]
    input_shape: Shape
    input_dtype: str
    output_shape: Shape
    output_dtype: str = "float32"

    def describe(self) -> str:
        return "+".join(type(layer).__name__ for layer in self.layers)


@dataclass(frozen=True, eq=False)
class LstmSegment:
    """Consecutive LSTM layers (one :class:`LSTMModel`), compiled to edgelstm's fused ops."""

    model: LSTMModel
    layers: tuple[Any, ...]
    input_shape: Shape
    output_shape: Shape
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    masked: bool = False
    """Fed by a Masking / Embedding(mask_zero) layer: Keras's masked outputs for post-padded
    input (:mod:`edgelstm.whole.masking`)."""

    def describe(self) -> str:
        text = self.model.describe()
        return f"{text} masked" if self.masked else text


Segment = KerasSegment | LstmSegment


@dataclass(frozen=True, eq=False)
class WholeModel:
    """The split model: its segments in series and the model's own input/output."""

    segments: tuple[Segment, ...]
    flavor: str
    input_shape: Shape
    input_dtype: str
    output_shape: Shape
    keras_model: Any = field(repr=False)

    @property
    def lstm_segments(self) -> tuple[LstmSegment, ...]:
        return tuple(s for s in self.segments if isinstance(s, LstmSegment))

    @property
    def keras_segments(self) -> tuple[KerasSegment, ...]:
        return tuple(s for s in self.segments if isinstance(s, KerasSegment))

    def describe(self) -> str:
        return " -> ".join(
            f"LSTM[{s.describe()}]" if isinstance(s, LstmSegment) else f"TF[{s.describe()}]"
            for s in self.segments
        )


def _is_v1_cell_rnn(layer: Any) -> bool:
    """``RNN(tf.compat.v1.nn.rnn_cell.LSTMCell)`` (tf-keras): the peephole/projection cell."""
    cell = getattr(layer, "cell", None)
    return _kind(layer) == "RNN" and type(cell).__module__.endswith("legacy_cells")


def is_lstm_layer(layer: Any) -> bool:
    """An LSTM layer edgelstm compiles: LSTM, RNN(LSTMCell), RNN(v1 LSTMCell), Bidirectional."""
    return _is_lstm(layer) or _is_v1_cell_rnn(layer) or _kind(layer) == "Bidirectional"


def lstm_layer(layer: Any, target: str) -> tuple[LSTMLayer, dict[str, bool]]:
    """One Keras LSTM layer -> (canonical layer, its RNN options)."""
    if _is_v1_cell_rnn(layer):
        from edgelstm.importers.tf_cell import from_tf_cell

        weights = from_tf_cell(layer.cell).layers[0].forward
        return LSTMLayer(weights, go_backwards=bool(layer.go_backwards)), _options(layer)
    return _convert_layer(layer, target)


MASK_SAFE = frozenset(
    {"Dense", "TimeDistributed", "Activation", "Softmax", "ReLU", "LeakyReLU", "Flatten"}
)
"""Layers after a masked LSTM's sequence output that compute each step alone (the mask they
receive does not change their numbers)."""
_POST_PADDED = (
    "outputs are exact for post-padded input (valid steps first, padding after; "
    "pre-padding changes the LSTM state)"
)


def _mask_source(layer: Any) -> bool:
    return _kind(layer) == "Masking" or (
        _kind(layer) == "Embedding" and bool(getattr(layer, "mask_zero", False))
    )


def _refuse(target: str, layer: Any, why: str) -> UnsupportedError:
    return UnsupportedError(
        target,
        f"{_label(layer)}: {why}. A masked LSTM is converted when the Masking(0.0) or "
        f"Embedding(mask_zero=True) layer comes right before a unidirectional forward LSTM; "
        f"{_POST_PADDED}. Otherwise pad after the sequence and remove the mask, or convert "
        "the LSTM alone (edgelstm.from_keras(model.get_layer(NAME)))",
    )


def _masked_runs(runs: list[tuple[bool, list[Any]]], target: str) -> set[int]:
    """Indexes of the LSTM runs fed by a mask; everything else with a mask is refused."""
    masked: set[int] = set()
    for k, (lstm, run) in enumerate(runs):
        if lstm:
            continue
        for j, layer in enumerate(run):
            if not _mask_source(layer):
                continue
            if _kind(layer) == "Masking" and float(getattr(layer, "mask_value", 0.0)) != 0.0:
                raise _refuse(target, layer, "mask_value must be 0.0")
            if j != len(run) - 1 or k + 1 >= len(runs):
                raise _refuse(target, layer, "the mask does not go straight into an LSTM")
            masked.add(k + 1)
    for k in sorted(masked):
        run = runs[k][1]
        for layer in run:
            if _kind(layer) == "Bidirectional" or getattr(layer, "go_backwards", False):
                raise _refuse(
                    target,
                    layer,
                    "a masked LSTM running backwards would start on the padding",
                )
        if getattr(run[-1], "return_sequences", False) and k + 1 < len(runs):
            for layer in runs[k + 1][1]:
                if _kind(layer) not in MASK_SAFE:
                    raise _refuse(
                        target, layer, "it reads the mask of a masked LSTM's sequence output"
                    )
    return masked


def _lstm_model(run: list[Any], target: str) -> LSTMModel:
    converted, options = [], []
    for layer in run:
        lstm, opts = lstm_layer(layer, target)
        for flag, way_out in (
            ("stateful", "compile the LSTM alone with --streaming"),
            ("time_major", "use batch-major layers"),
        ):
            if opts[flag]:
                raise UnsupportedError(
                    target, f"{_label(layer)}: {flag}=True in a whole model: {way_out}"
                )
        converted.append(lstm)
        options.append(opts)
    for layer, opts in zip(run[:-1], options[:-1], strict=True):
        if not opts["return_sequences"]:
            raise UnsupportedError(
                target, f"{_label(layer)}: an LSTM feeding an LSTM needs return_sequences=True"
            )
    return LSTMModel(
        layers=tuple(converted),
        return_sequences=options[-1]["return_sequences"],
        provenance={"source": target, "layers": [_label(x) for x in run]},
    )


def _runs(layers: Sequence[Any]) -> list[tuple[bool, list[Any]]]:
    """Group the layers (identity layers dropped) into (is_lstm, run) in order."""
    runs: list[tuple[bool, list[Any]]] = []
    for layer in layers:
        if _kind(layer) in IDENTITY_LAYERS:
            continue
        lstm = is_lstm_layer(layer)
        if runs and runs[-1][0] == lstm:
            runs[-1][1].append(layer)
        else:
            runs.append((lstm, [layer]))
    return runs


def _np_dtype(dtype: Any) -> str:
    return np.dtype(getattr(dtype, "name", dtype)).name


def _unwrapped(layer: Any) -> Any:
    """Keras 3's TimeDistributed(Dense) is Dense itself (it acts on the last axis): a few
    ops instead of the per-step slices its wrapper converts to (tf-keras's converts well)."""
    inner = getattr(layer, "layer", None)
    if _kind(layer) == "TimeDistributed" and _kind(inner) == "Dense" and _flavor(layer) == "keras":
        return inner
    return layer


def _zero_masked(ids: Any, x: Any) -> Any:
    """Embedding(mask_zero) output with zeros at id 0: the masked LSTM finds the padding
    there (:mod:`edgelstm.whole.masking`); Keras ignores those steps, so nothing else moves."""
    import tensorflow as tf

    keep = tf.cast(tf.not_equal(ids, 0), x.dtype)[..., None]
    return x * keep


def apply_layers(layers: Sequence[Any], masked: bool = False) -> Callable[[Any], Any]:
    """A function running ``layers`` in order (inference mode; an RNN's states dropped).

    ``masked``: a masked LSTM run, given Keras's mask (steps with any non-zero feature), so
    calibration sees the outputs Keras computes.
    """

    def run(x: Any) -> Any:
        mask = None
        if masked:
            import tensorflow as tf

            mask = tf.reduce_any(tf.not_equal(x, 0), axis=-1)
        for layer in layers:
            ids = x
            kwargs = {"mask": mask} if mask is not None else {}
            x = _unwrapped(layer)(x, training=False, **kwargs)
            if isinstance(x, (list, tuple)):  # return_state=True: the sequence/last output
                x = x[0]
            if _kind(layer) == "Embedding" and getattr(layer, "mask_zero", False):
                x = _zero_masked(ids, x)
        return x

    return run


def _trace(layers: Sequence[Any], shape: Shape, dtype: str) -> tuple[Shape, str]:
    """The output shape (no batch axis) and dtype of ``layers`` on [None, *shape] input."""
    import tensorflow as tf

    fn = tf.function(apply_layers(layers))
    spec = fn.get_concrete_function(tf.TensorSpec([None, *shape], dtype)).structured_outputs
    return tuple(spec.shape.as_list()[1:]), spec.dtype.name


def split_keras(model: Any, seq_len: int | None = None) -> WholeModel:
    """Split a Keras 3 / tf-keras Sequential or chain functional model into segments.

    ``seq_len`` fixes the model input's first axis where the model leaves it open.
    """
    target = _flavor(model)
    if target is None:
        _refuse_foreign(model)
    if _kind(model) not in _MODEL_TYPES:
        raise UnsupportedError(
            target, f"{_label(model)}: expected a Sequential or functional model, not a layer"
        )
    try:
        layers = _chain(model, target)
    except UnsupportedError as exc:
        raise UnsupportedError(
            target,
            f"{exc.reason}. Whole-model conversion takes a Sequential or a single-chain "
            "functional model; for a branching model convert the LSTM alone: "
            "edgelstm.from_keras(model.get_layer(NAME)) (Python) and glue the rest yourself",
        ) from None
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise UnsupportedError(
            target, "model is not built: give it an Input (or call it on data) first"
        )
    if len(model.outputs) > 1:
        raise UnsupportedError(
            target,
            f"model has {len(model.outputs)} outputs (an LSTM's return_state states): a whole "
            "model has one output; convert the LSTM alone (from_keras) to get its states",
        )
    runs = _runs(layers)
    masked = _masked_runs(runs, target)
    if not any(lstm for lstm, _ in runs):
        raise UnsupportedError(target, "model contains no LSTM layer: nothing for edgelstm")
    shape: Shape = tuple(inputs[0].shape[1:])
    if seq_len is not None and shape and shape[0] is None:
        shape = (seq_len, *shape[1:])
    dtype = _np_dtype(inputs[0].dtype)
    model_shape, model_dtype = shape, dtype
    segments: list[Segment] = []
    for k, (lstm, run) in enumerate(runs):
        lstm_model = _lstm_model(run, target) if lstm else None  # refusals before tracing
        out_shape, out_dtype = _trace(run, shape, dtype)
        if lstm_model is not None:
            if dtype != "float32":
                raise UnsupportedError(
                    target, f"{_label(run[0])}: input dtype {dtype}: expected float32"
                )
            if k in masked and lstm_model.return_sequences and shape[0] is None:
                raise UnsupportedError(
                    target,
                    f"{_label(run[-1])}: a masked LSTM returning sequences needs a fixed "
                    "sequence length: give the model a fixed Input length or pass --seq-len",
                )
            segments.append(
                LstmSegment(lstm_model, tuple(run), shape, out_shape, masked=k in masked)
            )
        else:
            segments.append(KerasSegment(tuple(run), shape, dtype, out_shape, out_dtype))
        shape, dtype = out_shape, out_dtype
    return WholeModel(tuple(segments), target, model_shape, model_dtype, shape, model)

"""A whole Keras model -> one .tflite: TF's converter for the other layers, edgelstm for LSTMs.

Each :class:`~.segments.KerasSegment` is converted by ``tf.lite.TFLiteConverter`` (from a
concrete function of its layers on an input of the boundary shape: the same path for Keras 3
and tf-keras); each :class:`~.segments.LstmSegment` by :func:`edgelstm.targets.tflite.to_tflite`;
:func:`edgelstm.targets.tflite.link.link_chain` joins them in series. TF's converter has no
hook that keeps a fused op we built: its composite-function fusion (``experimental_implements``
/ Keras's ``api_implements``) maps only the names its own C++ passes know (tf-keras's standard
LSTM, Lingvo's LSTMCellSimple / LayerNormalizedLstmCellSimple) and re-derives the op and its
int8 scales itself (no peephole/projection from Keras, its own calibration). Linking two
finished flatbuffers keeps edgelstm's op and quantization exactly.

Quantization: ``dynamic`` is the converter's dynamic range for its segments and edgelstm's
hybrid LSTM; ``int8`` runs the float Keras model on the calibration inputs to get each
segment's own input, quantizes TF segments with that representative data (int8 in/out at
internal boundaries, so every LSTM input is integer) and edgelstm's LSTMs with int8 I/O;
the linker requantizes where two sides' scales differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgelstm.errors import UnsupportedError
from edgelstm.ir.options import CompileOptions
from edgelstm.whole.keras_parts import (
    _link,
    boundary_types,
    convert_parts,
    segment_inputs,
    tf_op_names,
)
from edgelstm.whole.segments import KerasSegment, Segment, WholeModel, split_keras


@dataclass(frozen=True)
class WholeResult:
    """The linked file and what went into it (for the CLI's one-line summary)."""

    data: bytes
    whole: WholeModel
    tf_ops: tuple[str, ...]
    optimize: Any = None
    """With ``optimize="latency"``: the :class:`~.optimize.WholeOptimizeTable` of the search."""

    def summary(self) -> str:
        n_lstm, n_tf = len(self.whole.lstm_segments), len(self.whole.keras_segments)
        ops = ", ".join(self.tf_ops) or "none"
        how = "fused"
        if self.optimize is not None:
            how = "lowered as " + "; ".join(self.optimize.chosen.lowerings)
        return f"whole Keras model: {n_lstm} LSTM segment(s) {how}, {n_tf} TF segment(s) ({ops})"


def keras_to_tflite(
    model: Any,
    options: CompileOptions | None = None,
    *,
    io_types: tuple[str, str] | None = None,
    optimize: str | None = None,
    max_error: float | None = None,
    data: Any = None,
    runs: int = 100,
) -> WholeResult:
    """Convert a whole Keras model (LSTMs between other layers) into one .tflite file.

    ``options``: batch (None = resizable), seq_len (fixes an open input length), quantize
    ("none", "dynamic", "int8" with ``calibration`` = the model's inputs) and ``int8.io``
    (int8 model input and output). ``io_types`` sets the model's (input, output) types
    separately ("float32" / "int8"), as the TFLiteConverter API does.
    ``optimize="latency"``: each LSTM segment fused or unfused, whichever links into the
    fastest file within ``max_error`` of Keras on ``data`` (default: as exact as the fused
    file); see :mod:`edgelstm.whole.optimize`.
    """
    options = options if options is not None else CompileOptions(batch=None)
    if options.target != "tflite":
        raise UnsupportedError(
            options.target, "whole Keras models compile for --target tflite only"
        )
    if options.quantize == "int16x8":
        from edgelstm.whole.segments import WHOLE_INT16X8

        raise UnsupportedError("tflite", WHOLE_INT16X8)
    if optimize not in (None, "latency"):
        raise UnsupportedError(
            "tflite", f"optimize: expected None or 'latency', found {optimize!r}"
        )
    whole = model if isinstance(model, WholeModel) else split_keras(model, options.seq_len)
    if optimize == "latency":
        from edgelstm.whole.optimize import optimize_whole

        out, whole, ops, table = optimize_whole(
            whole, options, data=data, max_error=max_error, runs=runs, io_types=io_types
        )
        return WholeResult(out, whole, ops, table)
    parts = convert_parts(whole, options, io_types)
    tf_parts = [p for p, s in zip(parts, whole.segments, strict=True) if _is_tf(s)]
    data = _link()(parts, input_names=["input"], output_names=["output"])
    return WholeResult(data, whole, tf_op_names(tf_parts))


def _is_tf(seg: Segment) -> bool:
    return isinstance(seg, KerasSegment)


__all__ = [
    "WholeResult",
    "boundary_types",
    "convert_parts",
    "keras_to_tflite",
    "segment_inputs",
]  # the segment converters live in .keras_parts (re-exported here)

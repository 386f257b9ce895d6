"""``edgelstm.TFLiteConverter``: the ``tf.lite.TFLiteConverter`` verbs, with the LSTMs fused.

A user switches one import::

    converter = edgelstm.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_data_gen
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    tflite_model = converter.convert()

The meaning follows TensorFlow's: ``optimizations`` without ``representative_dataset`` is
dynamic-range quantization (edgelstm's hybrid LSTMs), with it full integer (the
representative samples are the whole model's inputs). ``target_spec.supported_ops`` is
accepted and ignored: TensorFlow's converter keeps its default op set for the non-LSTM
layers and the LSTMs are builtin fused ops either way.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.errors import CalibrationError, SpecError
from edgelstm.ir.options import CompileOptions, Int8Options


class Optimize(enum.Enum):
    """Same names as ``tf.lite.Optimize`` (its members are accepted too)."""

    DEFAULT = "DEFAULT"
    OPTIMIZE_FOR_SIZE = "OPTIMIZE_FOR_SIZE"
    OPTIMIZE_FOR_LATENCY = "OPTIMIZE_FOR_LATENCY"


_OPTIMIZE_NAMES = {m.value for m in Optimize}
_MODES = {"none": "none", "dynamic": "dynamic", "int8": "int8"}


@dataclass
class TargetSpec:
    """Accepted for compatibility; not used (see the module docstring)."""

    supported_ops: set[Any] = field(default_factory=set)
    supported_types: list[Any] = field(default_factory=list)


def _type_name(value: Any, what: str) -> str:
    """'float32' or 'int8' from a tf.DType, numpy dtype/type, or a name (None = float)."""
    if value is None:
        return "float32"
    name = getattr(value, "name", None)
    if not isinstance(name, str):
        try:
            name = np.dtype(value).name
        except TypeError:
            name = str(value)
    if name not in ("float32", "int8"):
        raise SpecError(
            f"TFLiteConverter.{what}: expected float32 or int8 (tf.int8 / np.int8), "
            f"found {value!r}; uint8 I/O is not supported"
        )
    return name


def _mode(optimizations: Iterable[Any], has_data: bool) -> str:
    """The quantization the optimizations ask for, as TensorFlow reads them."""
    modes = set()
    for item in optimizations or ():
        name = getattr(item, "name", item)
        if not isinstance(name, str):
            raise SpecError(f"TFLiteConverter.optimizations: unknown entry {item!r}")
        if name in _OPTIMIZE_NAMES:
            modes.add("int8" if has_data else "dynamic")
        elif name.lower() in _MODES:
            modes.add(_MODES[name.lower()])
        else:
            raise SpecError(
                f"TFLiteConverter.optimizations: unknown entry {item!r}; expected "
                "tf.lite.Optimize.DEFAULT (or 'dynamic' / 'int8')"
            )
    if len(modes) > 1:
        raise SpecError(f"TFLiteConverter.optimizations: conflicting entries {sorted(modes)}")
    return modes.pop() if modes else "none"


def _samples(dataset: Callable[[], Iterable[Any]]) -> np.ndarray:
    """The representative samples as one [N, ...] array (each sample: a list or a dict)."""
    rows = []
    for sample in dataset():
        arrays = list(sample.values()) if isinstance(sample, dict) else sample
        if isinstance(arrays, (list, tuple)):
            if len(arrays) != 1:
                raise CalibrationError(
                    f"representative_dataset: a sample has {len(arrays)} arrays; the model "
                    "has one input"
                )
            arrays = arrays[0]
        rows.append(np.asarray(arrays))
    if not rows:
        raise CalibrationError("representative_dataset yielded no samples")
    return np.concatenate([r if r.ndim > 1 else r[None] for r in rows])


class TFLiteConverter:
    """Converts a whole Keras model (LSTMs fused) with ``tf.lite.TFLiteConverter``'s verbs."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.optimizations: list[Any] = []
        self.representative_dataset: Callable[[], Iterable[Any]] | None = None
        self.inference_input_type: Any = None
        self.inference_output_type: Any = None
        self.target_spec = TargetSpec()
        self.batch: int | None = None
        """edgelstm's addition: a fixed batch size (None: resizable)."""
        self.optimize_latency: bool = False
        """edgelstm's addition: each LSTM fused or unfused, whichever links into the fastest
        file as exact as the fused one (measured; float and dynamic only), as
        ``edgelstm compile --optimize latency`` does."""
        self.result: Any = None
        """The last :meth:`convert`'s :class:`~edgelstm.whole.keras_tflite.WholeResult`."""

    @classmethod
    def from_keras_model(cls, model: Any) -> TFLiteConverter:
        """A converter for a Keras 3 or tf-keras Sequential / chain functional model."""
        return cls(model)

    def options(self) -> tuple[CompileOptions, str, str]:
        """The CompileOptions and the model's (input, output) types these settings mean."""
        mode = _mode(self.optimizations, self.representative_dataset is not None)
        in_type = _type_name(self.inference_input_type, "inference_input_type")
        out_type = _type_name(self.inference_output_type, "inference_output_type")
        if mode != "int8" and "int8" in (in_type, out_type):
            raise SpecError(
                "TFLiteConverter: int8 inference types need full-integer quantization: set "
                "optimizations = [tf.lite.Optimize.DEFAULT] and a representative_dataset"
            )
        calibration = None
        if mode == "int8":
            if self.representative_dataset is None:
                raise CalibrationError(
                    "int8 quantization needs representative_dataset (the model's inputs)"
                )
            calibration = _samples(self.representative_dataset)
        options = CompileOptions(
            batch=self.batch,
            quantize=mode,
            calibration=calibration,
            source="TFLiteConverter",
            int8=Int8Options(io=in_type == out_type == "int8"),
        )
        return options, in_type, out_type

    def convert(self) -> bytes:
        """The .tflite bytes: one file, every LSTM a fused op."""
        from edgelstm.whole.keras_tflite import keras_to_tflite

        options, in_type, out_type = self.options()
        self.result = keras_to_tflite(
            self._model,
            options,
            io_types=(in_type, out_type),
            optimize="latency" if self.optimize_latency else None,
        )
        return self.result.data

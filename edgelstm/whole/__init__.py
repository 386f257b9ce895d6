"""Whole models: the LSTMs between other layers, converted into one file.

A Keras model is split into segments (:mod:`.segments`): runs of LSTM layers, which edgelstm
compiles to its fused ops, and runs of other layers, which TensorFlow's own converter
converts (:mod:`.keras_tflite`); the linker joins the pieces into one .tflite.
:class:`TFLiteConverter` (:mod:`.converter`) is the same API as ``tf.lite.TFLiteConverter``.
TensorFlow is imported only when a model is converted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgelstm.whole.converter import TFLiteConverter
    from edgelstm.whole.keras_onnx import keras_to_onnx
    from edgelstm.whole.keras_tflite import keras_to_tflite
    from edgelstm.whole.optimize import optimize_torch, optimize_whole
    from edgelstm.whole.segments import split_keras
    from edgelstm.whole.torch_module import TorchConverter, from_torch_module
    from edgelstm.whole.torch_split import torch_to_tflite

__all__ = [
    "TFLiteConverter",
    "TorchConverter",
    "from_torch_module",
    "keras_to_onnx",
    "keras_to_tflite",
    "optimize_torch",
    "optimize_whole",
    "split_keras",
    "torch_to_tflite",
]

_HOMES = {
    "TFLiteConverter": "edgelstm.whole.converter",
    "TorchConverter": "edgelstm.whole.torch_module",
    "torch_to_tflite": "edgelstm.whole.torch_split",
    "from_torch_module": "edgelstm.whole.torch_module",
    "keras_to_onnx": "edgelstm.whole.keras_onnx",
    "keras_to_tflite": "edgelstm.whole.keras_tflite",
    "optimize_torch": "edgelstm.whole.optimize",
    "optimize_whole": "edgelstm.whole.optimize",
    "split_keras": "edgelstm.whole.segments",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'edgelstm.whole' has no attribute {name!r}")

"""TFLite emitter and reader: fused UNIDIRECTIONAL_SEQUENCE_LSTM ops, written without TF.

``to_tflite(model, options) -> bytes``, ``save_tflite(model, path, options)`` and
``from_tflite(path) -> LSTMModel``. The flatbuffer schema comes from ai-edge-litert and is
imported only when these functions are first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgelstm.targets.tflite.fused import save_tflite, to_tflite
    from edgelstm.targets.tflite.reader import from_tflite

__all__ = ["from_tflite", "save_tflite", "to_tflite"]


def __getattr__(name: str) -> Any:
    if name in ("to_tflite", "save_tflite"):
        from edgelstm.targets.tflite import fused as emit

        return getattr(emit, name)
    if name == "from_tflite":
        from edgelstm.targets.tflite import reader

        return reader.from_tflite
    raise AttributeError(f"module 'edgelstm.targets.tflite' has no attribute {name!r}")

"""``edgelstm inspect``: what a .tflite / .onnx file holds, read without TensorFlow.

* :mod:`.info` — the data model (:class:`ModelInfo`, :class:`OpInfo`, :class:`TensorInfo`);
* :mod:`.tflite`, :mod:`.onnx` — the two parsers (imported on first use), over the safe
  field accessors of :mod:`.decode`;
* :mod:`.text` — the human-readable form (what ``edgelstm inspect`` prints).

:func:`inspect_model` picks the parser by file suffix. The package is named ``inspect``
only below ``edgelstm``, so it never shadows the standard library's module.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgelstm._io import read_bytes
from edgelstm.errors import ModelFileError
from edgelstm.inspect.info import ModelInfo, OpInfo, TensorInfo
from edgelstm.inspect.text import format_info


def inspect_model(path: str | os.PathLike[str]) -> ModelInfo:
    """Describe ``path`` (.tflite or .onnx) without running it."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".tflite", ".onnx"):
        raise ModelFileError(f"{p}: expected a .tflite or .onnx file, found {suffix or 'none'}")
    data = read_bytes(p)
    if suffix == ".tflite":
        from edgelstm.inspect.tflite import inspect_tflite

        return inspect_tflite(p, data)
    from edgelstm.inspect.onnx import inspect_onnx

    return inspect_onnx(p, data)


__all__ = ["ModelInfo", "OpInfo", "TensorInfo", "format_info", "inspect_model"]

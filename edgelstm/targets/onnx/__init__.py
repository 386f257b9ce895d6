"""ONNX emitter: :func:`to_onnx` / :func:`save_onnx` (fused ``LSTM`` where exact, else composite).

Importing this package is cheap: the two functions live in :mod:`.emit` and are loaded (with
``onnx``) on first use. Inside it, ``import onnx`` is the top-level onnx package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgelstm.targets.onnx.emit import save_onnx, to_onnx

OPSET = 17
"""The ONNX opset of every emitted model (see :mod:`edgelstm.targets.onnx.emit`)."""


def __getattr__(name: str) -> Any:
    if name in ("to_onnx", "save_onnx"):
        from edgelstm.targets.onnx import emit

        return getattr(emit, name)
    raise AttributeError(f"module 'edgelstm.targets.onnx' has no attribute {name!r}")


__all__ = ["OPSET", "save_onnx", "to_onnx"]

"""ONNX emitter: :func:`to_onnx` / :func:`save_onnx` (fused ``LSTM`` where exact, else composite).

Importing this package is cheap: ``onnx`` is imported only when a function is called.
Inside it, ``import onnx`` is the top-level onnx package (absolute imports).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

    from edgelstm.ir.model import LSTMModel
    from edgelstm.ir.options import CompileOptions
    from edgelstm.ir.weights import LSTMWeights

OPSET = 17
"""The ONNX opset of every emitted model (see :mod:`edgelstm.targets.onnx.emit`)."""


def to_onnx(
    model: LSTMModel | LSTMWeights,
    options: CompileOptions | None = None,
    *,
    force_composite: bool | None = None,
    recurrence: str | None = None,
) -> onnx.ModelProto:
    """Compile ``model`` to an ``onnx.ModelProto`` (see :func:`.emit.to_onnx`; the keywords
    override ``options.onnx``)."""
    from edgelstm.targets.onnx.emit import to_onnx as _to_onnx

    return _to_onnx(model, options, force_composite=force_composite, recurrence=recurrence)


def save_onnx(
    model: LSTMModel | LSTMWeights,
    path: str | os.PathLike[str],
    options: CompileOptions | None = None,
    *,
    force_composite: bool | None = None,
    recurrence: str | None = None,
) -> None:
    """Compile ``model`` and write it to ``path`` atomically."""
    from edgelstm.targets.onnx.emit import save_onnx as _save_onnx

    _save_onnx(model, path, options, force_composite=force_composite, recurrence=recurrence)


__all__ = ["OPSET", "save_onnx", "to_onnx"]

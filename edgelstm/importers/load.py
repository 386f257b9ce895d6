"""Load any supported source file into an :class:`LSTMModel`, by its extension.

Framework-specific loaders are imported only when their file type is asked for, so the CLI
starts without TensorFlow or PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgelstm.errors import ModelFileError, UnsupportedError
from edgelstm.ir.model import LSTMModel

SOURCE_SUFFIXES = (".npz", ".onnx", ".tflite", ".keras", ".h5", ".pt", ".pth")


def load_source(
    path: str | os.PathLike[str],
    *,
    batch_first: bool | None = None,
    prefix: str | None = None,
    head: str | None = None,
    lstm: str | None = None,
) -> LSTMModel:
    """Import the LSTM held in ``path`` (.npz, .onnx, .tflite, .keras/.h5, .pt/.pth).

    ``batch_first``, ``prefix`` and ``head`` describe a PyTorch state_dict (see
    :func:`~edgelstm.importers.torch_lstm.from_torch`); other sources refuse them.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.exists():
        raise ModelFileError(f"{p}: source file not found")
    torch_only = {"--batch-first": batch_first, "--prefix": prefix, "--head": head}
    given = [flag for flag, value in torch_only.items() if value is not None]
    if given and suffix not in (".pt", ".pth"):
        raise UnsupportedError(
            "load",
            f"{', '.join(given)} {'describe' if len(given) > 1 else 'describes'} a PyTorch "
            f"state_dict (.pt/.pth); {p.name} is "
            f"{suffix or 'extensionless'}: drop {'them' if len(given) > 1 else 'it'}",
        )
    if lstm is not None and suffix != ".onnx":
        raise UnsupportedError(
            "load", f"--lstm picks a node of an ONNX graph; {p.name} is not .onnx: drop it"
        )
    if suffix == ".npz":
        from edgelstm.importers.npz import from_npz

        return from_npz(p)
    if suffix == ".onnx":
        from edgelstm.importers.onnx_lstm import from_onnx

        return from_onnx(p, lstm=lstm)
    if suffix == ".tflite":
        from edgelstm.targets.tflite import from_tflite

        return from_tflite(p)
    if suffix in (".keras", ".h5"):
        from edgelstm.importers.keras import from_keras

        return from_keras(p)
    if suffix in (".pt", ".pth"):
        from edgelstm.importers.torch_lstm import from_torch

        return from_torch(p, batch_first=batch_first, prefix=prefix, head=head)
    raise ModelFileError(
        f"{p}: unknown source type {suffix or '(no extension)'}; "
        f"expected one of {', '.join(SOURCE_SUFFIXES)}"
    )

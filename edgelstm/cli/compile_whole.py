"""Route a whole model (LSTMs between other layers) to its converter before the LSTM-only path.

Each source kind has its own module: ``whole_onnx`` (an exporter's ONNX graph, rewritten
whole), ``whole_keras`` (a Keras model: the LSTMs fused, the rest converted by TensorFlow)
and ``whole_torch`` (a saved ``torch.export`` program, to ONNX).
Each returns the exit code when it handled the source, or None to fall through to the
LSTM-only path (a pure LSTM stack, edgelstm's own files, ``--lstm NAME``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def compile_whole(args: argparse.Namespace, out: Path) -> int | None:
    """Compile ``args.source`` whole when it is a whole model; None when it is LSTM-only.

    Runs before ``--calibration`` is loaded as [N, T, I] sequences: a whole model's
    calibration is whatever its input takes (e.g. [N, T] token ids), read by the converter."""
    kind = Path(args.source).suffix.lower()
    if kind == ".onnx":
        from edgelstm.cli.whole_onnx import run

        return run(args, out)
    if kind in (".keras", ".h5"):
        from edgelstm.cli.whole_keras import run

        return run(args, out)
    if kind == ".pt2":
        from edgelstm.cli.whole_torch import run

        return run(args, out)
    return None

"""Route a whole model (LSTMs between other layers) to its converter before the LSTM-only path.

Each source kind has its own module: ``whole_onnx`` (an exporter's ONNX graph, rewritten
whole) and ``whole_keras`` (a Keras model: the LSTMs fused, the rest converted by TensorFlow).
Each returns the exit code when it handled the source, or None to fall through to the
LSTM-only path (a pure LSTM stack, edgelstm's own files, ``--lstm NAME``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def compile_whole(
    args: argparse.Namespace, out: Path, calibration: np.ndarray | None
) -> int | None:
    """Compile ``args.source`` whole when it is a whole model; None when it is LSTM-only."""
    kind = Path(args.source).suffix.lower()
    if kind == ".onnx":
        from edgelstm.cli.whole_onnx import run

        return run(args, out, calibration)
    if kind in (".keras", ".h5"):
        from edgelstm.cli.whole_keras import run

        return run(args, out, calibration)
    return None

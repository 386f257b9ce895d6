"""Placeholder: replaced by the whole-model converter for this source kind."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def run(args: argparse.Namespace, out: Path, calibration: np.ndarray | None) -> int | None:
    """None: not handled here (the LSTM-only path compiles the source)."""
    return None

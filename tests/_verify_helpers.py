"""Tiny compiled variants of one LSTM, shared by the verify / bench / inspect / report tests.

Built with edgelstm's own emitters (milliseconds), so the tests exercise exactly what users
run. The full-int8 variant exists only when :mod:`edgelstm.quant` can emit it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from edgelstm import LSTMSpec, LSTMWeights, save_npz
from edgelstm.errors import EdgeLSTMError
from edgelstm.ir.options import CompileOptions

SPEC = LSTMSpec(n_input=4, n_cell=12, peephole=True)
"""Peepholes but no clip: both TFLite and ONNX express it as one fused op."""
SEQ_LEN = 10


def build_variants(root: Path) -> dict[str, Path | None]:
    """source.npz plus float / dynamic / int8 / time-major .tflite and float / dynamic .onnx."""
    from edgelstm.targets.onnx import save_onnx
    from edgelstm.targets.tflite import save_tflite

    weights = LSTMWeights.random(SPEC, seed=7)
    paths: dict[str, Path | None] = {"npz": root / "source.npz"}
    save_npz(weights, root / "source.npz")
    cal = np.random.default_rng(3).standard_normal((32, SEQ_LEN, SPEC.n_input)).astype("f4")
    builds = {
        "float": (save_tflite, "float.tflite", {}),
        "dynamic": (save_tflite, "dynamic.tflite", {"quantize": "dynamic"}),
        "time_major": (save_tflite, "time_major.tflite", {"time_major": True}),
        "int8": (
            save_tflite,
            "int8.tflite",
            {"quantize": "int8", "calibration": cal, "seq_len": SEQ_LEN},
        ),
        "onnx": (save_onnx, "float.onnx", {}),
        "onnx_dynamic": (save_onnx, "dynamic.onnx", {"quantize": "dynamic"}),
    }
    for key, (save, name, opts) in builds.items():
        try:
            save(weights, root / name, CompileOptions(source="source.npz", **opts))
            paths[key] = root / name
        except (EdgeLSTMError, ImportError):
            paths[key] = None
    return paths


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m edgelstm ARGS`` (a real process: exit codes and stderr as users see)."""
    return subprocess.run(
        [sys.executable, "-m", "edgelstm", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


def stderr_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the runtimes' native INFO chatter (e.g. the XNNPACK delegate line)."""
    return [line for line in proc.stderr.splitlines() if line and not line.startswith("INFO:")]

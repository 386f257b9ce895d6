"""``edgelstm compile model.keras`` prints only edgelstm's lines (TF's log is kept for --debug)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

keras = pytest.importorskip("keras")
pytestmark = [pytest.mark.tf, pytest.mark.slow]

# The test process sets these itself (tests/conftest.py); a user's shell does not.
_CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "ABSL_MIN_LOG_LEVEL")
}


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("quiet") / "model.keras"
    model = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.LSTM(4, return_sequences=True), keras.layers.Dense(2)]
    )
    model.save(path)
    return path


def _compile(source, out, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "edgelstm", *extra, "compile", str(source), "-o", str(out)]
    return subprocess.run(
        argv, capture_output=True, text=True, env=_CLEAN_ENV, check=False, timeout=300
    )


def test_compile_keras_prints_only_edgelstm_lines(keras_file):
    out = keras_file.with_suffix(".tflite")
    proc = _compile(keras_file, out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no absl/oneDNN/cuInit lines
    assert len(proc.stdout.splitlines()) == 1 and proc.stdout.startswith("wrote ")
    assert out.stat().st_size > 0


def test_debug_leaves_tensorflow_logging_alone(keras_file):
    proc = _compile(keras_file, keras_file.with_suffix(".onnx"), "--debug")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip()  # TensorFlow's own start-up lines are shown under --debug

"""Progress bars: drawn on stderr only when it is a terminal and the CLI asked; silent otherwise.

The terminal is forced in-process (a stderr whose ``isatty`` is True) and real in one
subprocess test (stderr on a pseudo-terminal, stdout a pipe).
"""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys

import numpy as np
import pytest

import edgelstm
from edgelstm import CompileOptions
from edgelstm._io import enable_progress, progress
from edgelstm.cli.main import main
from edgelstm.ir.options import Int8Options


class _Terminal(io.StringIO):
    """A captured stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _on_terminal(monkeypatch: pytest.MonkeyPatch) -> _Terminal:
    """Swap stderr for a terminal (inside the test body: pytest resets sys.stderr per phase)."""
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setenv("COLUMNS", "100")  # rich sizes the bar from it (no real terminal here)
    return term


@pytest.fixture
def cli_bars():
    previous = enable_progress(True)
    yield
    enable_progress(previous)


@pytest.fixture(scope="module")
def long_model(tmp_path_factory):
    """A model + calibration set whose calibration is long enough to draw a bar (~0.5 s)."""
    spec = edgelstm.LSTMSpec(n_input=8, n_cell=64)
    model = edgelstm.LSTMModel.of(edgelstm.LSTMWeights.random(spec, seed=3))
    x = np.random.default_rng(3).normal(size=(64, 300, 8)).astype(np.float32)
    d = tmp_path_factory.mktemp("progress")
    edgelstm.save_npz(model, d / "m.npz")
    np.save(d / "calib.npy", x)
    return model, x, d


def test_library_use_draws_nothing_even_on_a_terminal(monkeypatch):
    term = _on_terminal(monkeypatch)
    with progress(3, "working") as advance:
        advance(3)
    assert term.getvalue() == ""


def test_cli_switch_draws_nested_bars_on_a_terminal(monkeypatch, cli_bars):
    term = _on_terminal(monkeypatch)
    with progress(3, "outer work") as advance:
        advance()
        with progress(2, "inner work") as inner:  # a second row, not a second live display
            inner(2)
        advance(2)
    text = term.getvalue()
    assert "outer work" in text and "inner work" in text


def test_cli_switch_is_silent_when_stderr_is_not_a_terminal(monkeypatch, cli_bars):
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    with progress(3, "working", enabled=True) as advance:
        advance(3)
    assert captured.getvalue() == ""


def test_calibration_bar_changes_no_byte(monkeypatch, long_model):
    model, x, _ = long_model
    term = _on_terminal(monkeypatch)
    files = [
        edgelstm.to_tflite(
            model, CompileOptions(quantize="int8", calibration=x, int8=Int8Options(progress=p))
        )
        for p in (False, True)
    ]
    assert "calibrating" in term.getvalue()
    assert files[0] == files[1]


def test_cli_without_terminal_prints_nothing_extra(long_model, capsys):
    _, _, d = long_model
    out = d / "plain.tflite"
    argv = ["compile", str(d / "m.npz"), "-o", str(out), "--quantize", "int8"]
    assert main([*argv, "--calibration", str(d / "calib.npy")]) == 0
    assert main(["bench", str(out), "--runs", "3", "--warmup", "1", "--no-memory"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith(f"wrote {out} ")


def _run_with_tty_stderr(argv: list[str]) -> tuple[int, str, bytes]:
    """(exit code, stdout, stderr bytes) of ``argv`` with stderr on a pseudo-terminal."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, text=True
    )
    os.close(slave)
    err = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    out = proc.stdout.read() if proc.stdout else ""
    os.close(master)
    return proc.wait(timeout=60), out, err


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_cli_draws_the_calibration_bar_on_a_real_terminal(long_model):
    _, _, d = long_model
    cmd = [sys.executable, "-m", "edgelstm", "compile", str(d / "m.npz"), "--quantize", "int8"]
    cmd += ["--calibration", str(d / "calib.npy"), "-o"]
    code, out, err = _run_with_tty_stderr([*cmd, str(d / "tty.tflite")])
    plain = subprocess.run(
        [*cmd, str(d / "pipe.tflite")], capture_output=True, text=True, check=False, timeout=120
    )
    assert code == 0 and plain.returncode == 0, plain.stderr
    assert b"calibrating" in err and b"\x1b[" in err  # a drawn, then erased, rich bar
    assert plain.stderr == ""
    assert out.replace("tty.tflite", "pipe.tflite") == plain.stdout  # stdout untouched
    assert (d / "tty.tflite").read_bytes() == (d / "pipe.tflite").read_bytes()

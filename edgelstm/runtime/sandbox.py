"""Run untrusted-model work in a child process, so a native crash cannot take edgelstm down.

LiteRT's ``Interpreter`` and onnxruntime are C++: an adversarial .tflite/.onnx file can make
them segfault, abort or spin, which would kill the CLI with no message (or hang it). Wrap
whatever loads or runs such a file in :func:`run_isolated`::

    y = run_isolated(_run_model_file, path, x, timeout=120, label="the TFLite interpreter")

``fn`` runs in a fresh Python interpreter (``sys.executable``; nothing is forked, so no
thread or lock state is inherited). ``fn`` and ``args`` are pickled to it (``fn`` must be a
module-level function or a ``functools.partial`` of one) and the return value is pickled back.
An exception raised by ``fn`` is re-raised in the parent as is (its traceback text is
attached as a note). Death by a signal becomes a :class:`ModelFileError` naming the signal;
no answer within ``timeout`` seconds kills the child and becomes a :class:`ModelFileError`
saying it hung. What the child prints goes to the parent's stderr; its stdout is the pipe the
result travels on, so ``fn`` printing cannot corrupt the result (prints are sent to stderr).

Cost: one interpreter start plus the imports ``fn`` needs (about 0.5-1 s with LiteRT).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from edgelstm.errors import ModelFileError

T = TypeVar("T")

DEFAULT_TIMEOUT = 300.0
"""Seconds a child may run before it is considered hung (verify/bench of big models)."""

_CHILD = r"""
import os, pickle, sys, traceback
result_fd = os.dup(1)
os.dup2(2, 1)  # fn's prints go to stderr; fd result_fd carries only the pickled result
sys.stdout = sys.stderr
paths, payload = pickle.loads(sys.stdin.buffer.read())
sys.path[:0] = [p for p in paths if p not in sys.path]
try:
    fn, args = pickle.loads(payload)
    outcome = ("ok", fn(*args))
except BaseException as exc:  # every failure is reported to the parent
    outcome = ("raised", exc, traceback.format_exc())
try:
    data = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    pickle.loads(data)  # exceptions with custom __init__ may pickle but not unpickle
except Exception as exc:  # an unpicklable result or exception
    kind = "result" if outcome[0] == "ok" else "exception"
    data = pickle.dumps(
        ("unpicklable", f"{kind} {type(outcome[1]).__name__}: {outcome[1]!s:.300} ({exc})")
    )
with os.fdopen(result_fd, "wb") as out:
    out.write(data)
sys.stderr.flush()
os._exit(0)
"""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _subject(args: tuple[Any, ...]) -> str:
    """The model file the call is about (its first str/path argument), for messages."""
    for arg in args:
        if isinstance(arg, (str, os.PathLike)):
            return os.fspath(arg)
    return "the model"


def run_isolated(
    fn: Callable[..., T],
    *args: Any,
    timeout: float | None = DEFAULT_TIMEOUT,
    label: str = "the model runtime",
    subject: str | None = None,
    forward_stderr: bool = True,
) -> T:
    """Return ``fn(*args)`` computed in a child process (see the module docstring).

    ``label`` names what may crash in messages, e.g. "the TFLite interpreter" or
    "onnxruntime"; ``subject`` the file messages start with (default: the first str/path
    argument). ``forward_stderr=False`` drops the child's stderr after a success (it is still
    attached to errors). Raises :class:`ModelFileError` when the child dies by a signal, exits
    without answering, or runs longer than ``timeout`` seconds (None: no limit).
    """
    try:
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - lambdas, local functions, open handles
        raise TypeError(
            f"run_isolated: {getattr(fn, '__name__', fn)!r} and its arguments must be "
            f"picklable (a module-level function): {exc}"
        ) from None
    request = pickle.dumps((list(sys.path), payload), protocol=pickle.HIGHEST_PROTOCOL)
    subject = _subject(args) if subject is None else subject
    # Own process group: a timeout kills whatever the child started too, and a Ctrl-C in
    # the terminal reaches only us (we then kill the child) instead of both.
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise ModelFileError(
            f"{subject}: {label} did not finish within {timeout:g} s and was killed "
            "(a hang or a runaway size: the file may be corrupted or adversarial)"
        ) from None
    except BaseException:  # KeyboardInterrupt: never leave the child behind
        _kill(proc)
        raise
    if proc.returncode < 0:
        raise _with_note(crash_error(subject, label, -proc.returncode), err)
    try:
        outcome = pickle.loads(out)
    except Exception:  # noqa: BLE001 - a child that exited before answering
        raise _with_note(
            ModelFileError(f"{subject}: {label} exited with code {proc.returncode} and no result"),
            err,
        ) from None
    if outcome[0] == "ok":
        if forward_stderr:
            _forward(err)  # warnings and native log lines, as if fn had run here
        return outcome[1]
    if outcome[0] == "unpicklable":
        raise _with_note(RuntimeError(f"run_isolated: the child's {outcome[1]}"), err)
    raise _with_note(outcome[1], outcome[2].encode())


def crash_error(subject: str, label: str, number: int) -> ModelFileError:
    """The error for a child that ``subject`` killed with signal ``number`` (also used by
    callers that run their own child processes, e.g. bench's peak-memory probe)."""
    hint = " (out of memory?)" if number == signal.SIGKILL else ""
    return ModelFileError(
        f"{subject}: crashed {label} ({_signal_name(number)}, signal {number}){hint}; "
        "the file is corrupted or adversarial"
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:  # already gone
        proc.kill()
    proc.communicate()


def _with_note(exc: BaseException, text: bytes) -> BaseException:
    """Attach the child's stderr / traceback as a note (shown by ``--debug`` tracebacks), so
    the one-line error stays one line."""
    detail = text.decode("utf-8", "replace").strip()
    if detail and hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(f"in the isolated child process:\n{detail[-4000:]}")
    return exc


def _forward(err: bytes) -> None:
    """Pass the child's stderr on to ours."""
    if not err:
        return
    try:
        sys.stderr.write(err.decode("utf-8", "replace"))
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed stderr must not hide the result
        pass


__all__ = ["DEFAULT_TIMEOUT", "crash_error", "run_isolated"]

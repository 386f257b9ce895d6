"""Run a .tflite file on TFLite Micro's own interpreter (the ``tflite-micro`` package).

The number a microcontroller user needs first is the **arena size**: the bytes of RAM the
device must reserve for tensors. :func:`min_arena` finds the smallest arena for which
allocate + invoke succeed, by binary search. A too-small arena can segfault TFLM's LSTM
kernel, so the search runs in a child process (:func:`edgelstm.runtime.sandbox.run_isolated`)
and forks once per probe there: a crashing probe is just "too small". Files TFLM cannot run
(:func:`edgelstm.inspect.tflm.tflm_blockers`: hybrid, peephole, projection, CIFG, layer norm,
ops TFLM lacks) are refused before any load.

TFLM cannot resize tensors: the file's stored shapes are the only ones it runs (compile with
a fixed ``--batch`` and ``--seq-len``). ``reset()`` zeroes the LSTM state variables.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import InputDataError, ModelFileError, UnsupportedError
from edgelstm.inspect import inspect_model
from edgelstm.inspect.tflm import tflm_blockers

MAX_ARENA = 64 << 20
"""Largest arena the search tries (64 MB); a file needing more is refused."""
_ALIGN = 16
_MARGIN = 256
"""Bytes the in-process load adds to the measured minimum: the arena buffer's address (so
TFLM's alignment padding) differs between processes, and a short arena can crash TFLM."""


def _import_runtime() -> Any:
    try:
        from tflite_micro import runtime
    except ImportError as exc:
        raise UnsupportedError(
            "backend tflm", f"tflite_micro is not importable ({exc}); pip install edgelstm[tflm]"
        ) from None
    return runtime


def _load(data: bytes, arena: int) -> Any:
    """An interpreter on ``data`` that has allocated and invoked once on zeros."""
    runtime = _import_runtime()
    interp = runtime.Interpreter.from_bytes(data, arena_size=arena)
    d = interp.get_input_details(0)
    interp.set_input(np.zeros(d["shape"], d["dtype"]), 0)
    interp.invoke()
    interp.reset()
    return interp


def _fits(data: bytes, arena: int) -> bool:
    """Whether ``arena`` bytes suffice, tried in a forked child (a crash means no)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)  # TFLM logs every failed allocation
            _load(data, arena)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _search(data: bytes) -> int | None:
    """Smallest fitting arena (multiple of 16 bytes), None above :data:`MAX_ARENA`."""
    _import_runtime()  # imported once, before forking
    hi = 4096
    while not _fits(data, hi):
        if hi >= MAX_ARENA:
            return None
        hi *= 4
    lo = hi // 4 if hi > 4096 else _ALIGN
    while lo < hi:
        mid = (lo + hi) // 2 // _ALIGN * _ALIGN
        mid = max(lo, mid)
        if _fits(data, mid):
            hi = mid
        else:
            lo = mid + _ALIGN
    return hi


def check_tflm(path: Path) -> None:
    """Refuse (UnsupportedError, with every reason) a file TFLM cannot run correctly."""
    reasons = tflm_blockers(inspect_model(path))
    if reasons:
        raise UnsupportedError(f"{path} on tflm", "; ".join(reasons))


def min_arena(path: str | os.PathLike[str]) -> int:
    """The smallest TFLM arena (bytes) in which ``path`` allocates and invokes."""
    from edgelstm.runtime.sandbox import run_isolated

    p = Path(path)
    check_tflm(p)
    _import_runtime()
    arena = run_isolated(
        functools.partial(_search, p.read_bytes()), label="TFLite Micro", subject=str(p)
    )
    if arena is None:
        raise ModelFileError(f"{p}: TFLite Micro cannot allocate it in {MAX_ARENA >> 20} MB")
    return arena


class TFLMRunner:
    """A .tflite file on TFLM; ``arena_size`` is the smallest arena it needs (what a device
    must reserve), measured by :func:`min_arena` unless given."""

    def __init__(self, path: str | os.PathLike[str], arena_size: int | None = None) -> None:
        self.path = Path(path)
        self.arena_size = min_arena(self.path) if arena_size is None else arena_size
        try:
            self.interpreter = _load(self.path.read_bytes(), self.arena_size + _MARGIN)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "RuntimeError"
            raise ModelFileError(f"{self.path}: TFLite Micro cannot load it: {first}") from None
        self._input = self.interpreter.get_input_details(0)
        self._n_outputs = len(inspect_model(self.path).outputs)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Invoke once on ``x`` (the input tensor's dtype and exact shape), from zero state."""
        shape = tuple(int(d) for d in self._input["shape"])
        if tuple(x.shape) != shape:
            raise InputDataError(
                f"input: TFLite Micro runs the file's fixed shape {list(shape)}, found "
                f"{list(x.shape)}; compile with --batch and --seq-len for the shape you need"
            )
        self.interpreter.reset()
        self.interpreter.set_input(np.ascontiguousarray(x, dtype=self._input["dtype"]), 0)
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_output(i)) for i in range(self._n_outputs)]

    def reset(self) -> None:
        self.interpreter.reset()

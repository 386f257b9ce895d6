"""I/O helpers shared by every layer: atomic file replacement, safe reading, and the one
progress bar (stderr, terminal only) that calibration, bench, optimize, demo and report use."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from edgelstm.errors import ModelFileError

_PROGRESS_WANTED = False  # set by the CLI (enable_progress); library calls stay silent
_ACTIVE_BARS: list[Any] = []  # the one live rich Progress; nested bars become its extra rows


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    An interrupted or failing write leaves no partial file and an existing file untouched.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise ModelFileError(f"{target}: output directory {parent} {what}")
    if not target.name or target.is_dir():
        raise ModelFileError(f"{target}: is a directory, expected an output file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
    except OSError as exc:
        raise ModelFileError(f"{target}: cannot write in {parent} ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError):  # disk full, quota, target replaced by a directory, ...
            raise ModelFileError(f"{target}: cannot write ({exc.strerror or exc})") from exc
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_bytes(path: str | os.PathLike[str], what: str = "model file") -> bytes:
    """Read a whole file, mapping OS errors to :class:`ModelFileError`."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if not data:
        raise ModelFileError(f"{path}: {what} is empty")
    return data


def enable_progress(on: bool = True) -> bool:
    """Let ``progress(..., enabled=None)`` draw bars (the CLI calls this for its command).

    Returns the previous setting, so an in-process caller (a test) can restore it.
    """
    global _PROGRESS_WANTED  # one process-wide switch, like importers.quiet.enable
    previous, _PROGRESS_WANTED = _PROGRESS_WANTED, on
    return previous


def _skip(n: int = 1) -> None:
    """``advance`` of a bar that is not shown."""


@contextlib.contextmanager
def progress(
    total: int | None, description: str, enabled: bool | None = None
) -> Iterator[Callable[..., None]]:
    """A transient rich progress bar on stderr; yields ``advance(n=1)``.

    Drawn only when stderr is a terminal and it is wanted: ``enabled`` True (a library caller
    asked), or None and the CLI turned bars on (:func:`enable_progress`). Otherwise, and in
    pipes, logs and tests' captured output, it prints nothing. A bar opened while another is
    live (calibration inside ``--optimize``) is a second row of the same display, because
    rich allows one live display at a time. ``total`` None: a bar without an end.
    """
    wanted = _PROGRESS_WANTED if enabled is None else enabled
    if not (wanted and sys.stderr.isatty()):
        yield _skip
        return
    owner = not _ACTIVE_BARS
    bar = _ACTIVE_BARS[-1] if _ACTIVE_BARS else _new_bar()
    if owner:
        bar.start()
        _ACTIVE_BARS.append(bar)
    task = bar.add_task(description, total=total)
    try:
        yield lambda n=1: bar.advance(task, n)
    finally:
        bar.remove_task(task)
        if owner:
            _ACTIVE_BARS.pop()
            bar.stop()


def _new_bar() -> Any:
    """A rich Progress on stderr. stdout is routed above the bar only when it is the same
    terminal: when piped, it must stay byte-for-byte what the command printed."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        redirect_stdout=sys.stdout.isatty(),
    )

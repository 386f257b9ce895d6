"""Keep TensorFlow's start-up chatter off the CLI's stderr (``--debug`` turns this off).

TensorFlow prints C++ log lines while it is imported ("All log messages before
absl::InitializeLog() ...", oneDNN, CUDA, "failed call to cuInit"); several are written
before ``TF_CPP_MIN_LOG_LEVEL`` is read, so the environment alone does not stop them. The
CLI enables :func:`framework_quiet` once; importers wrap their first TensorFlow/Keras import
in it. In a library process (not enabled) nothing is changed: the user's logging is theirs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

_ENABLED = False
_TF_MODULES = ("tensorflow", "keras", "tf_keras")


def enable(on: bool = True) -> bool:
    """Quiet TensorFlow on its first import in this process (the CLI calls this).

    Returns the previous setting, so an in-process caller (a test) can restore it.
    """
    global _ENABLED  # one process-wide switch, set by the CLI
    previous, _ENABLED = _ENABLED, on
    return previous


@contextlib.contextmanager
def framework_quiet() -> Iterator[None]:
    """Around a first TensorFlow/Keras import: silence its env logging and native stderr.

    A no-op unless :func:`enable` was called, or once TensorFlow is already imported (its
    start-up lines are the only ones hidden; errors still reach Python as exceptions).
    """
    if not _ENABLED or any(name in sys.modules for name in _TF_MODULES):
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # no cuInit probe on a CPU-only job
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    try:
        with native_stderr_silenced():
            yield
    finally:
        for name in ("tensorflow", "absl", "h5py", "keras"):
            logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to a scratch file for the block: C++ log lines (TensorFlow's
    converter, absl) that Python's logging cannot reach; Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)

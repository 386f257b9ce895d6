"""One error hierarchy, so the CLI can map every expected failure to one readable line.

Every error raised on purpose by edgelstm derives from :class:`EdgeLSTMError`; anything else
that escapes is a bug.
"""

from __future__ import annotations


class EdgeLSTMError(Exception):
    """Base class of every error edgelstm raises on purpose."""


class SpecError(EdgeLSTMError, ValueError):
    """An LSTM configuration is inconsistent (a field has an invalid value)."""


class WeightsError(EdgeLSTMError, ValueError):
    """A weight tensor is missing, superfluous, mis-shaped or non-finite."""


class UnsupportedError(EdgeLSTMError):
    """A target (or importer) cannot express a configuration exactly."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"{target}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Pickle as (target, reason): errors cross process boundaries (edgelstm.runtime.sandbox).
        return type(self), (self.target, self.reason)


class CalibrationError(EdgeLSTMError, ValueError):
    """Calibration data is unusable (wrong shape, non-finite, empty)."""


class ModelFileError(EdgeLSTMError):
    """A model or weights file cannot be read (missing, truncated, corrupted, unsafe)."""


class InputDataError(EdgeLSTMError, ValueError):
    """Input data given to run a model has the wrong shape, type or values."""


class MissingDependencyError(EdgeLSTMError, ImportError):
    """An optional framework (TensorFlow, PyTorch) is needed and not installed; says the extra."""

"""[N, T, I] sequence arrays: the checks every loader and the calibrator apply, and batching.

Calibration data is N float sequences [N, T, I] (each run from zero state); input data for
verify and optimize is the same shape. Every way an array can be unusable — empty, wrong
rank, non-numeric, NaN/inf — is an error naming the problem, typed for what the array is for
(a :class:`DataKind`): :class:`InputDataError` for input data, :class:`CalibrationError` for
calibration data, which also refuses constant data (a silently degenerate calibration gives a
model that quantizes everything to one code). Reading files is
:mod:`edgelstm.measure.data`'s; :func:`as_batches` feeds the calibrator.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edgelstm.errors import CalibrationError, EdgeLSTMError, InputDataError


@dataclass(frozen=True)
class DataKind:
    """What a loaded array is for: how its errors are typed and worded, and its own rules."""

    what: str
    """Words for the data in messages ("input data")."""
    file: str
    """Words for the file in messages ("input data file")."""
    error: type[EdgeLSTMError]
    npz_key: str
    """The array an archive of several arrays provides by default."""
    single: bool
    """A rank-2 [T, I] array is one sequence (N = 1)."""
    allow_constant: bool
    """Constant data is fine (it cannot calibrate an input range)."""


INPUT_DATA = DataKind("input data", "input data file", InputDataError, "x", True, True)
CALIBRATION = DataKind(
    "calibration data", "calibration file", CalibrationError, "calibration", False, False
)


def check_sequences(
    data: object,
    kind: DataKind,
    n_input: int | None = None,
    what: str | None = None,
    *,
    allow_constant: bool | None = None,
) -> np.ndarray:
    """Check one [N, T, I] array (rank, size, dtype, finiteness, spread); return float32.

    ``what`` names the data in messages (default ``kind.what``); ``allow_constant``
    overrides the kind's rule (one item of a longer stream may be constant).
    """
    what = kind.what if what is None else what
    arr = data if isinstance(data, np.ndarray) else np.asarray(data)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise kind.error(f"{what}: expected real numbers, found dtype {arr.dtype}")
    if kind.single and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        single = " (or one [T, I] sequence)" if kind.single else ""
        raise kind.error(
            f"{what}: expected a rank-3 array [N sequences, T steps, I features]{single}, "
            f"found rank {arr.ndim} with shape {list(arr.shape)}"
        )
    if arr.size == 0:
        raise kind.error(f"{what}: is empty (shape {list(arr.shape)})")
    if n_input is not None and arr.shape[-1] != n_input:
        raise kind.error(
            f"{what}: expected I = {n_input} features (the model's input size), "
            f"found {arr.shape[-1]} in shape {list(arr.shape)}"
        )
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        raise kind.error(f"{what}: {int(arr.size - finite.sum())} values are NaN or inf")
    constant_ok = kind.allow_constant if allow_constant is None else allow_constant
    if not constant_ok and float(arr.max()) == float(arr.min()):
        raise kind.error(
            f"{what}: every value is {float(arr.min()):g}; constant data cannot calibrate "
            "the input range"
        )
    return arr


def validate_calibration(
    data: object,
    n_input: int | None = None,
    what: str = "calibration data",
    *,
    allow_constant: bool = False,
) -> np.ndarray:
    """Check one [N, T, I] calibration array (see :func:`check_sequences`); CalibrationError."""
    return check_sequences(data, CALIBRATION, n_input, what, allow_constant=allow_constant)


def as_batches(
    data: np.ndarray | Iterable[np.ndarray], n_input: int, batch_size: int = 64
) -> Iterator[np.ndarray]:
    """Yield float64 [B, T, I] batches from an [N, T, I] array or an iterable of sequences.

    Iterable items may be [T, I] (one sequence) or [B, T, I]; lengths may differ between
    items. The whole stream is validated as it goes (the constant check spans all items).
    """
    if isinstance(data, (str, os.PathLike)):
        raise CalibrationError(
            f"calibration data: expected an [N, T, I] array or an iterable of sequences, "
            f"found the path {os.fspath(data)!r} (load it first: "
            "edgelstm.measure.data.load_calibration)"
        )
    if isinstance(data, np.ndarray):
        arr = validate_calibration(data, n_input)
        for start in range(0, arr.shape[0], batch_size):
            yield arr[start : start + batch_size].astype(np.float64)
        return
    try:
        items = iter(data)
    except TypeError:
        raise CalibrationError(
            f"calibration data: expected an [N, T, I] array or an iterable of sequences, "
            f"found {type(data).__name__}"
        ) from None
    lo, hi, count = np.inf, -np.inf, 0
    for k, item in enumerate(items):
        arr = np.asarray(item)
        if arr.ndim == 2:
            arr = arr[None]
        arr = validate_calibration(arr, n_input, f"calibration item {k}", allow_constant=True)
        lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
        count += arr.shape[0]
        yield arr.astype(np.float64)
    if count == 0:
        raise CalibrationError("calibration data: the iterable yielded no sequences")
    if lo == hi:
        raise CalibrationError(
            f"calibration data: every value is {lo:g}; constant data cannot calibrate "
            "the input range"
        )

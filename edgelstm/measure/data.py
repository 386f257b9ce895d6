"""Representative data for int8 calibration: load it from disk and validate it.

Calibration data is a float array [N, T, I] of N sequences (each run from zero state), in a
.npy file or a .npz archive (one array, or one named ``calibration``). Files are read with
``allow_pickle=False``: a calibration file can never execute code. Every way the data can be
unusable — empty, wrong rank, non-numeric, NaN/inf, constant — is a :class:`CalibrationError`
naming the problem, because a silently degenerate calibration gives a model that quantizes
everything to one code.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edgelstm.errors import CalibrationError

NPZ_KEY = "calibration"
_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def load_calibration(path: str | os.PathLike[str]) -> np.ndarray:
    """Load and validate [N, T, I] calibration data from a .npy or .npz file (float32).

    ``archive.npz:name`` picks array ``name`` of an archive that holds several.
    """
    p, key = Path(path), None
    if not p.exists() and ".npz:" in str(path):
        head, key = str(path).rsplit(":", 1)
        p = Path(head)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise CalibrationError(f"{p}: calibration data must be a .npy or .npz file")
    if not p.is_file():
        raise CalibrationError(f"{p}: calibration file not found")
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic[: len(_MAGIC[suffix])] != _MAGIC[suffix]:
        raise CalibrationError(f"{p}: not a readable numpy {suffix} file (wrong signature)")
    try:
        if suffix == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            with np.load(p, allow_pickle=False) as archive:
                arr = _pick_npz_array(p, archive, key)
    except CalibrationError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise CalibrationError(
                f"{p}: holds Python objects (pickled data), refusing to load; "
                "save a plain numeric array"
            ) from None
        raise CalibrationError(f"{p}: not a readable numpy file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"{p}: not a readable numpy file ({exc})") from None
    return validate_calibration(arr, what=str(p))


def _pick_npz_array(path: Path, archive: np.lib.npyio.NpzFile, key: str | None) -> np.ndarray:
    keys = list(archive.keys())
    if key is not None:
        if key not in keys:
            raise CalibrationError(
                f"{path}: no array {key!r} in the archive (it has {', '.join(sorted(keys))})"
            )
        return archive[key]
    if NPZ_KEY in keys:
        return archive[NPZ_KEY]
    if len(keys) == 1:
        return archive[keys[0]]
    if not keys:
        raise CalibrationError(f"{path}: the .npz archive holds no arrays")
    raise CalibrationError(
        f"{path}: the .npz archive holds {len(keys)} arrays ({', '.join(sorted(keys))}); "
        f"pick one as {path}:NAME, name it {NPZ_KEY!r} or store only one"
    )


def validate_calibration(
    data: object,
    n_input: int | None = None,
    what: str = "calibration data",
    *,
    allow_constant: bool = False,
) -> np.ndarray:
    """Check one [N, T, I] array (rank, size, dtype, finiteness, spread); return float32.

    ``allow_constant`` skips the spread check (one item of a longer stream may be constant).
    """
    arr = data if isinstance(data, np.ndarray) else np.asarray(data)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise CalibrationError(f"{what}: expected real numbers, found dtype {arr.dtype}")
    if arr.ndim != 3:
        raise CalibrationError(
            f"{what}: expected a rank-3 array [N sequences, T steps, I features], "
            f"found rank {arr.ndim} with shape {list(arr.shape)}"
        )
    if arr.size == 0:
        raise CalibrationError(f"{what}: is empty (shape {list(arr.shape)})")
    if n_input is not None and arr.shape[-1] != n_input:
        raise CalibrationError(
            f"{what}: expected I = {n_input} features (the model's input size), "
            f"found {arr.shape[-1]} in shape {list(arr.shape)}"
        )
    arr = arr.astype(np.float32)
    finite = np.isfinite(arr)
    if not finite.all():
        raise CalibrationError(f"{what}: {int(arr.size - finite.sum())} values are NaN or inf")
    if not allow_constant and float(arr.max()) == float(arr.min()):
        raise CalibrationError(
            f"{what}: every value is {float(arr.min()):g}; constant data cannot calibrate "
            "the input range"
        )
    return arr


def as_batches(
    data: np.ndarray | Iterable[np.ndarray], n_input: int, batch_size: int = 64
) -> Iterator[np.ndarray]:
    """Yield float64 [B, T, I] batches from an [N, T, I] array or an iterable of sequences.

    Iterable items may be [T, I] (one sequence) or [B, T, I]; lengths may differ between
    items. The whole stream is validated as it goes (the constant check spans all items).
    """
    if isinstance(data, (str, os.PathLike)):
        data = load_calibration(data)
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

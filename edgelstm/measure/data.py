"""The one loader of [N, T, I] arrays: ``--data`` (verify, optimize) and ``--calibration``.

Both read N float sequences [N, T, I] (each run from zero state) from a .npy file or a .npz
archive, with one path syntax (``archive.npz:name`` picks an array of an archive that holds
several) and one set of checks. Files are read with ``allow_pickle=False``: a data file can
never execute code. Every way a file can be unusable — missing, not numpy, pickled, an
ambiguous archive, empty, wrong rank, non-numeric, NaN/inf — is an error naming the problem,
typed for what the file is for (a :class:`~edgelstm.quant.batches.DataKind`):
:class:`InputDataError` for input data, :class:`CalibrationError` for calibration data. The
array checks are :func:`edgelstm.quant.batches.check_sequences` (the calibrator applies the
same ones); this module reads files.

What differs between the two kinds is stated in :data:`INPUT_DATA` and :data:`CALIBRATION`:
an archive's default array (``x`` / ``calibration``), whether one [T, I] sequence is accepted,
and whether constant data is (a silently degenerate calibration gives a model that quantizes
everything to one code, so calibration refuses it).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from edgelstm.errors import EdgeLSTMError
from edgelstm.quant.batches import CALIBRATION, INPUT_DATA, DataKind, check_sequences

_MAGIC = {".npy": b"\x93NUMPY", ".npz": b"PK"}


def load_sequences(path: str | os.PathLike[str], kind: DataKind = INPUT_DATA) -> np.ndarray:
    """Load and check [N, T, I] data of ``kind`` from a .npy or .npz file (float32).

    ``archive.npz:name`` picks array ``name`` of an archive that holds several.
    """
    p, key = Path(path), None
    if not p.exists() and ".npz:" in str(path):
        head, key = str(path).rsplit(":", 1)
        p = Path(head)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise kind.error(f"{p}: {kind.what} must be a .npy or .npz file")
    if not p.is_file():
        raise kind.error(f"{p}: {kind.file} not found")
    arr = _read_array(p, key, kind)
    return check_sequences(arr, kind, what=str(p))


def load_data(path: str | os.PathLike[str]) -> np.ndarray:
    """Input sequences for ``--data`` (a single [T, I] becomes N = 1); InputDataError."""
    return load_sequences(path, INPUT_DATA)


def load_calibration(path: str | os.PathLike[str]) -> np.ndarray:
    """Calibration sequences for ``--calibration``; CalibrationError."""
    return load_sequences(path, CALIBRATION)


def _read_array(p: Path, key: str | None, kind: DataKind) -> np.ndarray:
    """The raw array of an existing .npy / .npz file, every read failure as ``kind.error``."""
    suffix = p.suffix.lower()
    try:
        with open(p, "rb") as f:
            magic = f.read(6)
        if magic[: len(_MAGIC[suffix])] != _MAGIC[suffix]:
            raise kind.error(f"{p}: not a readable numpy {suffix} file (wrong signature)")
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        with np.load(p, allow_pickle=False) as archive:
            return _pick_npz_array(p, archive, key, kind)
    except EdgeLSTMError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise kind.error(
                f"{p}: holds Python objects (pickled data), refusing to load; "
                "save a plain numeric array"
            ) from None
        raise kind.error(f"{p}: not a readable numpy file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise kind.error(f"{p}: not a readable numpy file ({exc})") from None


def _pick_npz_array(
    path: Path, archive: np.lib.npyio.NpzFile, key: str | None, kind: DataKind
) -> np.ndarray:
    keys = list(archive.keys())
    if key is not None:
        if key not in keys:
            raise kind.error(
                f"{path}: no array {key!r} in the archive (it has {', '.join(sorted(keys))})"
            )
        return archive[key]
    if kind.npz_key in keys:
        return archive[kind.npz_key]
    if len(keys) == 1:
        return archive[keys[0]]
    if not keys:
        raise kind.error(f"{path}: the .npz archive holds no arrays")
    raise kind.error(
        f"{path}: the .npz archive holds {len(keys)} arrays ({', '.join(sorted(keys))}); "
        f"pick one as {path}:NAME, name it {kind.npz_key!r} or store only one"
    )

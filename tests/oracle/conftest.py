"""Fixtures shared by the oracle modules."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def vad_entry(tmp_path_factory):
    """The Silero VAD LSTM from faster-whisper's wheel with its held-out clip (fetched once
    per session; skipped with the reason when the wheel cannot be downloaded)."""
    from _trained_corpus import bench

    path = bench.fetch_vad(tmp_path_factory.mktemp("wheel"))
    if path is None:
        pytest.skip(f"cannot download {bench.WHEEL}")
    return bench.vad(path)

"""The trained-LSTM corpus of ``tools/bench_int8_trained.py`` (JapaneseVowels, char LM,
Silero VAD), loaded once for every int8 test module that measures on it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_bench():
    if "bench_int8_trained" in sys.modules:
        return sys.modules["bench_int8_trained"]
    spec = importlib.util.spec_from_file_location(
        "bench_int8_trained", ROOT / "tools" / "bench_int8_trained.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_int8_trained"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

"""Argument types shared by the commands (numbers with bounds, refused with a clear message),
and which LSTM-only flags a compile was given (whole-model sources refuse them)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def bounded(
    convert: Callable[[str], float], low: float, *, strict: bool, what: str
) -> Callable[[str], float]:
    """An argparse type: ``convert(text)``, finite and >= ``low`` (> ``low`` if ``strict``)."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, found {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, found {text}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_int = bounded(int, 1, strict=False, what="a positive integer")
non_negative_int = bounded(int, 0, strict=False, what="an integer >= 0")
positive_float = bounded(float, 0.0, strict=True, what="a positive number")


_LSTM_FLAGS: dict[str, Callable[[argparse.Namespace], bool]] = {
    "--batch": lambda a: bool(a.batch),
    "--seq-len": lambda a: a.seq_len is not None,
    "--time-major": lambda a: bool(a.time_major),
    "--streaming": lambda a: bool(a.streaming),
    "--calibration": lambda a: a.calibration is not None,
    "--optimize": lambda a: a.optimize is not None,
    "--lstm": lambda a: a.lstm is not None,
    "--batch-first": lambda a: a.batch_first is not None,
    "--prefix": lambda a: a.prefix is not None,
    "--head": lambda a: a.head is not None,
}


def given_flags(args: argparse.Namespace, *flags: str) -> list[str]:
    """Which of ``flags`` (names of ``compile`` options shaping one LSTM stack) were given."""
    return [flag for flag in flags if _LSTM_FLAGS[flag](args)]

"""Argument types shared by the commands: numbers with bounds, refused with a clear message."""

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

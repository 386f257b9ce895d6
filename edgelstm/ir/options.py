"""Options shared by every emitter (TFLite and ONNX), so the CLI and API speak one language."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edgelstm.errors import SpecError

Quantize = Literal["none", "dynamic", "int8"]
QUANTIZE_MODES: tuple[str, ...] = ("none", "dynamic", "int8")
DIM_MAX = 2**31 - 1
"""Largest fixed batch / sequence length: TFLite tensor shapes are int32."""


@dataclass(frozen=True)
class CompileOptions:
    """How to emit a model.

    ``batch``/``seq_len`` fix the input shape (None = dynamic, resizable at run time);
    ``time_major`` overrides the model's own layout when not None; ``quantize`` is "none",
    "dynamic" (int8 weights, float activations) or "int8" (full integer, needs
    ``calibration``: [N, T, I] sequences); ``source`` is recorded in provenance.
    """

    batch: int | None = 1
    seq_len: int | None = None
    time_major: bool | None = None
    quantize: Quantize = "none"
    calibration: np.ndarray | None = field(default=None, repr=False, compare=False)
    source: str = "api"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in ("batch", "seq_len"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= DIM_MAX
            ):
                raise SpecError(
                    f"CompileOptions.{name}: expected an integer in 1..{DIM_MAX} (TFLite "
                    f"shapes are int32) or None, found {value!r}"
                )
        if self.quantize not in QUANTIZE_MODES:
            raise SpecError(
                f"CompileOptions.quantize: expected one of {QUANTIZE_MODES}, "
                f"found {self.quantize!r}"
            )

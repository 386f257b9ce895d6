"""The configuration of one LSTM direction: sizes, optional features, clips, activation.

It is TF ``LSTMCell``'s feature set plus what TFLite's fused kernel adds (CIFG, layer norm,
projection bias). There is no forget bias: importers fold it into ``forget_gate_bias``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edgelstm.errors import SpecError

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "relu6", "relu_n1_to_1", "sigmoid", "linear")
"""Cell/output activations the reference computes. Gates always use the logistic sigmoid."""


@dataclass(frozen=True)
class LSTMSpec:
    """Sizes and options of one LSTM direction (validated on construction).

    ``n_output`` is the size of the hidden state h: ``n_cell`` without projection,
    the projection size with it. ``cell_clip``/``proj_clip`` of 0 mean no clipping.
    """

    n_input: int
    n_cell: int
    n_output: int | None = None
    cifg: bool = False
    peephole: bool = False
    projection: bool = False
    projection_bias: bool = False
    layer_norm: bool = False
    cell_clip: float = 0.0
    proj_clip: float = 0.0
    activation: str = "tanh"

    def __post_init__(self) -> None:
        if self.n_output is None:
            object.__setattr__(self, "n_output", self.n_cell)
        for name in ("n_input", "n_cell", "n_output"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"LSTMSpec.{name}: expected a positive integer, found {value!r}")
        for name in ("cifg", "peephole", "projection", "projection_bias", "layer_norm"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"LSTMSpec.{name}: expected a bool, found {getattr(self, name)!r}")
        for name in ("cell_clip", "proj_clip"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise SpecError(f"LSTMSpec.{name}: expected a number, found {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise SpecError(
                    f"LSTMSpec.{name}: expected a finite value >= 0 (0 = no clip), found {value!r}"
                )
            object.__setattr__(self, name, value)
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"LSTMSpec.activation: expected one of {', '.join(ACTIVATIONS)}, "
                f"found {self.activation!r}"
            )
        if not self.projection and self.n_output != self.n_cell:
            raise SpecError(
                f"LSTMSpec.n_output: without projection expected n_output == n_cell "
                f"({self.n_cell}), found {self.n_output}"
            )
        if self.projection_bias and not self.projection:
            raise SpecError("LSTMSpec.projection_bias: expected projection=True with a bias")
        if self.proj_clip > 0 and not self.projection:
            raise SpecError(
                f"LSTMSpec.proj_clip: expected 0 without projection, found {self.proj_clip}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for metadata and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LSTMSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(data, dict):
            raise SpecError(f"LSTMSpec: expected a dict of fields, found {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SpecError(f"LSTMSpec: unknown fields {sorted(map(str, unknown))}")
        missing = [k for k in ("n_input", "n_cell") if k not in data]
        if missing:
            raise SpecError(f"LSTMSpec: missing fields {missing}")
        return cls(**data)

    def describe(self) -> str:
        """Short human summary, e.g. ``LSTM 12->64/32 peephole projection clip(c=3)``."""
        feats = [f for f in ("cifg", "peephole", "projection", "layer_norm") if getattr(self, f)]
        if self.projection_bias:
            feats.append("projection_bias")
        if self.cell_clip:
            feats.append(f"cell_clip={self.cell_clip:g}")
        if self.proj_clip:
            feats.append(f"proj_clip={self.proj_clip:g}")
        if self.activation != "tanh":
            feats.append(f"activation={self.activation}")
        size = f"{self.n_input}->{self.n_cell}"
        if self.projection:
            size += f"/{self.n_output}"
        return " ".join(["LSTM", size, *feats])

"""A small container of LSTM layers: stacked, bidirectional, with an optional dense head.

Importers return an :class:`LSTMModel`; emitters consume one. A single direction is
``LSTMModel.of(weights)``. :meth:`LSTMModel.walk` (per direction) and
:meth:`LSTMModel.walk_layers` (per layer) are the one layer x direction traversal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from edgelstm.errors import SpecError, WeightsError
from edgelstm.ir.weights import LSTMWeights, _checked_array

HEAD_ACTIVATIONS = ("linear", "softmax")


@dataclass(frozen=True, eq=False)
class LSTMLayer:
    """One layer: a forward direction and, when bidirectional, a backward one.

    ``go_backwards`` (Keras) runs a unidirectional layer over the reversed sequence and
    returns its outputs in that reversed order; ``reverse`` (ONNX ``direction="reverse"``)
    also runs over the reversed sequence but returns outputs re-aligned to input time.
    A bidirectional layer concatenates [forward, backward] features, with the backward
    outputs re-aligned to input time (its backward half is a ``reverse`` direction).
    """

    forward: LSTMWeights
    backward: LSTMWeights | None = None
    go_backwards: bool = False
    reverse: bool = False

    def __post_init__(self) -> None:
        for side in ("forward", "backward"):
            value = getattr(self, side)
            if not isinstance(value, LSTMWeights) and (side == "forward" or value is not None):
                raise SpecError(
                    f"LSTMLayer.{side}: expected LSTMWeights, found {type(value).__name__}"
                )
        if self.go_backwards and self.reverse:
            raise SpecError(
                "LSTMLayer.reverse: go_backwards (reversed output order) and reverse "
                "(output re-aligned to input time) exclude each other"
            )
        if self.backward is not None:
            if self.go_backwards or self.reverse:
                raise SpecError(
                    "LSTMLayer.go_backwards/reverse: not allowed on a bidirectional layer"
                )
            if self.backward.spec.n_input != self.forward.spec.n_input:
                raise SpecError(
                    f"LSTMLayer.backward.n_input: expected {self.forward.spec.n_input}, "
                    f"found {self.backward.spec.n_input}"
                )

    @property
    def bidirectional(self) -> bool:
        return self.backward is not None

    def runs_reversed(self, direction: int) -> bool:
        """Whether direction 0/1 consumes the sequence from last step to first."""
        return direction == 1 or self.go_backwards or self.reverse

    def realigns(self, direction: int) -> bool:
        """Whether direction 0/1 returns its outputs re-aligned to input time after running
        reversed (its final output then sits at time step 0)."""
        return direction == 1 or self.reverse

    @property
    def directions(self) -> tuple[LSTMWeights, ...]:
        return (self.forward,) if self.backward is None else (self.forward, self.backward)

    @property
    def n_input(self) -> int:
        return self.forward.spec.n_input

    @property
    def n_output(self) -> int:
        """Features per time step this layer emits."""
        return sum(d.spec.n_output for d in self.directions)


DIRECTION_NAMES = ("forward", "backward")
"""Name of direction 0 / 1 of a layer (tensor-name prefixes, metadata)."""


@dataclass(frozen=True, eq=False)
class DirectionVisit:
    """One direction of one layer as :meth:`LSTMModel.walk` meets it, with what the emitters
    ask of it (so no emitter re-derives which way a direction runs)."""

    k: int
    """Layer index."""
    d: int
    """Direction index in the layer: 0 forward, 1 backward."""
    layer: LSTMLayer
    weights: LSTMWeights
    last_layer: bool
    """Whether this is the model's last layer (its outputs are the model's)."""

    @property
    def name(self) -> str:
        """``"forward"`` or ``"backward"``."""
        return DIRECTION_NAMES[self.d]

    @property
    def runs_reversed(self) -> bool:
        """Whether it consumes the sequence from last step to first."""
        return self.layer.runs_reversed(self.d)

    @property
    def realigns(self) -> bool:
        """Whether its outputs are re-aligned to input time after running reversed."""
        return self.layer.realigns(self.d)


@dataclass(frozen=True, eq=False)
class LayerVisit:
    """One layer as :meth:`LSTMModel.walk_layers` meets it: its directions, in order."""

    k: int
    layer: LSTMLayer
    last: bool
    directions: tuple[DirectionVisit, ...]


@dataclass(frozen=True, eq=False)
class DenseHead:
    """``y = activation(x @ kernel.T + bias)`` on the last layer's output.

    ``kernel`` is [n_units, n_features] (TFLite FULLY_CONNECTED layout).
    """

    kernel: np.ndarray
    bias: np.ndarray
    activation: str = "linear"

    def __post_init__(self) -> None:
        kernel = np.asarray(self.kernel)
        if kernel.ndim != 2:
            raise WeightsError(f"head.kernel: expected 2-D [units, features], found {kernel.shape}")
        object.__setattr__(self, "kernel", _checked_array("head.kernel", kernel, kernel.shape))
        object.__setattr__(self, "bias", _checked_array("head.bias", self.bias, (kernel.shape[0],)))
        if self.activation not in HEAD_ACTIVATIONS:
            raise SpecError(
                f"head.activation: expected one of {HEAD_ACTIVATIONS}, found {self.activation!r}"
            )

    @property
    def units(self) -> int:
        return int(self.kernel.shape[0])

    def digest(self) -> str:
        """SHA-256 over kernel and bias (little-endian float32): identifies them in metadata."""
        h = hashlib.sha256(np.ascontiguousarray(self.kernel, "<f4").tobytes())
        h.update(np.ascontiguousarray(self.bias, "<f4").tobytes())
        return h.hexdigest()


@dataclass(frozen=True, eq=False)
class LSTMModel:
    """Stacked LSTM layers (each uni- or bidirectional) and an optional dense head.

    ``return_sequences`` applies to the last layer (inner layers always pass the whole
    sequence on); the head, if any, is applied per time step or to the last step.
    ``return_state`` exposes the final (h, c) of every direction of the last layer;
    ``stateful`` keeps state across invocations (the TFLite variable tensors do).
    ``provenance`` records where the weights came from (source, folded forget bias, ...).
    """

    layers: tuple[LSTMLayer, ...]
    head: DenseHead | None = None
    return_sequences: bool = True
    return_state: bool = False
    stateful: bool = False
    time_major: bool = False
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.layers, LSTMLayer):
            raise SpecError("LSTMModel.layers: expected a sequence of LSTMLayer, found one layer")
        try:
            layers = tuple(self.layers)
        except TypeError:
            raise SpecError(
                f"LSTMModel.layers: expected a sequence of LSTMLayer, "
                f"found {type(self.layers).__name__}"
            ) from None
        if not isinstance(self.provenance, Mapping):
            raise SpecError(
                f"LSTMModel.provenance: expected a mapping, found {type(self.provenance).__name__}"
            )
        if not layers:
            raise SpecError("LSTMModel.layers: expected at least one layer, found none")
        for k, layer in enumerate(layers):
            if not isinstance(layer, LSTMLayer):
                raise SpecError(f"LSTMModel.layers[{k}]: expected an LSTMLayer, found {layer!r}")
            if k and layer.n_input != layers[k - 1].n_output:
                raise SpecError(
                    f"LSTMModel.layers[{k}].n_input: expected {layers[k - 1].n_output} "
                    f"(previous layer's output), found {layer.n_input}"
                )
        if self.head is not None and self.head.kernel.shape[1] != layers[-1].n_output:
            raise WeightsError(
                f"head.kernel: expected [units, {layers[-1].n_output}], "
                f"found {list(self.head.kernel.shape)}"
            )
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # The read-only provenance proxy cannot be pickled (the sandbox returns models).
        return type(self), (
            self.layers,
            self.head,
            self.return_sequences,
            self.return_state,
            self.stateful,
            self.time_major,
            dict(self.provenance),
        )

    @classmethod
    def of(cls, weights: LSTMWeights | LSTMModel, **options: Any) -> LSTMModel:
        """Wrap one direction as a one-layer model (a model is returned as is)."""
        if isinstance(weights, LSTMModel):
            return weights
        if not isinstance(weights, LSTMWeights):
            raise SpecError(f"expected LSTMWeights or LSTMModel, found {type(weights).__name__}")
        return cls(layers=(LSTMLayer(weights),), **options)

    def walk_layers(self) -> Iterator[LayerVisit]:
        """Every layer, first to last, with its directions: the one layer x direction
        traversal (emitters, calibration and the reference all use it)."""
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            visits = tuple(
                DirectionVisit(k, d, layer, weights, k == last)
                for d, weights in enumerate(layer.directions)
            )
            yield LayerVisit(k, layer, k == last, visits)

    def walk(self) -> Iterator[DirectionVisit]:
        """Every direction of every layer, in layer then direction order."""
        for visit in self.walk_layers():
            yield from visit.directions

    @property
    def n_input(self) -> int:
        return self.layers[0].n_input

    @property
    def n_output(self) -> int:
        """Features per output step (head units when there is a head)."""
        return self.head.units if self.head is not None else self.layers[-1].n_output

    @property
    def is_single(self) -> bool:
        """One plain forward direction, default options, no head (the single-layer .npz)."""
        layer = self.layers[0]
        return (
            len(self.layers) == 1
            and not layer.bidirectional
            and not layer.go_backwards
            and not layer.reverse
            and self.head is None
            and self.return_sequences
            and not self.return_state
            and not self.stateful
            and not self.time_major
        )

    def describe(self) -> str:
        parts = []
        for k, layer in enumerate(self.layers):
            text = layer.forward.spec.describe()
            if layer.bidirectional:
                text = f"Bidirectional({text})"
            if layer.go_backwards:
                text += " go_backwards"
            if layer.reverse:
                text += " reverse"
            parts.append(f"[{k}] {text}")
        if self.head is not None:
            parts.append(f"Dense({self.head.units}, {self.head.activation})")
        return "; ".join(parts)

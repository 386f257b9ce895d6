"""Canonical weights of one LSTM direction: per-gate tensors in TFLite's layout, by role name.

This is the single in-memory form every importer produces and every emitter consumes.
Presence and shapes are checked against :mod:`edgelstm.ir.roles`, so a constructed
:class:`LSTMWeights` is always internally consistent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType, SimpleNamespace
from typing import Any

import numpy as np

from edgelstm.errors import WeightsError
from edgelstm.ir.roles import WEIGHT_NAMES, WEIGHT_ROLES, Role, present_weight_roles
from edgelstm.ir.spec import LSTMSpec


@dataclass(frozen=True, eq=False)
class LSTMWeights:
    """A validated :class:`LSTMSpec` with its float32 tensors (read-only arrays)."""

    spec: LSTMSpec
    tensors: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        if not isinstance(self.spec, LSTMSpec):
            raise WeightsError(f"LSTMWeights.spec: expected an LSTMSpec, found {self.spec!r}")
        if not isinstance(self.tensors, Mapping):
            raise WeightsError(
                f"LSTMWeights.tensors: expected a mapping of role name -> array, "
                f"found {type(self.tensors).__name__}"
            )
        tensors = dict(self.tensors)
        unknown = sorted(set(tensors) - WEIGHT_NAMES)
        if unknown:
            raise WeightsError(f"unknown tensor role(s) {unknown}; known: {sorted(WEIGHT_NAMES)}")
        checked: dict[str, np.ndarray] = {}
        for r in WEIGHT_ROLES:
            if not r.present(self.spec):
                if r.name in tensors:
                    raise WeightsError(
                        f"{r.name}: expected absent for {self.spec.describe()} "
                        f"({_why_absent(r, self.spec)}), found a tensor"
                    )
                continue
            if r.name not in tensors:
                raise WeightsError(f"{r.name}: required for {self.spec.describe()}, missing")
            checked[r.name] = _checked_array(r.name, tensors[r.name], r.shape(self.spec))
        object.__setattr__(self, "tensors", MappingProxyType(checked))

    def __reduce__(self) -> tuple[type, tuple[LSTMSpec, dict[str, np.ndarray]]]:
        # The read-only mapping proxy cannot be pickled (edgelstm.runtime.sandbox returns models).
        return type(self), (self.spec, dict(self.tensors))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    def get(self, name: str) -> np.ndarray | None:
        """The tensor of role ``name`` or None when the spec has no such tensor."""
        return self.tensors.get(name)

    def replace(self, **changes: Any) -> LSTMWeights:
        """A copy with spec fields changed (tensors are re-validated)."""
        return LSTMWeights(replace(self.spec, **changes), self.tensors)

    def digest(self) -> str:
        """SHA-256 over spec and tensors: identifies the weights in provenance metadata."""
        h = hashlib.sha256(repr(sorted(self.spec.to_dict().items())).encode())
        for name in sorted(self.tensors):
            arr = np.ascontiguousarray(self.tensors[name], dtype="<f4")
            h.update(name.encode())
            h.update(repr(arr.shape).encode())
            h.update(arr.tobytes())
        return h.hexdigest()

    def allclose(self, other: LSTMWeights, atol: float = 0.0) -> bool:
        """Same spec and tensors within ``atol`` (for round-trip tests)."""
        return self.spec == other.spec and all(
            np.allclose(self.tensors[k], other.tensors[k], rtol=0, atol=atol) for k in self.tensors
        )

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, Any],
        *,
        cell_clip: float = 0.0,
        proj_clip: float = 0.0,
        activation: str = "tanh",
    ) -> LSTMWeights:
        """Infer the spec from which roles are present (the .npz and TFLite readers' view)."""
        names = set(tensors)
        unknown = sorted(names - WEIGHT_NAMES)
        if unknown:
            raise WeightsError(f"unknown tensor role(s) {unknown}; known: {sorted(WEIGHT_NAMES)}")
        features = _check_groups(names)
        w = np.asarray(tensors["input_to_forget_weights"])
        r = np.asarray(tensors["recurrent_to_forget_weights"])
        if w.ndim != 2 or r.ndim != 2:
            raise WeightsError(
                f"input_to_forget_weights / recurrent_to_forget_weights: expected 2-D, "
                f"found shapes {w.shape} / {r.shape}"
            )
        spec = LSTMSpec(
            n_input=int(w.shape[1]),
            n_cell=int(w.shape[0]),
            n_output=int(r.shape[1]),
            cifg=features.cifg,
            peephole=features.peephole,
            projection=features.projection,
            projection_bias=features.projection_bias,
            layer_norm=features.layer_norm,
            cell_clip=cell_clip,
            proj_clip=proj_clip,
            activation=activation,
        )
        return cls(spec, tensors)

    @classmethod
    def random(cls, spec: LSTMSpec, seed: int = 0, scale: float | None = None) -> LSTMWeights:
        """Random weights for ``spec`` (tests, demos, benchmarks); uniform like Glorot."""
        rng = np.random.default_rng(seed)
        tensors = {}
        for r in present_weight_roles(spec):
            shape = r.shape(spec)
            if r.kind == "ln":
                tensors[r.name] = rng.uniform(0.5, 1.5, shape)
            else:
                bound = scale if scale is not None else 1.0 / np.sqrt(max(shape[-1], 1))
                tensors[r.name] = rng.uniform(-bound, bound, shape)
        return cls(spec, tensors)


def _check_groups(names: set[str]) -> SimpleNamespace:
    """Infer the optional features from which roles are present, enforcing all-or-none.

    A feature counts as on when any of its tensors is present; then every tensor the role
    table expects for it must be there (the CIFG input gate likewise).
    """
    features = SimpleNamespace(
        cifg=not any(r.gate == "input" and r.name in names for r in WEIGHT_ROLES),
        peephole=any(r.feature == "peephole" and r.name in names for r in WEIGHT_ROLES),
        layer_norm=any(r.feature == "layer_norm" and r.name in names for r in WEIGHT_ROLES),
        projection="projection_weights" in names,
        projection_bias="projection_bias" in names,
    )
    if features.projection_bias and not features.projection:
        raise WeightsError("projection_bias: present without projection_weights")
    expected = {r.name for r in WEIGHT_ROLES if r.present(features)}
    missing = sorted(expected - names)
    if missing:
        on = [f for f in ("peephole", "layer_norm", "projection") if getattr(features, f)]
        mode = "CIFG" if features.cifg else "with input gate"
        raise WeightsError(
            f"incomplete tensor set ({mode}; features {on or 'none'}): missing {missing}; "
            "optional groups must be all present or all absent"
        )
    return features


def _why_absent(r: Role, spec: LSTMSpec) -> str:
    if spec.cifg and r.gate == "input":
        return "CIFG has no input gate"
    return "its feature is off"


def _checked_array(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is a weights error
        raise WeightsError(f"{name}: not convertible to an array ({exc})") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise WeightsError(f"{name}: expected a real numeric array, found dtype {arr.dtype}")
    if arr.shape != shape:
        raise WeightsError(f"{name}: expected shape {list(shape)}, found {list(arr.shape)}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range: reported just below
        arr = np.array(arr, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise WeightsError(f"{name}: expected finite values, found {bad} NaN/inf")
    arr.setflags(write=False)
    return arr

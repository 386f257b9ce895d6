"""The one table of the fused TFLite LSTM op's tensors: its 24 inputs and 5 intermediates.

The canonical weights, the .npz format, the TFLite writer and reader and the quantizer all
name tensors by these roles and derive presence and shape from this table, so the layout
facts live in exactly one place.  Index = the op's input index (layout from TFLite's
``unidirectional_sequence_lstm`` kernel: 0 input, 1-4 input weights, 5-8 recurrent weights,
9-11 peepholes, 12-15 biases, 16-17 projection, 18-19 state, 20-23 layer norm). Code that
needs one gate's tensor asks :func:`name_of` (``name_of('weight', g)``) rather than spelling the
name, and addresses the full-integer op's intermediates by name through :data:`INTERMEDIATES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from edgelstm.ir.spec import LSTMSpec

GATES: tuple[str, ...] = ("input", "forget", "cell", "output")
"""Canonical gate order (TFLite's). Framework orders are converted in :mod:`.gate_orders`."""

Feature = Literal["peephole", "projection", "projection_bias", "layer_norm"]
Kind = Literal["input", "weight", "recurrent", "peephole", "bias", "projection", "state", "ln"]
Dim = Literal["n_input", "n_cell", "n_output", "batch"]


@dataclass(frozen=True)
class Role:
    """One input slot of the fused op."""

    index: int
    name: str
    kind: Kind
    dims: tuple[Dim, ...]
    gate: str | None = None
    feature: Feature | None = None
    """The optional feature this tensor belongs to (None: always present)."""

    @property
    def is_weight(self) -> bool:
        """True for constant parameters (everything but the input and the two states)."""
        return self.kind not in ("input", "state")

    def present(self, spec: LSTMSpec | Any) -> bool:
        """Whether this tensor exists for ``spec`` (CIFG drops the input-gate tensors)."""
        if self.gate == "input" and spec.cifg:
            return False
        return self.feature is None or bool(getattr(spec, self.feature))

    def shape(self, spec: LSTMSpec) -> tuple[int, ...]:
        """Concrete shape for ``spec`` (state shapes use batch 1)."""
        sizes = {"n_input": spec.n_input, "n_cell": spec.n_cell, "n_output": spec.n_output}
        return tuple(sizes.get(d, 1) for d in self.dims)


def _gate_roles(start: int, fmt: str, kind: Kind, dims: tuple[Dim, ...], gates=GATES, feature=None):
    return [
        Role(start + k, fmt.format(g), kind, dims, gate=g, feature=feature)
        for k, g in enumerate(gates)
    ]


ROLES: tuple[Role, ...] = tuple(
    [Role(0, "input", "input", ("batch", "n_input"))]
    + _gate_roles(1, "input_to_{}_weights", "weight", ("n_cell", "n_input"))
    + _gate_roles(5, "recurrent_to_{}_weights", "recurrent", ("n_cell", "n_output"))
    + _gate_roles(
        9,
        "cell_to_{}_weights",
        "peephole",
        ("n_cell",),
        gates=("input", "forget", "output"),
        feature="peephole",
    )
    + _gate_roles(12, "{}_gate_bias", "bias", ("n_cell",))
    + [
        Role(16, "projection_weights", "projection", ("n_output", "n_cell"), feature="projection"),
        Role(17, "projection_bias", "bias", ("n_output",), feature="projection_bias"),
        Role(18, "output_state", "state", ("batch", "n_output")),
        Role(19, "cell_state", "state", ("batch", "n_cell")),
    ]
    + _gate_roles(20, "{}_layer_norm_coefficients", "ln", ("n_cell",), feature="layer_norm")
)
assert [r.index for r in ROLES] == list(range(24))

BY_NAME: dict[str, Role] = {r.name: r for r in ROLES}
WEIGHT_ROLES: tuple[Role, ...] = tuple(r for r in ROLES if r.is_weight)
WEIGHT_NAMES: frozenset[str] = frozenset(r.name for r in WEIGHT_ROLES)

N_INPUTS = 24
N_INPUTS_NO_LAYER_NORM = 20
INPUT_INDEX = 0
OUTPUT_STATE_INDEX = 18
CELL_STATE_INDEX = 19


def role(name: str) -> Role:
    """Look a role up by name."""
    return BY_NAME[name]


def present_weight_roles(spec: LSTMSpec) -> Iterator[Role]:
    """The weight roles ``spec`` has, in op-input order."""
    return (r for r in WEIGHT_ROLES if r.present(spec))


GATE_ROLES: dict[Kind, dict[str, Role]] = {
    kind: {r.gate: r for r in ROLES if r.kind == kind and r.gate is not None}
    for kind in ("weight", "recurrent", "peephole", "bias", "ln")
}
"""``GATE_ROLES[kind][gate]``: the per-gate roles by kind (peepholes have no cell gate)."""


def gate_role(kind: Kind, gate: str) -> Role:
    """The role of ``kind`` for ``gate`` (e.g. ``gate_role('weight', 'forget')``)."""
    role_ = GATE_ROLES.get(kind, {}).get(gate)
    if role_ is None:
        raise KeyError(f"no {kind} role for gate {gate!r}")
    return role_


def name_of(kind: Kind, gate: str) -> str:
    """The tensor name of ``kind`` for ``gate``: ``name_of('bias', 'forget')`` is
    ``'forget_gate_bias'``. Callers look names up here instead of spelling them."""
    return gate_role(kind, gate).name


@dataclass(frozen=True)
class Intermediate:
    """One of the 5 intermediate tensors of the full-integer fused op.

    The kernel reads only their quantization: the 4 gates' int16 pre-normalisation
    accumulators (layer norm) and the hidden o·tanh(c) before the projection.
    """

    index: int
    name: str
    gate: str | None = None

    @property
    def tensor_name(self) -> str:
        """The name our writer gives the tensor (below the op's prefix)."""
        return f"intermediate_{self.index}"


INTERMEDIATES: tuple[Intermediate, ...] = tuple(
    Intermediate(k, f"{g}_gate", g) for k, g in enumerate(GATES)
) + (Intermediate(len(GATES), "hidden"),)
"""The op's intermediates in operator order (index = position in ``op.intermediates``)."""
INTERMEDIATE_BY_NAME: dict[str, Intermediate] = {i.name: i for i in INTERMEDIATES}


def intermediate(name: str) -> Intermediate:
    """Look an intermediate up by name (``'input_gate'`` .. ``'output_gate'``, ``'hidden'``)."""
    return INTERMEDIATE_BY_NAME[name]

"""Canonical weights -> ONNX-layout arrays, and the fused-or-composite decision per direction.

CIFG: the canonical input gate is ``i = 1 - f``. ORT's ``input_forget=1`` couples the other
way (``f = 1 - i``, measured), so it is not used. Instead the input gate is materialised as
the negated forget gate — input weights, recurrent weights, bias and peephole ``-forget``,
layer-norm coefficient ``+forget`` — which gives ``i = sigmoid(-z_f) = 1 - sigmoid(z_f)``:
the same function, so CIFG needs no special case in either emitter. Gate order conversion
is done only by :mod:`edgelstm.ir.gate_orders`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelstm.ir.gate_orders import ORDERS, join, stack, stack_peephole
from edgelstm.ir.roles import name_of
from edgelstm.ir.spec import LSTMSpec
from edgelstm.ir.weights import LSTMWeights

ONNX_GATES: tuple[str, ...] = ORDERS["onnx"]
"""Gate order of every stacked array here (i, o, f, c)."""

FUSED_ACTIVATIONS: dict[str, tuple[str, tuple[float, float] | None]] = {
    "tanh": ("Tanh", None),
    "relu": ("Relu", None),
    "sigmoid": ("Sigmoid", None),
    "linear": ("Affine", (1.0, 0.0)),
}
"""Canonical activation -> (ONNX LSTM activation name, (alpha, beta) if it takes them)."""


@dataclass(frozen=True, eq=False)
class OnnxParams:
    """One direction's parameters stacked in ONNX gate order (float32)."""

    spec: LSTMSpec
    W: np.ndarray
    """[4N, I]"""
    R: np.ndarray
    """[4N, P]"""
    B: np.ndarray
    """[4N] gate biases (the ONNX op's Wb; its Rb is zero)."""
    P: np.ndarray | None
    """[3N] peepholes in order i, o, f (None without peepholes)."""
    ln: np.ndarray | None
    """[4N] layer-norm coefficients (None without layer norm)."""
    projection: np.ndarray | None
    """[P, N] projection weights."""
    projection_bias: np.ndarray | None
    tensors: dict[str, np.ndarray]
    """Per-role float32 tensors, CIFG materialised (per-gate peepholes, LN, biases)."""


def _materialise_cifg(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(tensors)
    for kind in ("weight", "recurrent", "bias", "peephole"):
        if name_of(kind, "forget") in tensors:
            out[name_of(kind, "input")] = -tensors[name_of(kind, "forget")]
    if name_of("ln", "forget") in tensors:
        # LN(-z) = -LN(z), so the coefficient keeps its sign: pre_i = -pre_f exactly.
        out[name_of("ln", "input")] = tensors[name_of("ln", "forget")]
    return out


def onnx_params(weights: LSTMWeights) -> OnnxParams:
    """Stack one direction's canonical tensors in ONNX order (CIFG materialised)."""
    spec = weights.spec
    tensors = {k: np.asarray(v, dtype=np.float32) for k, v in weights.tensors.items()}
    if spec.cifg:
        tensors = _materialise_cifg(tensors)
    w, r, b = stack("onnx", tensors)
    peep = stack_peephole("onnx", tensors) if spec.peephole else None
    ln = None
    if spec.layer_norm:
        ln = join({g: tensors[name_of("ln", g)] for g in ONNX_GATES}, ONNX_GATES)
    return OnnxParams(
        spec,
        np.ascontiguousarray(w, np.float32),
        np.ascontiguousarray(r, np.float32),
        np.ascontiguousarray(b, np.float32),
        peep,
        ln,
        tensors.get("projection_weights"),
        tensors.get("projection_bias"),
        tensors,
    )


def fused_blocker(spec: LSTMSpec) -> str | None:
    """Why the ONNX ``LSTM`` op cannot compute ``spec`` exactly (None: it can)."""
    if spec.projection:
        return "projection (the ONNX LSTM op has none)"
    if spec.layer_norm:
        return "layer norm (the ONNX LSTM op has none)"
    if spec.cell_clip > 0:
        return "cell_clip (the ONNX LSTM 'clip' clips gate pre-activations, not the cell state)"
    if spec.activation not in FUSED_ACTIVATIONS:
        return f"activation {spec.activation} (no ONNX LSTM activation computes it)"
    return None


def fused_reason(spec: LSTMSpec) -> str:
    """Short description of a fused direction (for the emit report and metadata)."""
    notes = [n for n in ("peephole", "cifg") if getattr(spec, n)]
    if spec.cifg:
        notes[-1] = "cifg as negated forget gate"
    if spec.activation != "tanh":
        name, _ = FUSED_ACTIVATIONS[spec.activation]
        notes.append(f"activation {name}")
    return "fused LSTM" + (f" ({', '.join(notes)})" if notes else "")

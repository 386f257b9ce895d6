"""Per-direction weights of the unfused lowering: gates stacked into one matrix each.

The fused op keeps four [N, I] input matrices; the unfused graph wants one GEMM for all
gates: ``w`` [G*N, I] (G = 4, or 3 with CIFG) and ``r`` [G*N, P], gate blocks in the
canonical order (input, forget, cell, output; CIFG drops input). Without layer norm the gate
biases are added inside the hoisted input GEMM (``x W^T + b`` for every step at once), so a
time step has no bias add at all; with layer norm the bias comes after the normalisation
(TFLite's semantics), so it stays a separate per-step ADD.

Weight quantization for the int8 variants is symmetric per output channel (one scale per
row, zero point 0, int8 in [-127, 127]; :func:`edgelstm.quant.tensor.quantize_symmetric`
with ``axis=0``): XNNPACK's dynamic-range (qd8 x qc8w) and QS8
fully-connected kernels take per-channel scales, and per-channel is both faster here
(measured: 0.97 vs 1.07 ms, H=256) and more accurate than per-tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelstm.ir.roles import Kind, name_of
from edgelstm.ir.spec import LSTMSpec
from edgelstm.ir.weights import LSTMWeights

ALL_GATES = ("input", "forget", "cell", "output")
CIFG_GATES = ("forget", "cell", "output")


@dataclass(frozen=True)
class DirectionParams:
    """One direction's weights in the unfused layout (float32 arrays)."""

    spec: LSTMSpec
    gates: tuple[str, ...]
    w: np.ndarray
    """[G*N, I] input weights, gate blocks in ``gates`` order."""
    r: np.ndarray
    """[G*N, P] recurrent weights."""
    bias: np.ndarray
    """[G*N] gate biases."""
    peephole: dict[str, np.ndarray]
    """gate -> [N] (input/forget/output present with peepholes)."""
    ln: np.ndarray | None
    """[G, N] layer-norm coefficients."""
    proj: np.ndarray | None
    """[P, N]."""
    proj_bias: np.ndarray | None

    @property
    def n_gates(self) -> int:
        return len(self.gates)

    @property
    def width(self) -> int:
        """Columns of the stacked gate pre-activations (G*N)."""
        return self.n_gates * self.spec.n_cell

    @property
    def bias_in_gemm(self) -> bool:
        """Whether the gate bias is folded into the hoisted input GEMM (no layer norm)."""
        return not self.spec.layer_norm

    def gate_bias(self) -> np.ndarray:
        """[G, N] biases (applied after layer norm)."""
        return self.bias.reshape(self.n_gates, self.spec.n_cell)


def direction_params(weights: LSTMWeights) -> DirectionParams:
    spec = weights.spec
    gates = CIFG_GATES if spec.cifg else ALL_GATES
    t = weights.tensors

    def stack(kind: Kind) -> np.ndarray:
        return np.concatenate([np.asarray(t[name_of(kind, g)], np.float32) for g in gates], axis=0)

    ln = None
    if spec.layer_norm:
        ln = np.stack([np.asarray(t[name_of("ln", g)], np.float32) for g in gates])
    peephole = {}
    if spec.peephole:
        peephole = {
            g: np.asarray(t[name_of("peephole", g)], np.float32) for g in gates if g != "cell"
        }
    return DirectionParams(
        spec=spec,
        gates=gates,
        w=stack("weight"),
        r=stack("recurrent"),
        bias=stack("bias"),
        peephole=peephole,
        ln=ln,
        proj=np.asarray(t["projection_weights"], np.float32) if spec.projection else None,
        proj_bias=np.asarray(t["projection_bias"], np.float32) if spec.projection_bias else None,
    )


def stacked_input_weights(
    params: list[DirectionParams],
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One GEMM for every direction of a layer: (W [sum G*N, I], bias, column offsets).

    Directions share the layer input, so their input weights stack into one matrix (a
    bidirectional layer runs one [B*T, I] x [I, 2*G*N] GEMM). The bias columns are the gate
    biases where they fold into the GEMM, zero otherwise.
    """
    ws, bs, offsets, col = [], [], [], 0
    for p in params:
        ws.append(p.w)
        bs.append(p.bias if p.bias_in_gemm else np.zeros_like(p.bias))
        offsets.append(col)
        col += p.width
    return np.concatenate(ws, axis=0), np.concatenate(bs), offsets

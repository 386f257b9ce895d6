"""One ONNX ``LSTM`` node for a layer (or one direction of it), with its layout glue.

Inputs and outputs are time-major ([T, B, F]); the emitter transposes batch-major I/O once
around the whole stack (ORT rejects ``layout=1``). The node gets W [D,4H,I], R [D,4H,H],
B [D,8H] (gate biases, then zeros for Rb), optional ``sequence_lens``, initial h/c
[D,B,H] (omitted = zeros, in stateless files) and P [D,3H]. The ``clip`` and
``input_forget`` attributes are never set (see :mod:`edgelstm.targets.onnx.params`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgelstm.targets.onnx.builder import GraphBuilder
from edgelstm.targets.onnx.params import FUSED_ACTIVATIONS, OnnxParams

DIRECTIONS = ("forward", "reverse", "bidirectional")


def _activation_attrs(params: Sequence[OnnxParams]) -> dict:
    names: list[str] = []
    alphas: list[float] = []
    betas: list[float] = []
    default = all(p.spec.activation == "tanh" for p in params)
    if default:
        return {}
    for p in params:
        onnx_name, ab = FUSED_ACTIVATIONS[p.spec.activation]
        names += ["Sigmoid", onnx_name, onnx_name]
        if ab is not None:  # consumed in order by the activations that take them (g, h)
            alphas += [ab[0], ab[0]]
            betas += [ab[1], ab[1]]
    attrs: dict = {"activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
        attrs["activation_beta"] = betas
    return attrs


def emit_fused(
    gb: GraphBuilder,
    x: str,
    params: Sequence[OnnxParams],
    direction: str,
    h0: Sequence[str | None],
    c0: Sequence[str | None],
    sequence_lens: str | None,
    hint: str,
) -> tuple[str, list[tuple[str, str]]]:
    """Emit the node; returns (Y [T,B,D*H], [(h [B,H], c [B,H]) per direction])."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}")
    n_dir = len(params)
    if (n_dir == 2) != (direction == "bidirectional"):
        raise ValueError("bidirectional needs exactly two parameter sets")
    hidden = params[0].spec.n_cell
    if any(p.spec.n_cell != hidden for p in params):
        raise ValueError("a bidirectional LSTM node needs equal hidden sizes")
    w = gb.const(f"{hint}.W", np.stack([p.W for p in params]))
    r = gb.const(f"{hint}.R", np.stack([p.R for p in params]))
    b = gb.const(f"{hint}.B", np.stack([np.concatenate([p.B, np.zeros_like(p.B)]) for p in params]))
    peep = ""
    if any(p.P is not None for p in params):
        zeros = np.zeros(3 * hidden, np.float32)
        peep = gb.const(f"{hint}.P", np.stack([p.P if p.P is not None else zeros for p in params]))

    def stacked(states: Sequence[str | None], which: str) -> str:
        if all(s is None for s in states):  # omitted: the node starts from zeros
            return ""
        if any(s is None for s in states):
            raise ValueError("initial states: give every direction's or none")
        axes = gb.ints("axes0", [0])
        parts = [gb.op("Unsqueeze", [s, axes], hint=f"{hint}.{which}0") for s in states]
        return parts[0] if n_dir == 1 else gb.op("Concat", parts, hint=f"{hint}.{which}0", axis=0)

    inputs = [x, w, r, b, sequence_lens or "", stacked(h0, "h"), stacked(c0, "c"), peep]
    while inputs[-1] == "":  # trailing optional inputs are dropped, not named ""
        inputs.pop()
    y, y_h, y_c = gb.op(
        "LSTM",
        inputs,
        3,
        hint=f"{hint}.lstm",
        hidden_size=hidden,
        direction=direction,
        **_activation_attrs(params),
    )
    # Y is [T, D, B, H]
    if n_dir == 1:
        y = gb.op("Squeeze", [y, gb.ints("axes1", [1])], hint=f"{hint}.y")
    else:
        y = gb.op("Transpose", [y], hint=f"{hint}.y", perm=[0, 2, 1, 3])
        y = gb.op("Reshape", [y, gb.ints("shape", [0, 0, 2 * hidden])], hint=f"{hint}.y")
    if n_dir == 1:  # [1, B, H] -> [B, H]: a Squeeze, no data movement
        axis0 = gb.ints("axes0", [0])  # created only where used: ORT warns of unused ones
        h = gb.op("Squeeze", [y_h, axis0], hint=f"{hint}.h")
        return y, [(h, gb.op("Squeeze", [y_c, axis0], hint=f"{hint}.c"))]
    finals = []
    for d in range(n_dir):
        index = gb.const("index", np.int64(d), np.int64)
        h = gb.op("Gather", [y_h, index], hint=f"{hint}.h", axis=0)
        c = gb.op("Gather", [y_c, index], hint=f"{hint}.c", axis=0)
        finals.append((h, c))
    return y, finals

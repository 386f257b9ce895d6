"""The exact float64 reference of the canonical LSTM: the oracle every emitter is tested against.

Semantics are TF ``LSTMCell``'s (peepholes per Sak et al. 2014; cell_clip applied to the new
cell state before the output peephole and the output activation; projection, then proj_clip)
plus TFLite's CIFG (input gate = 1 - forget gate) and layer norm
(gate = LN(W x + R h [+ peephole]) * coefficient + bias, population variance, eps 1e-8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edgelstm.errors import InputDataError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.roles import name_of
from edgelstm.ir.weights import LSTMWeights

LAYER_NORM_EPSILON = 1e-8
XW_CHUNK_BYTES = 16 << 20
"""Working set of the calibration pass's input product (see :class:`_GateProducts`)."""

State = tuple[np.ndarray, np.ndarray]


class StepObserver(Protocol):
    """Sees the intermediate values of one direction's run (calibration uses it).

    Observing never changes the result: quantizers read ranges from the very math the
    emitters are tested against instead of keeping a second copy of it.
    """

    def gate(self, gate: str, partials: tuple[np.ndarray, ...], value: np.ndarray) -> None:
        """Per gate and step: the running sums W x, W x + R h [, + P c] (before layer norm
        and bias) and the final pre-activation. The arrays may be buffers reused by the next
        step: copy what must outlive the call."""

    def cell(self, c: np.ndarray) -> None:
        """Per step: the (clipped) new cell state."""

    def hidden(self, m: np.ndarray) -> None:
        """Per step: o * act(c), before any projection."""

    def sequence(self, x: np.ndarray, y: np.ndarray) -> None:
        """Once: the batch-major input and output ([B, T, *]) in processing order."""


class ModelObserver(Protocol):
    """Hands out a :class:`StepObserver` per direction and sees the head's logits."""

    def direction(self, layer: int, direction: int) -> StepObserver | None: ...

    def head_logits(self, z: np.ndarray) -> None: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free logistic


ACTIVATION_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "relu_n1_to_1": lambda x: np.clip(x, -1.0, 1.0),
    "sigmoid": _sigmoid,
    "linear": lambda x: x,
}


def _layer_norm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPSILON)


def _as_sequence(x: np.ndarray, n_input: int, time_major: bool) -> np.ndarray:
    """Validate x and return it batch-major [B, T, I] in float64."""
    try:
        arr = np.asarray(x)
    except ValueError as exc:  # ragged nested lists
        raise InputDataError(f"input: not a rectangular array ({exc})") from None
    if arr.ndim == 2:
        arr = arr[None] if not time_major else arr[:, None]
    if arr.ndim != 3 or arr.shape[-1] != n_input:
        layout = "[T, B, I]" if time_major else "[B, T, I]"
        raise InputDataError(
            f"input: expected shape {layout} with I = {n_input}, found {list(arr.shape)}"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputDataError(f"input: expected real numbers, found dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputDataError("input: expected finite values, found NaN/inf")
    return arr.transpose(1, 0, 2) if time_major else arr


def _initial_state(weights: LSTMWeights, batch: int, state: State | None) -> State:
    spec = weights.spec
    if state is None:
        return np.zeros((batch, spec.n_output)), np.zeros((batch, spec.n_cell))
    try:
        h, c = (np.asarray(s, dtype=np.float64) for s in state)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"initial state: expected a pair (h, c) of arrays ({exc})") from None
    for name, arr, width in (("h", h, spec.n_output), ("c", c, spec.n_cell)):
        if arr.shape != (batch, width):
            raise InputDataError(
                f"initial state {name}: expected shape {[batch, width]}, found {list(arr.shape)}"
            )
    return h.copy(), c.copy()


class _GateProducts:
    """W x and R h per gate and step.

    The float64 oracle keeps one product per gate, the input one for every step at once (its
    bits are what every emitter is tested against). Other dtypes only feed calibration
    ranges: there all gates share one GEMM per step, [B, P] x [P, G*N] into a reused buffer
    (~3x faster than G narrow products), and the input product is computed for
    ``XW_CHUNK_BYTES`` worth of steps at a time (time-major, so each step's slice is
    contiguous): the working set stays small whatever T is.
    """

    def __init__(
        self, w: dict[str, np.ndarray], gates: Sequence[str], xs: np.ndarray, *, fused: bool
    ) -> None:
        batch, steps, _ = xs.shape
        self.fused = fused
        if not fused:
            flat = xs.reshape(batch * steps, -1)  # one 2-D product: far faster than a 3-D one
            self.xw = {
                g: (flat @ w[name_of("weight", g)].T).reshape(batch, steps, -1) for g in gates
            }
            self.r = {g: w[name_of("recurrent", g)] for g in gates}
            return
        n = w[name_of("recurrent", gates[0])].shape[0]
        width = n * len(gates)
        self.cols = {g: slice(k * n, (k + 1) * n) for k, g in enumerate(gates)}
        self.wx = np.concatenate([w[name_of("weight", g)] for g in gates]).T
        self.wr = np.empty((w[name_of("recurrent", gates[0])].shape[1], width), xs.dtype)
        for g in gates:
            self.wr[:, self.cols[g]] = w[name_of("recurrent", g)].T
        self.x = np.ascontiguousarray(xs.transpose(1, 0, 2))  # [T, B, I]
        self.chunk = max(1, min(steps, XW_CHUNK_BYTES // (batch * width * xs.itemsize)))
        self.xw = np.empty((self.chunk, batch, width), xs.dtype)
        self.start = -self.chunk
        self.z = np.empty((batch, width), xs.dtype)
        self.step = -1

    def at(self, g: str, t: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(W x_t, W x_t + R h) of gate ``g``; ``h`` must stay h_{t-1} for the whole step."""
        if not self.fused:
            xw_t = self.xw[g][:, t]
            return xw_t, xw_t + h @ self.r[g].T
        if self.step != t:
            if t >= self.start + self.chunk:
                self.start = t
                x = self.x[t : t + self.chunk]
                out = self.xw[: len(x)].reshape(-1, self.xw.shape[-1])
                np.matmul(x.reshape(-1, x.shape[-1]), self.wx, out=out)
            xw = self.xw[t - self.start]
            np.matmul(h, self.wr, out=self.z)
            self.z += xw
            self.step = t
        xw = self.xw[t - self.start]
        return xw[:, self.cols[g]], self.z[:, self.cols[g]]


def reference(
    weights: LSTMWeights,
    x: np.ndarray,
    initial_state: State | None = None,
    time_major: bool = False,
    observer: StepObserver | None = None,
    dtype: type[np.floating] = np.float64,
) -> tuple[np.ndarray, State]:
    """Run one LSTM direction in float64.

    ``x`` is [B, T, I] ([T, B, I] if ``time_major``); ``initial_state`` is (h [B, P], c [B, N]),
    zeros when omitted. Returns (outputs in the layout of ``x``, (h, c) after the last step).
    ``observer`` (optional) is shown every intermediate value (see :class:`StepObserver`).
    ``dtype``: float64 is the oracle; calibration passes float32 (its ranges do not need
    float64, and float32 matrix products are 2-4x faster on half the memory).
    """
    spec = weights.spec
    xs = _as_sequence(x, spec.n_input, time_major).astype(dtype, copy=False)
    batch, steps, _ = xs.shape
    h, c = (s.astype(dtype, copy=False) for s in _initial_state(weights, batch, initial_state))
    w = {k: v.astype(dtype, copy=False) for k, v in weights.tensors.items()}  # read only
    act = ACTIVATION_FUNCTIONS[spec.activation]
    gates = ("forget", "cell", "output") if spec.cifg else ("input", "forget", "cell", "output")
    out = np.empty((batch, steps, spec.n_output), dtype=dtype)
    products = _GateProducts(w, gates, xs, fused=np.dtype(dtype) != np.float64)

    def pre(g: str, t: int, cell: np.ndarray) -> np.ndarray:
        xw_t, z = products.at(g, t, h)
        partials = (xw_t, z) if observer is not None else ()
        if spec.peephole and g != "cell":
            z = z + cell * w[name_of("peephole", g)]
            partials += (z,) if observer is not None else ()
        if spec.layer_norm:
            z = _layer_norm(z) * w[name_of("ln", g)]
        z = z + w[name_of("bias", g)]
        if observer is not None:
            observer.gate(g, partials, z)
        return z

    for t in range(steps):
        f = _sigmoid(pre("forget", t, c))
        i = 1.0 - f if spec.cifg else _sigmoid(pre("input", t, c))
        g = act(pre("cell", t, c))
        c = f * c + i * g
        if spec.cell_clip > 0:
            c = np.clip(c, -spec.cell_clip, spec.cell_clip)
        o = _sigmoid(pre("output", t, c))
        m = o * act(c)
        if observer is not None:
            observer.cell(c)
            observer.hidden(m)
        if spec.projection:
            m = m @ w["projection_weights"].T
            if spec.projection_bias:
                m = m + w["projection_bias"]
            if spec.proj_clip > 0:
                m = np.clip(m, -spec.proj_clip, spec.proj_clip)
        h = m
        out[:, t] = h
    if observer is not None:
        observer.sequence(xs, out)
    return (out.transpose(1, 0, 2) if time_major else out), (h, c)


@dataclass(frozen=True)
class ModelOutput:
    """What :func:`reference_model` returns: the output and each direction's final state."""

    output: np.ndarray
    """[B, T, F] (or [B, F] without return_sequences), time-major if the model is."""
    states: tuple[tuple[State, ...], ...]
    """states[layer][direction] = (h, c)."""


def reference_model(
    model: LSTMModel | LSTMWeights,
    x: np.ndarray,
    initial_states: Sequence[Sequence[State | None]] | None = None,
    observer: ModelObserver | None = None,
    dtype: type[np.floating] = np.float64,
) -> ModelOutput:
    """Run a whole :class:`LSTMModel` (stacked, bidirectional, go_backwards, head) in float64.

    ``x`` follows ``model.time_major``. ``initial_states[layer][direction]`` may give (h, c).
    ``observer`` (optional) gets a :class:`StepObserver` per direction and the head's logits.
    ``dtype``: see :func:`reference` (float64 unless only ranges are wanted).
    """
    model = LSTMModel.of(model)
    seq = _as_sequence(x, model.n_input, model.time_major)  # [B, T, I]
    if initial_states is not None and len(initial_states) != len(model.layers):
        raise InputDataError(
            f"initial_states: expected one entry per layer ({len(model.layers)}), "
            f"found {len(initial_states)}"
        )
    states = []
    for visit in model.walk_layers():
        given = initial_states[visit.k] if initial_states is not None else [None] * 2
        if given is None:
            given = [None] * 2
        outs, finals = [], []
        for v in visit.directions:
            inp = seq[:, ::-1] if v.runs_reversed else seq
            watch = observer.direction(v.k, v.d) if observer is not None else None
            y, state = reference(
                v.weights, inp, given[v.d] if v.d < len(given) else None, False, watch, dtype
            )
            if v.realigns:  # outputs back in input-time order
                y = y[:, ::-1]
            outs.append(y)
            finals.append(state)
        seq = np.concatenate(outs, axis=-1)
        states.append(tuple(finals))
    if not model.return_sequences:  # each direction's final output (= its final h)
        seq = np.concatenate([h for h, _ in states[-1]], axis=-1)
    if model.head is not None:
        seq = seq @ model.head.kernel.astype(dtype).T + model.head.bias.astype(dtype)
        if observer is not None:
            observer.head_logits(seq)
        if model.head.activation == "softmax":
            seq = np.exp(seq - seq.max(axis=-1, keepdims=True))
            seq = seq / seq.sum(axis=-1, keepdims=True)
    if model.time_major and seq.ndim == 3:
        seq = seq.transpose(1, 0, 2)
    return ModelOutput(seq, tuple(states))

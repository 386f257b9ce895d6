"""Calibration: run the float64 reference math on representative data and record ranges.

The integer kernel needs ranges for exactly these values (see ``PopulateQuantizedLstmParams
8x8_16`` in TFLite's unidirectional_sequence_lstm.cc and ``lstm_eval.cc``):

* ``input`` — the op input (int8, asymmetric);
* ``output`` — the op output = output_state (int8): the projected, proj-clipped h with
  projection, else o·tanh(c);
* ``hidden`` — o·tanh(c) before the projection (intermediate 4, int8, zero point 0);
* ``cell`` — the clipped cell state (int16, scale 2^k);
* ``gate.<g>`` (layer norm only) — the int16 accumulator the kernel normalises: it holds
  W·x, then W·x + R·h, then + peephole·c, saturating at each step, so every partial sum is
  recorded (intermediates 0-3 quantize this pre-normalisation value, not the LN output).

Without layer norm the gate accumulator is fixed Q3.12 (±8); ``saturation`` counts how often a
partial sum leaves ±8 (and with layer norm, how often LN·coef + bias does) as a diagnostic.

The values come from :func:`edgelstm.reference.reference_model` itself, through its observer
hook: there is no second copy of the LSTM math to drift from the oracle.

A lowering that runs the LSTM as integer matrix products (the unfused TFLite graph) also needs
each product's operand ranges: :func:`calibrate_products` observes them in the same pass
(``xw``, ``h``, ``rh``, see :class:`Products`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgelstm._io import progress as progress_bar
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.roles import GATE_ROLES
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.batches import as_batches
from edgelstm.quant.estimators import Observer
from edgelstm.reference import reference_model

Q312_LIMIT = 8.0
"""The Q3.12 gate accumulator of the integer kernel saturates at ±8."""
BATCH_SIZE = 64


@dataclass(frozen=True)
class Products:
    """One direction's matrix products as a lowering lays them out (float32 matrices).

    Observed (:func:`calibrate_products`): ``xw`` = x W^T + bias (the input product of every
    step at once, bias folded in; pass zeros where the bias is added later), ``h`` = the state
    the recurrent product reads (h_{t-1}: the zero initial state, then every output but the
    last) and ``rh`` = h_{t-1} R^T.
    """

    w: np.ndarray
    """[G*N, I] input weights."""
    r: np.ndarray
    """[G*N, P] recurrent weights."""
    bias: np.ndarray
    """[G*N] added to x W^T."""


@dataclass
class Moments:
    """Running ``sum u u^T`` of what the gates read, ``u = [x_t; h_{t-1}; 1]``, and of what
    the projection reads, ``[m_t; 1]`` (float64 sums of float32 products; no history kept)."""

    gates: np.ndarray | None = None
    hidden: np.ndarray | None = None
    count: int = 0
    hidden_count: int = 0

    @staticmethod
    def _gram(flat: np.ndarray) -> np.ndarray:
        """``flat^T flat`` of [rows, cols + 1] whose last column is ones: one GEMM (syrk)."""
        return (flat.T @ flat).astype(np.float64)

    def add_gate_inputs(self, x: np.ndarray, y: np.ndarray) -> None:
        # [x_t | h_{t-1} | 1] written once into one buffer (no concatenated copies).
        batch, steps, n_x = x.shape
        u = np.empty((batch, steps, n_x + y.shape[-1] + 1), y.dtype)
        u[..., :n_x] = x
        u[:, 0, n_x:-1] = 0
        u[:, 1:, n_x:-1] = y[:, :-1]
        u[..., -1] = 1
        g = self._gram(u.reshape(batch * steps, -1))
        self.gates = g if self.gates is None else self.gates + g
        self.count += x.shape[0] * x.shape[1]

    def add_hidden(self, m: np.ndarray) -> None:
        rows = m.reshape(-1, m.shape[-1])
        g = self._gram(np.concatenate([rows, np.ones((rows.shape[0], 1), m.dtype)], axis=1))
        self.hidden = g if self.hidden is None else self.hidden + g
        self.hidden_count += m.shape[0]

    def gate_hessian(self) -> np.ndarray | None:
        """``E[u u^T]`` over the calibration, or None when nothing was seen."""
        return None if self.gates is None or not self.count else self.gates / self.count

    def hidden_hessian(self) -> np.ndarray | None:
        if self.hidden is None or not self.hidden_count:
            return None
        return self.hidden / self.hidden_count


@dataclass
class DirectionStats:
    """Everything observed for one LSTM direction (a :class:`~edgelstm.reference.StepObserver`)."""

    weights: LSTMWeights
    observers: dict[str, Observer] = field(default_factory=dict)
    saturated: dict[str, int] = field(default_factory=dict)
    gate_values: int = 0
    steps: int = 0
    tick: Callable[[], None] | None = field(default=None, repr=False, compare=False)
    products: Products | None = field(default=None, repr=False, compare=False)
    """Also observe these matrix products (``xw``, ``h``, ``rh``)."""
    reversed_input: bool = False
    """The direction runs over the reversed sequence (``xw`` is observed in input order)."""
    moments: Moments | None = field(default=None, repr=False, compare=False)
    """Also accumulate the second moments the compensated rounding needs (:mod:`.rounding`)."""

    def __post_init__(self) -> None:
        self.observer("input")  # creation order seeds each observer's sample
        tensors = self.weights.tensors
        self._bias = {
            g: tensors[r.name].astype(np.float64)
            for g, r in GATE_ROLES["bias"].items()
            if r.name in tensors
        }

    def observer(self, name: str) -> Observer:
        if name not in self.observers:
            self.observers[name] = Observer(seed=len(self.observers))
        return self.observers[name]

    def saturation(self) -> dict[str, float]:
        """Fraction of gate values whose accumulator left the kernel's int16 range."""
        n = max(self.gate_values, 1)
        return {g: count / n for g, count in self.saturated.items()}

    # -- StepObserver ----------------------------------------------------------------------
    def gate(self, gate: str, partials: tuple[np.ndarray, ...], value: np.ndarray) -> None:
        if self.weights.spec.layer_norm:
            obs = self.observer(f"gate.{gate}")
            for p in partials:
                obs.update(p)
            self._count_saturated(gate, value)
        else:
            bias = self._bias[gate].astype(value.dtype, copy=False)
            self._count_saturated(gate, *(p + bias for p in partials))

    def cell(self, c: np.ndarray) -> None:
        self.observer("cell").update(c)
        if self.tick is not None:
            self.tick()

    def hidden(self, m: np.ndarray) -> None:
        if self.weights.spec.projection:
            self.observer("hidden").update(m)
            if self.moments is not None:
                self.moments.add_hidden(m)

    def sequence(self, x: np.ndarray, y: np.ndarray) -> None:
        self.observer("input").update(x)
        self.observer("output").update(y)
        batch, steps = y.shape[:2]
        self.gate_values += batch * steps * self.weights.spec.n_cell
        self.steps += batch * steps
        if self.products is not None:
            self._observe_products(x, y)
        if self.moments is not None:
            self.moments.add_gate_inputs(x, y)

    def _observe_products(self, x: np.ndarray, y: np.ndarray) -> None:
        """The products' operands, computed as the lowering computes them (same layout, same
        float64 arithmetic): the ranges are then exactly the lowering's."""
        p = self.products
        assert p is not None
        if self.reversed_input:  # back in input order: a GEMM's rounding is layout-bound
            x = np.ascontiguousarray(x[:, ::-1])
        self.observer("xw").update(x @ p.w.astype(np.float64).T + p.bias)
        prev = np.concatenate([np.zeros_like(y[:, :1]), y[:, :-1]], axis=1)
        self.observer("h").update(prev)
        self.observer("rh").update(prev @ p.r.astype(np.float64).T)

    def _count_saturated(self, gate: str, *values: np.ndarray) -> None:
        worst = np.zeros(values[0].shape, dtype=bool)
        for v in values:
            worst |= np.abs(v) > Q312_LIMIT
        self.saturated[gate] = self.saturated.get(gate, 0) + int(worst.sum())


@dataclass
class Calibration:
    """Observations per layer and direction (``stats[layer][direction]``).

    A :class:`~edgelstm.reference.ModelObserver`: calibration is one
    :func:`~edgelstm.reference.reference_model` pass per batch with this observing.
    """

    model: LSTMModel
    stats: tuple[tuple[DirectionStats, ...], ...]
    sequences: int = 0
    head: Observer = field(default_factory=Observer)
    """The dense head's pre-activation output (logits), when the model has a head."""
    dtype: type[np.floating] = np.float64
    """The reference's arithmetic: :func:`calibrate` uses float32 (ranges need no float64);
    :func:`calibrate_products` float64 (its ranges must match the lowering's products)."""

    def direction(self, layer: int = 0, direction: int = 0) -> DirectionStats:
        return self.stats[layer][direction]

    def head_logits(self, z: np.ndarray) -> None:
        self.head.update(z)

    def observe(self, xs: np.ndarray) -> None:
        """One batch-major [B, T, I] batch through the whole model."""
        x = xs.transpose(1, 0, 2) if self.model.time_major else xs
        reference_model(self.model, x, observer=self, dtype=self.dtype)
        self.sequences += xs.shape[0]


def calibrate(
    model: LSTMModel | LSTMWeights,
    data: np.ndarray | Iterable[np.ndarray],
    *,
    batch_size: int = BATCH_SIZE,
    progress: bool | None = None,
    moments: bool = True,
) -> Calibration:
    """Observe every range the int8 kernel needs on ``data``.

    ``data`` is an [N, T, I] array (each sequence from zero state) or an iterable of
    [B, T, I] / [T, I] arrays (lengths may differ between items). ``progress``: show a rich
    progress bar on a terminal stderr (None = only when the CLI turned bars on and the
    work is long; see :func:`edgelstm._io.progress`).
    ``moments``: also accumulate the second moments of the gates' and the projection's inputs
    (:class:`Moments`, for the compensated weight rounding).
    Raises :class:`~edgelstm.errors.CalibrationError` for unusable data.
    """
    model = LSTMModel.of(model)
    stats = tuple(
        tuple(DirectionStats(d, moments=Moments() if moments else None) for d in layer.directions)
        for layer in model.layers
    )
    calib = Calibration(model, stats, dtype=np.float32)
    batches: Iterator[np.ndarray] = as_batches(data, model.n_input, batch_size)
    total = None
    if isinstance(data, np.ndarray) and data.ndim == 3:
        total = data.shape[1] * -(-data.shape[0] // batch_size) * _n_directions(model)
    if progress is None:
        work = (total or 0) * max(layer.forward.spec.n_cell for layer in model.layers) * batch_size
        progress = None if work > 1e6 else False  # under ~0.3 s: no bar
    with progress_bar(total, "calibrating", progress) as advance:
        for layer_stats in stats:
            for direction in layer_stats:
                direction.tick = advance
        for xs in batches:
            calib.observe(xs)
    for layer_stats in stats:
        for direction in layer_stats:
            direction.tick = None
    return calib


def calibrate_products(
    model: LSTMModel, xs: np.ndarray, products: Sequence[Sequence[Products]]
) -> Calibration:
    """One reference pass over [N, T, I] ``xs`` exactly as given (float64, one batch),
    observing everything :func:`calibrate` does plus ``products[layer][direction]``."""
    stats = tuple(
        tuple(
            DirectionStats(v.weights, products=products[v.k][v.d], reversed_input=v.runs_reversed)
            for v in visit.directions
        )
        for visit in model.walk_layers()
    )
    calib = Calibration(model, stats)
    calib.observe(np.asarray(xs, dtype=np.float64))
    return calib


def _n_directions(model: LSTMModel) -> int:
    return sum(len(layer.directions) for layer in model.layers)

"""Scales of the all-integer (int16 gate math) TFLite Micro lowering, from one reference pass.

The integer cell (:mod:`.icell`) holds every activation as int16 with zero point 0 (TFLM's
int16 ADD, MUL, LOGISTIC, TANH and 16x8 FULLY_CONNECTED require zero point 0) and a
power-of-two scale that covers the calibrated magnitude with :data:`MARGIN` headroom, like
the cell state of TFLite's integer LSTM kernel. Only the graph input and outputs are int8.

The magnitudes come from :func:`edgelstm.reference.reference_model` itself through its
observer hook (no second copy of the LSTM math): the gate partial sums, the cell state (per
unit: :attr:`IntCellQuant.k`), o * act(c), and the matrix products laid out as this lowering
stacks them. The same pass accumulates the second moments of the gates' input [x; h; 1]
(and the projection's), from which the int8 per-channel weight codes are chosen
(:class:`ChannelWeights`: compensated rounding, as the fused int8 file's per-tensor codes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.quant.qparams import asymmetric_int8
from edgelstm.quant.rounding import compensated_channels
from edgelstm.quant.tensor import QuantTensor, quantize_symmetric
from edgelstm.reference import LAYER_NORM_EPSILON, reference_model
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.quant_desc import quantization
from edgelstm.targets.tflite.unfused.params import DirectionParams, direction_params
from edgelstm.targets.tflite.unfused.ranges import calibration_data

INT16_MAX = 32767
MARGIN = 1.5
"""Headroom over the calibrated magnitude before rounding the scale up to a power of two
(so 1.5x-3x): data a little beyond the calibration set does not saturate, at the cost of at
most 1.6 of int16's 15 bits."""
JOINT = "all"
"""Key of the one layer norm over every gate ([B, G, N]) of a cell without peepholes."""
UNIT_MARGIN = 4.0
"""Headroom of a unit's own cell scale (:attr:`IntCellQuant.k`): i*g, added at that scale,
is at most twice the cell's peak (|i g| <= |c'| + |f c|), and one unit's calibrated peak is a
small sample: ddddocr's BiLSTM calibrated on 4 text lines had units past 2x their peak on
held-out lines (int16x8 max error 0.44 at 2x, 0.147 at 4x; the VAD: 0.042 -> 0.048)."""
MAX_UNIT_SHIFT = 8
"""Per-unit cell scales span at most 2^8 (the loop's c / K stays within int16's reach)."""
TANH_INPUT = 2.0**-12
"""TANH's input scale for c (range +-8: tanh(8) is 1 in Q0.15, so a larger c loses nothing)."""
GRAM_CHUNK = 32 << 20
"""Bytes of the stacked gate inputs formed at once for the second moments."""
Q15 = 2.0**-15
"""Scale of LOGISTIC/TANH outputs (TFLM requires 2^-15) and of o * act(c) in [-1, 1]."""


def pot_scale(absmax: float, margin: float = MARGIN) -> float:
    """The power-of-two int16 scale covering ``absmax * margin`` (2^-15 for tiny ranges)."""
    need = max(float(absmax) * margin, 1e-9) / INT16_MAX
    return max(2.0 ** math.ceil(math.log2(need)), 2.0**-24)


def q16(scale: float) -> Quantization:
    """Symmetric int16 quantization at ``scale``."""
    return Quantization((float(scale),), (0,))


@dataclass(frozen=True)
class LayerNormQuant:
    """int16 scales of one gate's integer layer norm (see :meth:`.icell.IntCell.layer_norm`)."""

    d: float
    """z - mean(z)."""
    var: float
    """mean((z - mean)^2) (and the squared differences)."""
    rs: float
    """rsqrt(var) (covers 1 / sqrt(one var code): var is clamped to >= 1 code)."""
    n1: float
    """Stage 1: d * rsqrt(var), |n1| <= 1.25 sqrt(N) (the variance's rounding)."""
    sq2: float
    """n1^2."""
    var2: float
    """mean(n1^2) <= 1.5."""
    rs2: float
    """rsqrt(max(var2, 1/64)) <= 8."""
    n: float
    """Normalised: |n| <= sqrt(N - 1)."""
    nc: float
    """n * coefficient."""
    out: float
    """n * coefficient + bias: the gate pre-activation."""


@dataclass(frozen=True)
class ChannelWeights:
    """One direction's int8 per-channel weight codes, rounded on the calibration's second
    moments (:func:`edgelstm.quant.rounding.compensated_channels`): nearest rounding of
    per-channel weights is most of this lowering's error on trained cells (Silero VAD LSTM,
    weights alone: max error 0.128 nearest vs 0.040 compensated, on outputs in [-1, 1])."""

    w: QuantTensor
    r: QuantTensor
    bias: np.ndarray
    """The gate biases that absorbed the rounding's mean error (unchanged with layer norm)."""
    proj: QuantTensor | None = None
    proj_bias: np.ndarray | None = None
    lo: dict[str, QuantTensor] = field(default_factory=dict)
    """Second planes (``Int8Options.weight_planes=2``): "w", "r", "proj" -> the per-channel
    int8 codes of what the first plane's codes miss (:func:`residual_plane`)."""


def residual_plane(first: QuantTensor, values: np.ndarray) -> QuantTensor:
    """The second int8 plane of ``values`` [rows, cols]: per output channel, to nearest, what
    ``first`` (per-channel codes) leaves out; the two planes hold ~15-bit weights."""
    scales = np.asarray(first.params.scales, np.float64)[:, None]  # type: ignore[union-attr]
    rest = np.asarray(values, np.float64) - first.data.astype(np.float64) * scales
    return quantize_symmetric(rest, "int8", axis=0)


@dataclass(frozen=True)
class IntCellQuant:
    """int16 scales of one direction's integer cell."""

    x: float
    """The layer input x_t."""
    xw: float
    """x W^T (+ b without layer norm)."""
    h: float
    """h (the recurrent FC's input and the direction's output)."""
    rh: float
    """R h."""
    z: float
    """x W^T (+ b) + R h, every gate."""
    c: float
    """The cell state (a power of two, as in TFLite's kernel)."""
    pc: dict[str, float] = field(default_factory=dict)
    """Peephole product c * p_g per gate."""
    zp: dict[str, float] = field(default_factory=dict)
    """The gate's sum after its peephole term."""
    cg: float = 0.0
    """CIFG: c - g."""
    ln: dict[str, LayerNormQuant] = field(default_factory=dict)
    weights: ChannelWeights | None = None
    """The weight codes (None: per-channel nearest, e.g. nothing was calibrated)."""
    k: np.ndarray | None = None
    """Per-unit powers of two K >= 1: the loop carries c / K at scale :attr:`c` (each unit at
    its own resolution), None: c itself. On the Silero VAD LSTM a few units reach |c| = 52
    while the median unit stays below 1.3: one scale for all (2^-8) rounds f * c so coarsely
    that the rounding, integrated over the units' long memory (f ~ 1), was the int16x8 file's
    whole error (max 0.35 -> 0.037 on outputs in [-1, 1], simulated)."""
    c_real: float = 0.0
    """With :attr:`k`: the scale of c itself (TANH's input at most :data:`TANH_INPUT`)."""


@dataclass(frozen=True)
class IntQuant:
    """Every scale of the integer lowering: per layer input/xw, per direction the cell."""

    input8: Quantization
    """The int8 graph input (asymmetric)."""
    layer_in: tuple[float, ...]
    """int16 scale of each layer's input sequence."""
    cells: dict[tuple[int, int], IntCellQuant]
    logits: float = 1.0
    """The dense head's int16 logits."""
    input16: float | None = None
    """int16 activations end to end (``quantize="int16x8"``): the int16 scale of the graph
    input (then ``layer_in[0]``); None = the int8 graph input :attr:`input8`."""


class _Stats:
    """Magnitudes of one direction (a :class:`edgelstm.reference.StepObserver`)."""

    def __init__(self, p: DirectionParams) -> None:
        self.p = p
        self.peak: dict[str, float] = {}
        self.lo, self.hi = np.inf, -np.inf
        self.cpeak: np.ndarray | float = 0.0
        """Per-unit max |c|."""
        self.gram: np.ndarray | None = None
        """Sum of u u^T, u = [x_t; h_(t-1); 1]: the gates' input (compensated rounding)."""
        self.count = 0
        self.mgram: np.ndarray | None = None
        """Sum of [m; 1][m; 1]^T over the projection's input m."""
        self.mcount = 0

    def see(self, name: str, v: np.ndarray) -> None:
        m = float(np.max(np.abs(v))) if np.size(v) else 0.0
        self.peak[name] = max(self.peak.get(name, 0.0), m)

    def gate(self, gate: str, partials: tuple[np.ndarray, ...], value: np.ndarray) -> None:
        p = self.p
        k = p.gates.index(gate)
        n = p.spec.n_cell
        bias = p.bias[k * n : (k + 1) * n] if p.bias_in_gemm else 0.0
        self.see("z", partials[1] + bias)
        if len(partials) > 2:
            self.see(f"pc.{gate}", partials[2] - partials[1])
            self.see(f"zp.{gate}", partials[2] + bias)
        if p.spec.layer_norm:
            z = partials[-1]
            mean = z.mean(-1, keepdims=True)
            d = z - mean
            var = (d * d).mean(-1, keepdims=True)
            rs = 1.0 / np.sqrt(var + LAYER_NORM_EPSILON)
            assert p.ln is not None
            self.see(f"ln.d.{gate}", d)
            self.see(f"ln.var.{gate}", d * d)
            self.see(f"ln.rs.{gate}", rs)
            self.see(f"ln.n.{gate}", d * rs)
            self.see(f"ln.nc.{gate}", d * rs * p.ln[k])
            self.see(f"ln.out.{gate}", value)

    def cell(self, c: np.ndarray) -> None:
        self.see("c", c)
        self.cpeak = np.maximum(self.cpeak, np.max(np.abs(c), axis=0))

    def hidden(self, m: np.ndarray) -> None:
        p = self.p
        if p.proj is not None:
            y = m @ p.proj.astype(np.float64).T
            self.see("proj", y + (p.proj_bias if p.proj_bias is not None else 0.0))
            u = np.concatenate([m, np.ones_like(m[:, :1])], axis=1).astype(np.float64)
            self.mgram = u.T @ u + (0.0 if self.mgram is None else self.mgram)
            self.mcount += len(u)

    def sequence(self, x: np.ndarray, y: np.ndarray) -> None:
        p = self.p
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        bias = p.bias if p.bias_in_gemm else 0.0
        self.see("xw", x @ p.w.astype(np.float64).T + bias)
        prev = np.concatenate([np.zeros_like(y[:, :1]), y[:, :-1]], axis=1)
        self.see("rh", prev @ p.r.astype(np.float64).T)
        width = x.shape[-1] + prev.shape[-1] + 1
        step = max(1, (GRAM_CHUNK // (8 * width * max(len(x), 1))))
        for t in range(0, x.shape[1], step):  # u in chunks of time: bounded memory
            xt, ht = x[:, t : t + step], prev[:, t : t + step]
            u = np.concatenate([xt, ht, np.ones_like(xt[..., :1])], axis=-1)
            u = u.reshape(-1, width).astype(np.float64)
            self.gram = u.T @ u + (0.0 if self.gram is None else self.gram)
            self.count += len(u)

    def channel_weights(self, planes: int = 1) -> ChannelWeights | None:
        """The compensated int8 codes of this direction's W, R (and projection), with a
        second plane each when ``planes`` is 2."""
        p = self.p
        if planes > 1:  # nearest first planes (the smallest residuals), biases unchanged
            w, r = (quantize_symmetric(m, "int8", axis=0) for m in (p.w, p.r))
            lo = {"w": residual_plane(w, p.w), "r": residual_plane(r, p.r)}
            proj = None
            if p.proj is not None:
                proj = quantize_symmetric(p.proj, "int8", axis=0)
                lo["proj"] = residual_plane(proj, p.proj)
            return ChannelWeights(w, r, p.bias, proj, p.proj_bias, lo)
        if self.gram is None or not self.count:
            return None
        return self._compensated(self.gram / self.count)

    def _compensated(self, hess: np.ndarray) -> ChannelWeights:
        p = self.p
        bias = p.bias if p.bias_in_gemm else None
        if bias is None:  # layer norm: the bias comes after the normalisation
            hess = hess[:-1, :-1]
        (w, r), fitted = compensated_channels([p.w, p.r], hess, bias)
        proj = proj_bias = None
        if p.proj is not None and self.mgram is not None and self.mcount:
            mh = self.mgram / self.mcount
            if p.proj_bias is None:
                mh = mh[:-1, :-1]
            (proj,), proj_bias = compensated_channels([p.proj], mh, p.proj_bias)
        return ChannelWeights(w, r, p.bias if fitted is None else fitted, proj, proj_bias)


class _ModelStats:
    def __init__(self, model: LSTMModel) -> None:
        self.dirs = {(v.k, v.d): _Stats(direction_params(v.weights)) for v in model.walk()}
        self.logits = 0.0

    def direction(self, layer: int, direction: int) -> _Stats:
        return self.dirs[layer, direction]

    def head_logits(self, z: np.ndarray) -> None:
        self.logits = max(self.logits, float(np.max(np.abs(z))))


def unit_scales(s: _Stats, c: float) -> tuple[float, np.ndarray | None]:
    """(scale of c / K, K) for per-unit cell scales (see :attr:`IntCellQuant.k`), or
    (``c``, None) when one scale serves every unit (or nothing was observed). CIFG's
    c' = g + f (c - g) adds g itself, which no unit's peak bounds: one scale there."""
    spec = s.p.spec
    peaks = np.asarray(s.cpeak, np.float64)
    if spec.cifg or peaks.ndim != 1 or not peaks.size:
        return c, None
    bound = peaks * UNIT_MARGIN
    if spec.cell_clip > 0:
        bound = np.minimum(bound, spec.cell_clip)
    own = np.array([pot_scale(b, 1.0) for b in bound])
    base = max(float(own.min()), c * 2.0**-MAX_UNIT_SHIFT)
    k = np.clip(own / base, 1.0, 2.0**MAX_UNIT_SHIFT)
    if np.all(k == 1.0) or base >= c:
        return c, None
    return base, k


def _cell_quant(
    s: _Stats, x: float, h: float, per_unit: bool = True, planes: int = 1
) -> IntCellQuant:
    spec, pk = s.p.spec, s.peak
    c_peak = spec.cell_clip if spec.cell_clip > 0 else pk.get("c", 0.0)
    c = pot_scale(c_peak, 1.0 if spec.cell_clip > 0 else MARGIN)
    c_unit, k = unit_scales(s, c) if per_unit else (c, None)
    gates = [g for g in s.p.gates if f"pc.{g}" in pk]
    ln = {}
    root = math.sqrt(spec.n_cell)
    groups = {g: (g,) for g in s.p.gates}
    if not spec.peephole:  # normalised together: the widest gate's scales
        groups = {JOINT: s.p.gates}

    def peak(name: str, gates: tuple[str, ...]) -> float:
        return max(pk[f"ln.{name}.{g}"] for g in gates)

    for key, members in groups.items() if spec.layer_norm else ():
        var = pot_scale(peak("var", members))
        ln[key] = LayerNormQuant(
            d=pot_scale(peak("d", members)),
            var=var,
            rs=pot_scale(var**-0.5, 1.0),
            n1=pot_scale(1.25 * root, 1.0),
            sq2=pot_scale(1.6 * spec.n_cell, 1.0),
            var2=pot_scale(1.6, 1.0),
            rs2=pot_scale(8.0, 1.0),
            n=pot_scale(root, 1.0),
            nc=pot_scale(peak("nc", members)),
            out=pot_scale(peak("out", members)),
        )
    return IntCellQuant(
        x=x,
        xw=pot_scale(pk.get("xw", 0.0)),
        h=h,
        rh=pot_scale(pk.get("rh", 0.0)),
        z=pot_scale(pk.get("z", 0.0)),
        c=c_unit,
        pc={g: pot_scale(pk[f"pc.{g}"]) for g in gates},
        zp={g: pot_scale(pk[f"zp.{g}"]) for g in gates},
        cg=pot_scale(c_peak + 1.0),
        ln=ln,
        weights=s.channel_weights(planes),
        k=k,
        c_real=c,
    )


def int_params(model: LSTMModel, options: CompileOptions, input16: bool = False) -> IntQuant:
    """Every scale the integer lowering needs, from the calibration data. ``input16``: the
    graph input is int16 at the power-of-two scale covering max|x| (with :data:`MARGIN`)
    instead of int8: inputs whose int8 grid alone costs output accuracy (the VAD's)."""
    xs = calibration_data(model, options)
    per_unit = not (model.return_state or model.stateful)  # the states leave the graph as c
    stats = _ModelStats(model)
    reference_model(model, np.swapaxes(xs, 0, 1) if model.time_major else xs, observer=stats)
    first = stats.dirs[0, 0]
    input8 = quantization(asymmetric_int8(first.lo, first.hi))
    layer_in, cells = [], {}
    in_scale = float(input8.scale[0])
    x16 = pot_scale(max(abs(first.lo), abs(first.hi))) if input16 else None
    in_scale = x16 if x16 is not None else in_scale
    for visit in model.walk_layers():
        dirs = [stats.dirs[visit.k, v.d] for v in visit.directions]
        layer_in.append(in_scale)
        # every direction of a layer shares h's scale: CONCATENATION does not rescale int16
        if all(s.p.proj is not None for s in dirs):
            h = pot_scale(max(s.peak.get("proj", 0.0) for s in dirs))
            clip = max(s.p.spec.proj_clip for s in dirs)
            h = min(h, pot_scale(clip, 1.0)) if clip > 0 else h
        else:  # (mixed projection across directions: the widest)
            proj = [pot_scale(s.peak.get("proj", 0.0)) for s in dirs if s.p.proj is not None]
            h = max([Q15, *proj])
        for v, s in zip(visit.directions, dirs, strict=True):
            cells[visit.k, v.d] = _cell_quant(s, in_scale, h, per_unit, options.int8.weight_planes)
        in_scale = h
    return IntQuant(input8, tuple(layer_in), cells, pot_scale(stats.logits), x16)

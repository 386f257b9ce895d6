"""Replay TFLite's full-integer (8x8_16) LSTM kernel on an :class:`Int8Plan`, step by step.

The kernel's arithmetic (``lstm_eval.cc`` integer path, Prepare's effective scales) is
reproduced with :mod:`.fixedpoint`, so every internal tensor — the int16 gate accumulators,
the Q0.15 gate activations, the int16 cell, the int8 hidden and output — can be read and
compared with the float64 reference (:mod:`edgelstm.measure.explain`).

``ideal`` names stages to run in exact real arithmetic instead (an ablation: how much output
error goes away when that stage neither rounds nor saturates):

* ``"input"`` — the input's int8 quantization;
* ``"gates"`` — the int16 gate accumulators (Q3.12 without layer norm: saturating at ±8),
  their rescaling and the Q0.15 sigmoid/tanh;
* ``"cell"`` — the int16 cell state (scale 2^k) and tanh(c);
* ``"state"`` — the int8 hidden/output (= the recurrent state).

Values are carried as float64 arrays of codes (integers in exact stages).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from edgelstm.ir.roles import GATES, name_of
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.fixedpoint import (
    lookup,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    sigmoid_table,
    tanh_table,
)
from edgelstm.quant.layer_norm_int import apply_layer_norm
from edgelstm.quant.plan import Int8Plan

STAGES = ("input", "gates", "cell", "state")
HIDDEN_ZP_SIGN = {False: 1, True: -1}
"""Sign of the hidden zero point in the hidden CwiseMul, without / with projection, and with
projection the projection's effective bias adds ``+zp * rowsum(P)``: measured code for code
against LiteRT (asymmetric output without projection; asymmetric hidden with projection).
With projection an asymmetric hidden is thus stored mirrored (code = real/s - zp): the
range it covers is not the calibrated one, and the legacy converter's files saturate."""
INITIAL_STATE_CODE = None
"""None: h starts at the output zero point (real 0: the file's reset ADD writes the real sum
of two zero-initialised variables, measured code for code against LiteRT)."""
Q312 = 2.0**-12
I16 = (-32768, 32767)
I8 = (-128, 127)


@dataclass(frozen=True)
class Rescale:
    """One effective scale: the kernel's (multiplier, shift) and the real value."""

    real: float
    multiplier: int
    shift: int

    @classmethod
    def of(cls, real: np.float32) -> Rescale:
        m, s = quantize_multiplier(float(real))
        return cls(float(real), m, s)

    def apply(self, acc: np.ndarray, exact: bool) -> np.ndarray:
        if exact:
            return multiply_by_quantized_multiplier(np.rint(acc).astype(np.int64), *self.pair)
        return acc * self.real

    @property
    def pair(self) -> tuple[int, int]:
        return self.multiplier, self.shift


@dataclass
class Trace:
    """Every internal tensor of one direction's run, [B, T, N] float64 codes.

    ``gates[g]``: the gate's int16 accumulator as the activation reads it (Q3.12);
    ``acts[g]``: the activation's Q0.15 output; ``cell``: int16 codes at 2^k;
    ``hidden``: int8 o·tanh(c); ``output``: int8 output (= h). ``clamped[name]`` counts the
    values a saturating step clamped (per tensor).
    """

    gates: dict[str, np.ndarray] = field(default_factory=dict)
    acts: dict[str, np.ndarray] = field(default_factory=dict)
    cell: np.ndarray | None = None
    hidden: np.ndarray | None = None
    output: np.ndarray | None = None
    clamped: dict[str, int] = field(default_factory=dict)


class KernelSim:
    """The kernel's view of one direction: integer tensors and Prepare-time constants."""

    def __init__(self, plan: Int8Plan, float_weights: LSTMWeights | None = None) -> None:
        """``float_weights``: use these real weights (and gate biases) on the plan's grids
        instead of the plan's codes (the ablation of weight rounding)."""
        self.plan = plan
        spec = self.spec = plan.spec
        t = plan.tensors
        self.gates = ("forget", "cell", "output") if spec.cifg else GATES
        self.k = plan.cell_scale_exponent
        s_in, s_out = np.float32(plan.input.scale), np.float32(plan.output.scale)
        zp_in, zp_out = plan.input.zero_point, plan.output.zero_point
        inter = {
            g: np.float32(Q312 if not spec.layer_norm else plan.intermediate(f"{g}_gate").scale)
            for g in GATES
        }
        self.w, self.r, self.in_scale, self.rec_scale = {}, {}, {}, {}
        self.in_bias, self.rec_bias, self.peep, self.peep_scale = {}, {}, {}, {}
        self.ln, self.ln_scale, self.ln_bias, self.ln_guard = {}, {}, {}, {}
        for g in self.gates:
            w = t[name_of("weight", g)]
            r = t[name_of("recurrent", g)]
            self.w[g] = w.data.astype(np.float64)
            self.r[g] = r.data.astype(np.float64)
            if float_weights is not None:
                real = float_weights.tensors
                self.w[g] = real[name_of("weight", g)] / np.float64(w.params.scale)
                self.r[g] = real[name_of("recurrent", g)] / np.float64(r.params.scale)
            self.in_scale[g] = Rescale.of(np.float32(w.params.scale) * s_in / inter[g])
            self.rec_scale[g] = Rescale.of(np.float32(r.params.scale) * s_out / inter[g])
            bias = t[name_of("bias", g)].data.astype(np.float64)
            if float_weights is not None and not spec.layer_norm:
                bias = (
                    float_weights.tensors[name_of("bias", g)] / t[name_of("bias", g)].params.scale
                )
            fold = np.zeros_like(bias) if spec.layer_norm else bias
            self.in_bias[g] = fold - zp_in * self.w[g].sum(axis=1)
            self.rec_bias[g] = -zp_out * self.r[g].sum(axis=1)
            if spec.peephole and g != "cell":
                p = t[name_of("peephole", g)]
                self.peep[g] = p.data.astype(np.float64)
                self.peep_scale[g] = Rescale.of(
                    np.float32(2.0**self.k) * np.float32(p.params.scale) / inter[g]
                )
            if spec.layer_norm:
                c = t[name_of("ln", g)]
                self.ln[g] = c.data.astype(np.int64)
                self.ln_scale[g] = quantize_multiplier(float(np.float32(c.params.scale)))
                self.ln_bias[g] = bias.astype(np.int64)
                self.ln_guard[g] = max(1, int(np.float32(10000) * np.float32(c.params.scale)))
        hidden = plan.intermediate("hidden") or plan.output
        s_hidden = np.float32(hidden.scale)
        self.hidden_zp = hidden.zero_point
        self.s_hidden = float(s_hidden)
        two15 = np.float32(2.0**-15)
        self.hidden_scale = Rescale.of(two15 / s_hidden * two15)
        if spec.projection:
            p = t["projection_weights"]
            self.proj = p.data.astype(np.float64)
            if float_weights is not None:
                self.proj = float_weights.tensors["projection_weights"] / np.float64(p.params.scale)
            self.proj_scale = Rescale.of(np.float32(p.params.scale) * s_hidden / s_out)
            pb = t["projection_bias"].data if "projection_bias" in t else 0
            self.proj_bias = pb + self.hidden_zp * self.proj.sum(axis=1)  # see HIDDEN_ZP_SIGN
        self.zp_out = zp_out
        self.cell_clip = plan.quantized_cell_clip
        self.proj_clip = plan.quantized_proj_clip

    # -- one step ---------------------------------------------------------------------------
    def _gate(self, g, x, h, c, ideal, tr, t):
        exact = "gates" not in ideal
        acc = self._sat(
            self.in_scale[g].apply(self.in_bias[g] + x @ self.w[g].T, exact), exact, tr, g
        )
        rec = self.rec_scale[g].apply(self.rec_bias[g] + h @ self.r[g].T, exact)
        acc = self._sat(acc + rec, exact, tr, g)
        if g in self.peep:
            prod = self.peep[g] * (np.rint(c) if exact else c)
            acc = self._sat(acc + self.peep_scale[g].apply(prod, exact), exact, tr, g)
        if self.spec.layer_norm:
            if exact:
                acc = apply_layer_norm(
                    acc.astype(np.int64),
                    self.ln[g],
                    self.ln_bias[g],
                    self.ln_scale[g],
                    self.ln_guard[g],
                ).astype(np.float64)
            else:
                acc = self._ideal_ln(g, acc)
        tr.gates[g][:, t] = acc
        return acc

    def _ideal_ln(self, g: str, acc: np.ndarray) -> np.ndarray:
        """Layer norm in real arithmetic, result in Q3.12 codes."""
        z = (acc - acc.mean(axis=-1, keepdims=True)) / np.sqrt(
            acc.var(axis=-1, keepdims=True) + 1e-30
        )
        coef = self.plan.tensors[name_of("ln", g)]
        bias = self.plan.tensors[name_of("bias", g)]
        real = z * coef.dequantize() + bias.dequantize()
        return real / Q312

    def _sat(self, v, exact, tr, name, lo_hi=I16):
        if not exact:
            return v
        lo, hi = lo_hi
        clipped = np.clip(v, lo, hi)
        tr.clamped[name] = tr.clamped.get(name, 0) + int(np.count_nonzero(clipped != v))
        return clipped

    @staticmethod
    def _sigmoid(v: np.ndarray, exact: bool) -> np.ndarray:
        if exact:
            return lookup(sigmoid_table(), v).astype(np.float64)
        return 32768.0 / (1.0 + np.exp(-v * Q312))

    @staticmethod
    def _tanh(v: np.ndarray, integer_bits: int, exact: bool) -> np.ndarray:
        if exact:
            return lookup(tanh_table(integer_bits), np.rint(v)).astype(np.float64)
        return 32768.0 * np.tanh(v * 2.0 ** (integer_bits - 15))

    def step(self, x, h, c, ideal, tr, t):
        """One time step on [B, I] input codes; returns (h, c) codes."""
        exact_g, exact_c, exact_s = (s not in ideal for s in ("gates", "cell", "state"))
        f = self._sigmoid(self._gate("forget", x, h, c, ideal, tr, t), exact_g)
        g = self._tanh(self._gate("cell", x, h, c, ideal, tr, t), 3, exact_g)
        if self.spec.cifg:
            i = 32767.0 - f if exact_g else 32768.0 - f
        else:
            i = self._sigmoid(self._gate("input", x, h, c, ideal, tr, t), exact_g)
        for name, v in (("forget", f), ("cell", g), ("input", i)):
            tr.acts[name][:, t] = v
        if exact_c:
            fc = rounding_divide_by_pot(np.rint(f * np.rint(c)).astype(np.int64), 15)
            ig = rounding_divide_by_pot(np.rint(i * g).astype(np.int64), 30 + self.k)
            c = self._sat((fc + ig).astype(np.float64), True, tr, "cell_state")
            if self.cell_clip > 0:
                c = self._sat(c, True, tr, "cell_clip", (-self.cell_clip, self.cell_clip))
        else:
            c = f * c / 32768.0 + i * g * 2.0 ** (-30 - self.k)
            if self.cell_clip > 0:
                lim = self.spec.cell_clip / 2.0**self.k
                c = np.clip(c, -lim, lim)
        tr.cell[:, t] = c
        o = self._sigmoid(self._gate("output", x, h, c, ideal, tr, t), exact_g)
        tr.acts["output"][:, t] = o
        tanh_c = self._tanh(c, 15 + self.k, exact_c)
        if exact_s:
            sign = HIDDEN_ZP_SIGN[self.spec.projection]
            m = self.hidden_scale.apply(o * tanh_c, True) + sign * self.hidden_zp
            m = self._sat(m, True, tr, "hidden", I8)
        else:
            m = o * tanh_c * 2.0**-30 / self.s_hidden + HIDDEN_ZP_SIGN[self.spec.projection] * (
                self.hidden_zp
            )
        tr.hidden[:, t] = m
        out = m
        if self.spec.projection:
            out = self.proj_scale.apply(self.proj_bias + m @ self.proj.T, exact_s) + self.zp_out
            out = self._sat(out, exact_s, tr, "output", I8)
            if self.proj_clip > 0:
                lim = self.proj_clip if exact_s else self.spec.proj_clip / self.plan.output.scale
                out = np.clip(out, -lim, lim)
        tr.output[:, t] = out
        return out, c

    def hidden_real(self, codes: np.ndarray) -> np.ndarray:
        """Real values of hidden codes (mirrored with projection, see HIDDEN_ZP_SIGN)."""
        sign = HIDDEN_ZP_SIGN[self.spec.projection]
        return (np.asarray(codes, np.float64) - sign * self.hidden_zp) * self.s_hidden

    def run(self, x_codes: np.ndarray, ideal: Collection[str] = ()) -> Trace:
        """Run [B, T, I] input codes (batch-major, processing order) from zero state."""
        ideal = frozenset(ideal)
        b, steps, _ = x_codes.shape
        n, p = self.spec.n_cell, self.spec.n_output
        tr = Trace(
            gates={g: np.zeros((b, steps, n)) for g in self.gates},
            acts={g: np.zeros((b, steps, n)) for g in GATES},
            cell=np.zeros((b, steps, n)),
            hidden=np.zeros((b, steps, n)),
            output=np.zeros((b, steps, p)),
        )
        start = self.zp_out if INITIAL_STATE_CODE is None else INITIAL_STATE_CODE
        h = np.full((b, p), float(start))
        c = np.zeros((b, n))
        xs = np.asarray(x_codes, dtype=np.float64)
        for t in range(steps):
            h, c = self.step(xs[:, t], h, c, ideal, tr, t)
        return tr

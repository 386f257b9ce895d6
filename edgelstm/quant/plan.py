"""The int8 (8x8_16) quantization plan of one LSTM direction: every tensor the kernel reads.

Rules (TFLite ``PopulateQuantizedLstmParams8x8_16`` / ``lstm_eval.cc``, FIELD_NOTES):

* input int8 asymmetric; output = output_state int8 (the recurrent matmul reads the state
  with the output's params); without projection intermediate 4 (hidden o·tanh(c)) is written
  straight into the state, so it must carry the output's params exactly.
* weights 1-8 and the projection int8 symmetric per tensor; peepholes and layer-norm
  coefficients int16 symmetric.
* gate biases int32: without layer norm they are folded into the input matmul accumulator,
  scale s_input·s_input_to_gate; with layer norm they are added after the normalisation,
  scale s_lncoef·2^-10. Projection bias scale s_projection·s_hidden.
* cell state int16, zero point 0, scale 2^k, k in [-15, -9] (ApplyTanh(15 + k)).
* intermediates 0-3: the int16 pre-normalisation gate accumulators (layer norm only; without
  it the kernel uses fixed Q3.12 and they are FLOAT32 placeholders, ``None`` here).
* intermediate 4 with projection: zero point 0. The kernel subtracts the hidden zero point
  where it should add it (b/246629213) and adds it back in the projection's bias, so an
  asymmetric hidden is stored mirrored and the calibrated range saturates (replayed code for
  code in :mod:`.kernel_sim`).
* proj_clip is compared with raw int8 output codes (``CwiseClipping``), so with proj_clip > 0
  the output is symmetric and its scale puts the clip on a code exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

from edgelstm.ir.roles import (
    GATES,
    INTERMEDIATE_BY_NAME,
    INTERMEDIATES,
    name_of,
    present_weight_roles,
)
from edgelstm.ir.spec import LSTMSpec
from edgelstm.quant.calibrate import DirectionStats, Moments
from edgelstm.quant.estimators import ESTIMATORS, Observer, estimate
from edgelstm.quant.qparams import (
    QuantParams,
    asymmetric_int8,
    cell_scale_exponent,
    f32,
    kernel_clip_int8,
    kernel_clip_int16,
    symmetric,
)
from edgelstm.quant.rounding import compensated_rounding
from edgelstm.quant.support import check_spec
from edgelstm.quant.tensor import QuantTensor, quantize_bias, quantize_symmetric

CELL_HEADROOM = 1.25
"""Cell and LN accumulators are int16: headroom over the calibrated extreme costs < 1 bit of
16 and keeps held-out data from saturating a recurrent state."""
STATE_HEADROOM = 1.25
"""Output (= recurrent state) range over the calibrated one. Held-out data leaves the
calibrated state range (a saturated state then feeds every later step): on the trained corpus
(tools/bench_int8_trained.py) 1.25 cuts the held-out max error 0.317 -> 0.108 (Japanese
Vowels) and 1.23 -> 0.29 (char LM) for RMSE within +-10% in real units."""
Q312 = 2.0**-12
INT32_MAX = 2**31 - 1
HiddenMode = Literal["zero", "asymmetric"]
Rounding = Literal["compensated", "nearest"]
ROUNDINGS: tuple[str, ...] = ("compensated", "nearest")
"""Weight rounding: ``compensated`` (:mod:`.rounding`, on the calibration's second moments;
the default) or ``nearest``. Measured (``tools/bench_int8_trained.py``, held-out RMSE in
output LSB, nearest -> compensated): Silero VAD LSTM 5.76 -> 3.99, Japanese Vowels 0.49 ->
0.41 and 0.59 -> 0.49 (CIFG + LN), char LM 0.83 -> 0.69; random weights +-1%."""
QUANTITIES = ("input", "output", "hidden")
EstimatorChoice = str | Mapping[str, str] | None
DEFAULT_ESTIMATORS: Mapping[str, str] = MappingProxyType(
    {"input": "percentile", "output": "minmax", "hidden": "minmax"}
)
"""Measured (``tools/bench_int8_vs_legacy.py --sections estimators``: 3 input kinds x plain /
projection / layer-norm 64-unit LSTMs x 3 seeds, held-out error). Input ``percentile`` vs
``minmax``: RMSE -5..-9% on Gaussian inputs, -45..-51% on Student-t(3), -13..0% on the
Japanese Vowels data; each clipped outlier saturates one step, so the max error can grow
(up to 2.8x on Student-t). State (output/hidden) ``percentile`` or ``mse`` vs ``minmax``:
RMSE only -0..-6%, but max error up to 3.7x, because a saturated state feeds every later step.
``mse`` on the input is the cautious middle (-2..-9% RMSE, max error about unchanged)."""


@dataclass(frozen=True)
class Int8Plan:
    """Everything the TFLite builder needs for one full-integer fused LSTM op.

    ``tensors`` maps each present weight role to its :class:`QuantTensor`; ``input``,
    ``output`` (also the output_state variable's params), ``cell_state`` describe the
    activations; ``intermediates`` are the op's 5 intermediate tensors in the order of
    :data:`~edgelstm.ir.roles.INTERMEDIATES` (None = a FLOAT32 [0]-shaped placeholder); read
    one by name with :meth:`intermediate`. ``ranges`` are the estimated real ranges (provenance).
    """

    spec: LSTMSpec
    tensors: Mapping[str, QuantTensor]
    input: QuantParams
    output: QuantParams
    cell_state: QuantParams
    intermediates: tuple[QuantParams | None, ...]
    estimator: str = ""
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    saturation: Mapping[str, float] = field(default_factory=dict)

    @property
    def output_state(self) -> QuantParams:
        return self.output

    def intermediate(self, name: str) -> QuantParams | None:
        """The params of intermediate ``name`` (``'input_gate'`` .. ``'hidden'``)."""
        return self.intermediates[INTERMEDIATE_BY_NAME[name].index]

    @property
    def cell_scale_exponent(self) -> int:
        return int(np.round(np.log2(self.cell_state.scale)))

    @property
    def quantized_cell_clip(self) -> int:
        """The int16 clip the kernel derives from cell_clip (0 = none)."""
        if self.spec.cell_clip <= 0:
            return 0
        return kernel_clip_int16(self.spec.cell_clip, self.cell_state.scale)

    @property
    def quantized_proj_clip(self) -> int:
        """The int8 clip the kernel derives from proj_clip (0 = none)."""
        if self.spec.proj_clip <= 0:
            return 0
        return kernel_clip_int8(self.spec.proj_clip, self.output.scale)

    def describe(self) -> str:
        parts = [
            f"input s={self.input.scale:.3g} zp={self.input.zero_point}",
            f"output s={self.output.scale:.3g} zp={self.output.zero_point}",
            f"cell 2^{self.cell_scale_exponent}",
        ]
        hidden = self.intermediate("hidden")
        if self.spec.projection and hidden is not None:
            parts.append(f"hidden s={hidden.scale:.3g}")
        return f"int8 plan ({self.estimator}): " + ", ".join(parts)


def _range(obs: Observer, estimator: str, *, symmetric_range: bool) -> tuple[float, float]:
    return estimate(obs, estimator, symmetric=symmetric_range, bits=8)


def resolve_estimators(estimator: EstimatorChoice) -> dict[str, str]:
    """Estimator per int8 quantity (input, output, hidden): None = :data:`DEFAULT_ESTIMATORS`,
    one name for all, or a mapping naming some quantities (the rest keep the default).
    """
    if estimator is None:
        return dict(DEFAULT_ESTIMATORS)
    if isinstance(estimator, str):
        chosen = dict.fromkeys(QUANTITIES, estimator)
    else:
        unknown = set(estimator) - set(QUANTITIES)
        if unknown:
            raise ValueError(
                f"estimator: unknown quantities {sorted(unknown)}; known: {list(QUANTITIES)}"
            )
        chosen = {q: estimator.get(q, DEFAULT_ESTIMATORS[q]) for q in QUANTITIES}
    bad = sorted(set(chosen.values()) - set(ESTIMATORS))
    if bad:
        raise ValueError(f"estimator: unknown {bad}; known: {sorted(ESTIMATORS)}")
    return chosen


def estimator_label(estimator: EstimatorChoice) -> str:
    """``"minmax"`` or ``"input=percentile,output=minmax,hidden=minmax"``."""
    chosen = resolve_estimators(estimator)
    if len(set(chosen.values())) == 1:
        return next(iter(chosen.values()))
    return ",".join(f"{q}={e}" for q, e in chosen.items())


def output_params(
    specs: LSTMSpec | Sequence[LSTMSpec], ranges: Sequence[tuple[float, float]]
) -> QuantParams:
    """Output params for one direction, or one set shared by a bidirectional layer's two
    (so CONCATENATION copies bytes: XNNPACK refuses int8 concatenation with mixed params).

    With a proj_clip the output is symmetric (the kernel clips raw codes) and, when the
    clip bounds the range, its scale puts the clip exactly on code 127 (otherwise the
    kernel's clip code is the clip truncated to a code, < 1 LSB low).
    """
    specs = [specs] if isinstance(specs, LSTMSpec) else list(specs)
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    clips = [s.proj_clip for s in specs if s.proj_clip > 0]
    if not clips:
        return asymmetric_int8(lo, hi)
    absmax = max(
        min(max(abs(r[0]), abs(r[1])), s.proj_clip) if s.proj_clip > 0 else max(map(abs, r))
        for s, r in zip(specs, ranges, strict=True)
    )
    clip = max(clips)
    if absmax != clip:  # the range is not bounded by a reached clip (or an unclipped
        return symmetric(absmax, "int8")  # direction is wider): the clip code truncates
    scale = f32(clip / 127)
    while kernel_clip_int8(clip, scale) < 127:
        scale = float(np.nextafter(np.float32(scale), np.float32(0)))
    return QuantParams(scale, 0, "int8")


def state_range(spec: LSTMSpec, rng: tuple[float, float]) -> tuple[float, float]:
    """The output (= recurrent state) range with :data:`STATE_HEADROOM`, never past what the
    output can reach (|o·tanh(c)| < 1 without projection; a proj_clip bounds it too)."""
    lo, hi = rng[0] * STATE_HEADROOM, rng[1] * STATE_HEADROOM
    bound = np.inf if spec.projection else 1.0
    if spec.proj_clip > 0:
        bound = min(bound, spec.proj_clip)
    return max(lo, min(rng[0], -bound)), min(hi, max(rng[1], bound))


def cell_params(spec: LSTMSpec, absmax: float) -> QuantParams:
    """int16, zero point 0, scale 2^k covering the calibrated cell with headroom (or the clip)."""
    target = absmax * CELL_HEADROOM
    if spec.cell_clip > 0:
        target = min(target, spec.cell_clip)
    return QuantParams(2.0 ** cell_scale_exponent(target), 0, "int16")


def plan_direction(
    stats: DirectionStats,
    *,
    estimator: EstimatorChoice = None,
    input_params: QuantParams | None = None,
    shared_output: QuantParams | None = None,
    hidden: HiddenMode = "zero",
    rounding: Rounding = "compensated",
) -> Int8Plan:
    """Quantize one calibrated direction.

    ``input_params`` fixes the input's params (a stacked layer reads the previous layer's
    output tensor); ``shared_output`` fixes the output params (the two directions of a
    bidirectional layer share one set, see :func:`output_params`).
    ``hidden="asymmetric"`` reproduces the converter's asymmetric projection hidden (for
    comparison only: the kernel saturates with it). ``rounding``: see :data:`ROUNDINGS`
    (``compensated`` needs the calibration's moments, else it rounds to nearest).
    """
    weights = stats.weights
    spec = weights.spec
    check_spec(spec)
    est = resolve_estimators(estimator)
    w = weights.tensors
    obs = stats.observers
    ranges: dict[str, tuple[float, float]] = {}

    if input_params is None:
        ranges["input"] = _range(obs["input"], est["input"], symmetric_range=False)
        input_params = asymmetric_int8(*ranges["input"])
    ranges["output"] = state_range(
        spec, _range(obs["output"], est["output"], symmetric_range=False)
    )
    out_params = shared_output or output_params(spec, [ranges["output"]])
    ranges["cell"] = (-obs["cell"].absmax, obs["cell"].absmax)
    cell = cell_params(spec, obs["cell"].absmax)

    hidden_params: QuantParams = out_params
    if spec.projection:
        if hidden == "asymmetric":
            ranges["hidden"] = _range(obs["hidden"], est["hidden"], symmetric_range=False)
            hidden_params = asymmetric_int8(*ranges["hidden"])
        else:
            ranges["hidden"] = _range(obs["hidden"], est["hidden"], symmetric_range=True)
            hidden_params = symmetric(ranges["hidden"][1], "int8")

    gate_params: dict[str, QuantParams] = {}
    if spec.layer_norm:
        for g in GATES:
            name = f"gate.{g}"
            if name in obs:
                ranges[name] = (-obs[name].absmax, obs[name].absmax)
                gate_params[g] = symmetric(obs[name].absmax * CELL_HEADROOM, "int16")
            else:  # CIFG: the kernel still reads intermediate 0's params
                gate_params[g] = QuantParams(Q312, 0, "int16")

    moments = stats.moments if rounding == "compensated" else None
    tensors = _quantize_weights(spec, w, input_params, out_params, hidden_params, moments)
    intermediates = tuple(
        hidden_params if i.gate is None else gate_params.get(i.gate) for i in INTERMEDIATES
    )
    return Int8Plan(
        spec=spec,
        tensors=MappingProxyType(tensors),
        input=input_params,
        output=out_params,
        cell_state=cell,
        intermediates=intermediates,
        estimator=estimator_label(estimator),
        ranges=MappingProxyType(ranges),
        saturation=MappingProxyType(stats.saturation()),
    )


def _quantize_weights(
    spec: LSTMSpec,
    w: Mapping[str, np.ndarray],
    input_params: QuantParams,
    out_params: QuantParams,
    hidden_params: QuantParams,
    moments: Moments | None = None,
) -> dict[str, QuantTensor]:
    """Every present constant role, in op-input order, with the kernel's dtypes and scales
    (weight codes compensated on ``moments`` when given)."""
    tensors: dict[str, QuantTensor] = {}
    for role in present_weight_roles(spec):
        name, gate = role.name, role.gate
        values = w[name]
        if role.kind in ("weight", "recurrent", "projection"):
            min_scale = 0.0
            if role.kind == "weight" and not spec.layer_norm:  # its scale sets the bias scale
                min_scale = _bias_fit_scale(w[name_of("bias", gate)], 1) / input_params.scale
            tensors[name] = quantize_symmetric(values, "int8", min_scale=min_scale)
        elif role.kind == "peephole":
            tensors[name] = quantize_symmetric(values, "int16")
        elif role.kind == "ln":
            fit = _bias_fit_scale(w[name_of("bias", gate)], 1024)
            tensors[name] = quantize_symmetric(values, "int16", min_scale=fit)
    biases = dict(w)
    if moments is not None:
        biases.update(compensate_weights(spec, w, tensors, moments))
    for role in present_weight_roles(spec):
        if role.kind != "bias":
            continue
        name = role.name
        if name == "projection_bias":
            scale = tensors["projection_weights"].params.scale * hidden_params.scale
        elif spec.layer_norm:
            scale = tensors[name_of("ln", role.gate)].params.scale * 2.0**-10
        else:
            scale = tensors[name_of("weight", role.gate)].params.scale * input_params.scale
        data = quantize_bias(biases[name], scale)
        tensors[name] = QuantTensor(data, QuantParams(scale, 0, "int32"))
    # Keep op-input order (biases were appended last).
    return {r.name: tensors[r.name] for r in present_weight_roles(spec)}


def _bias_fit_scale(bias: np.ndarray, units: int) -> float:
    """Smallest scale at which ``bias`` fits int32 when its own scale is scale / ``units``."""
    return float(np.max(np.abs(bias))) * units / INT32_MAX if bias.size else 0.0


def _recode(tensors: dict[str, QuantTensor], name: str, real: np.ndarray) -> None:
    """Replace ``name``'s codes by those of ``real`` (already on its grid)."""
    params = tensors[name].params
    codes = np.clip(np.rint(real / params.scale), -127, 127).astype(np.int8)
    tensors[name] = QuantTensor(codes, params)


def compensate_weights(
    spec: LSTMSpec,
    w: Mapping[str, np.ndarray],
    tensors: dict[str, QuantTensor],
    moments: Moments,
) -> dict[str, np.ndarray]:
    """Re-round each gate's [W | R] (and the projection) in ``tensors`` (int8, per tensor) by
    :func:`compensated_rounding`; returns the bias values that absorbed the compensation
    (none with layer norm: its bias is added after the normalisation). Used by the full-int8
    plan and, with calibration data, by the hybrid op (:mod:`edgelstm.targets.tflite.hybrid`)."""
    biases: dict[str, np.ndarray] = {}
    hess = moments.gate_hessian()
    n_in, n_out = spec.n_input, spec.n_output
    gates = [g for g in GATES if name_of("weight", g) in tensors]
    if hess is not None:
        for g in gates:
            wn, rn, bn = (name_of(k, g) for k in ("weight", "recurrent", "bias"))
            parts = [w[wn], w[rn]]
            scales = [
                np.full(n_in, tensors[wn].params.scale),
                np.full(n_out, tensors[rn].params.scale),
            ]
            h, exact = hess[: n_in + n_out, : n_in + n_out], 0
            if not spec.layer_norm:
                parts.append(np.asarray(w[bn])[:, None])
                scales.append(np.ones(1))
                h, exact = hess, 1
            q = compensated_rounding(
                np.concatenate(parts, axis=1), np.concatenate(scales), h, exact_columns=exact
            )
            _recode(tensors, wn, q[:, :n_in])
            _recode(tensors, rn, q[:, n_in : n_in + n_out])
            if exact:
                biases[bn] = q[:, -1]
    hh = moments.hidden_hessian()
    if spec.projection and hh is not None:
        n = spec.n_cell
        parts, scales = (
            [w["projection_weights"]],
            [np.full(n, tensors["projection_weights"].params.scale)],
        )
        h, exact = hh[:n, :n], 0
        if spec.projection_bias:
            parts.append(np.asarray(w["projection_bias"])[:, None])
            scales.append(np.ones(1))
            h, exact = hh, 1
        q = compensated_rounding(
            np.concatenate(parts, axis=1), np.concatenate(scales), h, exact_columns=exact
        )
        _recode(tensors, "projection_weights", q[:, :n])
        if exact:
            biases["projection_bias"] = q[:, -1]
    return biases

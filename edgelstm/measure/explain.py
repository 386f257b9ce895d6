"""Why is the int8 file off? ``edgelstm verify MODEL --explain`` and :func:`explain_int8`.

The full-integer LSTM is replayed step by step with the kernel's own arithmetic
(:class:`edgelstm.quant.kernel_sim.KernelSim`, checked code for code against LiteRT running
the file: ``runtime_mismatch``), next to the float64 reference. Per layer, direction and
tensor (input, each gate's pre-activation, cell, hidden, output) the report gives the error
in that tensor's own LSB and the fraction saturated. Which tensor the output error comes
from is answered by ablation: the replay is re-run with one stage exact (no rounding, no
saturation) — or with the float weights — and the stage whose removal takes most of the
output error away is named.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.kernel_sim import KernelSim, Trace
from edgelstm.quant.model_plan import ModelPlan, quantize_model
from edgelstm.reference import reference

ABLATIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("weights", frozenset({"weights"})),
    ("input", frozenset({"input"})),
    ("gates", frozenset({"gates"})),
    ("cell", frozenset({"cell"})),
    ("state", frozenset({"state"})),
    ("all integer stages", frozenset({"input", "gates", "cell", "state"})),
)
"""(label, stages made exact) of each ablation run."""
ALL = "all integer stages"
Q312_LIMIT = 8.0


@dataclass(frozen=True)
class TensorError:
    """One tensor of one direction: error vs the reference in its own LSB."""

    layer: int
    direction: int
    tensor: str
    lsb: float
    rmse_lsb: float
    max_lsb: float
    saturated: float
    """Fraction of the reference's values outside the tensor's range (or clamped)."""

    def row(self) -> str:
        where = f"L{self.layer}{'b' if self.direction else ''}"
        return (
            f"  {where:<4} {self.tensor:<14} LSB {self.lsb:<10.3g} rmse {self.rmse_lsb:8.2f}"
            f"  max {self.max_lsb:9.1f}  saturated {100 * self.saturated:6.2f}%"
        )


@dataclass(frozen=True)
class ExplainReport:
    """What :func:`explain_int8` found (``format()`` for the CLI)."""

    tensors: tuple[TensorError, ...]
    output_rmse_lsb: float
    output_max: float
    output_lsb: float
    ablations: dict[str, tuple[float, float]] = field(default_factory=dict)
    """label -> (output RMSE in LSB, max abs error) with that stage exact."""
    runtime_mismatch: float | None = None
    """Fraction of LSTM output codes where the replay differs from LiteRT (None: not run)."""
    runtime_max_code_diff: int | None = None

    @property
    def culprit(self) -> str:
        """The stage whose exact version removes most output error ('' if none helps)."""
        if not self.ablations:
            return ""
        single = {k: v for k, v in self.ablations.items() if k != ALL}
        best = min(single, key=lambda k: single[k][0])
        if single[best][0] < 0.8 * self.output_rmse_lsb:
            return best
        together = self.ablations.get(ALL)
        return ALL if together and together[0] < 0.5 * self.output_rmse_lsb else ""

    def to_dict(self) -> dict[str, object]:
        return {
            "output_rmse_lsb": self.output_rmse_lsb,
            "output_max": self.output_max,
            "output_lsb": self.output_lsb,
            "runtime_mismatch": self.runtime_mismatch,
            "runtime_max_code_diff": self.runtime_max_code_diff,
            "tensors": [vars(t) for t in self.tensors],
            "ablations": {k: {"rmse_lsb": r, "max": m} for k, (r, m) in self.ablations.items()},
            "cause": self.culprit,
        }

    def format(self) -> str:
        lines = [
            f"int8 output error: rmse {self.output_rmse_lsb:.2f} LSB, max {self.output_max:.4g}"
            f" (LSB {self.output_lsb:.4g})",
        ]
        if self.runtime_mismatch is not None:
            lines.append(
                f"replay vs LiteRT: {100 * self.runtime_mismatch:.3f}% of LSTM output codes "
                f"differ (max {self.runtime_max_code_diff} code)"
            )
        lines.append("per tensor (error vs the float64 reference, in the tensor's own LSB):")
        lines += [t.row() for t in self.tensors]
        lines.append("output error with one stage exact (rmse LSB, max):")
        for label, (rmse, top) in self.ablations.items():
            lines.append(f"  {label:<20} {rmse:8.2f}  {top:.4g}")
        culprit = self.culprit
        lines.append(
            f"cause: {_CAUSES.get(culprit, culprit)}"
            if culprit
            else "cause: no single stage dominates (the error is spread over the stages)"
        )
        return "\n".join(lines)


_CAUSES = {
    "weights": "int8 weight rounding (one symmetric scale per tensor); the compensated "
    "rounding (the default) targets it; with --quantize dynamic the weights stay int8 too",
    "input": "the input's int8 range (clipped or coarse): calibrate on data that covers it",
    "gates": "the gate accumulators: Q3.12 saturates at ±8 (partial sums W·x+b and "
    "+R·h each saturate) — fixed in the fused kernel without layer norm; "
    "--int8-lowering integer (or auto) chooses its own int16 gate scales from the "
    "calibration ranges (Silero VAD: 3.9 -> 2.2 output LSB; it needs --seq-len)",
    "cell": "the int16 cell state (scale 2^k, k in [-15, -9]) and tanh(c)",
    "state": "the int8 output/state resolution, fed back every step",
    ALL: "the integer stages together (no single one dominates; with all of them exact the "
    "error is the weights' alone)",
}


def _reference_tensors(weights: LSTMWeights, x: np.ndarray) -> dict[str, np.ndarray]:
    store: dict[str, list[np.ndarray]] = {"cell": [], "hidden": []}

    class Obs:
        def gate(self, gate, partials, value):
            store.setdefault(f"gate.{gate}", []).append(value)

        def cell(self, c):
            store["cell"].append(c)

        def hidden(self, m):
            store["hidden"].append(m)

        def sequence(self, xs, ys):
            pass

    y, _ = reference(weights, x, observer=Obs())
    out = {k: np.stack(v, axis=1) for k, v in store.items() if v}
    out["output"] = y
    return out


def _err(sim: np.ndarray, ref: np.ndarray, lsb: float) -> tuple[float, float]:
    e = np.asarray(sim, np.float64) - ref
    return float(np.sqrt(np.mean(e**2)) / lsb), float(np.abs(e).max() / lsb)


def _direction_errors(
    k: int, d: int, sim: KernelSim, tr: Trace, ref: dict[str, np.ndarray], x: np.ndarray
) -> list[TensorError]:
    plan = sim.plan
    rows = []
    ip = plan.input
    xq = ip.dequantize(ip.quantize(x))
    lo, hi = ip.real_range
    rows.append(
        TensorError(
            k, d, "input", ip.scale, *_err(xq, x, ip.scale), float(np.mean((x < lo) | (x > hi)))
        )
    )
    size = tr.cell.size
    for g in sim.gates:
        z = ref[f"gate.{g}"]
        sat = max(float(np.mean(np.abs(z) > Q312_LIMIT)), tr.clamped.get(g, 0) / size)
        rows.append(
            TensorError(
                k, d, f"gate.{g}", 2.0**-12, *_err(tr.gates[g] * 2.0**-12, z, 2.0**-12), sat
            )
        )
    cs = plan.cell_state.scale
    rows.append(
        TensorError(
            k,
            d,
            "cell",
            cs,
            *_err(tr.cell * cs, ref["cell"], cs),
            tr.clamped.get("cell_state", 0) / size,
        )
    )
    hp = plan.intermediate("hidden") or plan.output
    if plan.spec.projection:
        m, clamped = ref["hidden"], tr.clamped.get("hidden", 0) / size
        rows.append(
            TensorError(
                k, d, "hidden", hp.scale, *_err(sim.hidden_real(tr.hidden), m, hp.scale), clamped
            )
        )
    op = plan.output
    y = ref["output"]
    lo, hi = op.real_range
    rows.append(
        TensorError(
            k,
            d,
            "output",
            op.scale,
            *_err(op.dequantize(tr.output), y, op.scale),
            float(np.mean((y < lo - op.scale / 2) | (y > hi + op.scale / 2))),
        )
    )
    return rows


def _batch_major(model: LSTMModel, x: np.ndarray) -> np.ndarray:
    xs = np.asarray(x, dtype=np.float64)
    if xs.ndim == 2:
        xs = xs[None]
    return xs.transpose(1, 0, 2) if model.time_major else xs


@dataclass
class _Run:
    """One replay of the whole stack: the last layer's output codes and every trace."""

    output: np.ndarray
    traces: dict[tuple[int, int], tuple[KernelSim, Trace]]


def _replay(plan: ModelPlan, xs: np.ndarray, ideal: Collection[str] = ()) -> _Run:
    model = plan.model
    ideal = frozenset(ideal)
    ip = plan.input
    if "input" in ideal:
        codes = xs / ip.scale + ip.zero_point
    else:
        codes = ip.quantize(xs).astype(np.float64)
    traces = {}
    for visit in model.walk_layers():
        outs = []
        for v in visit.directions:
            float_w = v.weights if "weights" in ideal else None
            sim = KernelSim(plan.direction(v.k, v.d), float_weights=float_w)
            tr = sim.run(codes[:, ::-1] if v.runs_reversed else codes, ideal - {"weights"})
            traces[(v.k, v.d)] = (sim, tr)
            outs.append(tr.output[:, ::-1] if v.realigns else tr.output)
        codes = np.concatenate(outs, axis=-1)
    return _Run(codes, traces)


def _reference_stack(model: LSTMModel, xs: np.ndarray):
    """The float64 reference layer by layer: per direction its tensors, and the output."""
    seq = xs
    tensors = {}
    for visit in model.walk_layers():
        outs = []
        for v in visit.directions:
            ref = _reference_tensors(v.weights, seq[:, ::-1] if v.runs_reversed else seq)
            ref["input"] = seq[:, ::-1] if v.runs_reversed else seq
            tensors[(v.k, v.d)] = ref
            y = ref["output"]
            outs.append(y[:, ::-1] if v.realigns else y)
        seq = np.concatenate(outs, axis=-1)
    return tensors, seq


def runtime_codes(
    data: bytes, model: LSTMModel, xs: np.ndarray
) -> dict[tuple[int, int], np.ndarray]:
    """Each LSTM op's int8 output codes as LiteRT computes them ([B, T, F], processing
    order), read with ``experimental_preserve_all_tensors``."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = Interpreter(model_content=data, experimental_preserve_all_tensors=True, num_threads=1)
    x = xs.transpose(1, 0, 2) if model.time_major else xs
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(x.shape))
    for t in it.get_tensor_details():  # the state variables follow the batch
        if re.search(r"/(output_state|cell_state)(/initial|/zero)?$", t["name"]):
            it.resize_tensor_input(t["index"], [xs.shape[0], int(t["shape"][-1])])
    it.allocate_tensors()
    if np.dtype(inp["dtype"]).kind == "i":  # int8 I/O: the file's own input params
        scale, zp = inp["quantization"]
        x = np.clip(np.rint(x / scale) + zp, -128, 127)
    it.set_tensor(inp["index"], x.astype(inp["dtype"]))
    it.invoke()
    names = {t["name"]: t["index"] for t in it.get_tensor_details()}
    out = {}
    for v in model.walk():
        name = f"layer{v.k}/{v.name}/output"
        if name in names:
            codes = it.get_tensor(names[name]).astype(np.int64)
            out[(v.k, v.d)] = codes.transpose(1, 0, 2) if model.time_major else codes
    return out


def explain_model(
    model: LSTMModel | LSTMWeights,
    x: np.ndarray,
    *,
    calibration: np.ndarray | None = None,
    plan: ModelPlan | None = None,
    data: bytes | None = None,
    check_runtime: bool = True,
    ablate: bool = True,
) -> ExplainReport:
    """Diagnose the full-int8 file of ``model`` on inputs ``x`` (the model's layout).

    (A .tflite path goes through :func:`edgelstm.measure.explain_file.explain_int8`.)
    ``plan``: the int8 plan to explain (default: calibrate on ``calibration`` — [N, T, I],
    as for compiling — else on ``x``). ``data``: the .tflite bytes of that plan (default:
    compiled here); LiteRT runs it to check the replay (``check_runtime``). ``ablate``:
    re-run with each stage exact.
    """
    model = LSTMModel.of(model)
    xs = _batch_major(model, x)
    if plan is None:
        cal = np.asarray(calibration, np.float64) if calibration is not None else xs
        plan = quantize_model(model, cal)
    pm = plan.model
    refs, ref_out = _reference_stack(pm, xs)
    run = _replay(plan, xs)
    rows: list[TensorError] = []
    for (k, d), (sim, tr) in run.traces.items():
        rows += _direction_errors(k, d, sim, tr, refs[(k, d)], refs[(k, d)]["input"])
    out_params = plan.layer_outputs[-1]
    lsb = out_params.scale

    def output_error(r: _Run) -> tuple[float, float]:
        rmse, top = _err(out_params.dequantize(r.output), ref_out, lsb)
        return rmse, top * lsb

    rmse, top = output_error(run)
    ablations = {}
    if ablate:
        for label, ideal in ABLATIONS:
            ablations[label] = output_error(_replay(plan, xs, ideal))
    mismatch = max_diff = None
    if check_runtime:
        from edgelstm.measure.int8_error import compile_int8

        if data is None:
            data, _ = compile_int8(model, xs, plan=plan)
        got = runtime_codes(data, pm, xs)
        diffs = [np.abs(run.traces[key][1].output - codes) for key, codes in got.items()]
        if diffs:
            mismatch = float(np.mean(np.concatenate([d.ravel() for d in diffs]) > 0))
            max_diff = int(max(d.max() for d in diffs))
    return ExplainReport(tuple(rows), rmse, top, lsb, ablations, mismatch, max_diff)

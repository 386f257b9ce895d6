"""Latency-optimal lowering: build every variant, verify it, time the survivors, keep the best.

:func:`optimize_latency` compiles the model every way edgelstm can for the target format:

* TFLite: the fused UNIDIRECTIONAL_SEQUENCE_LSTM in float, hybrid (dynamic) and full int8,
  and the unfused lowering (:mod:`edgelstm.targets.tflite.unfused`: hoisted input GEMM + WHILE or
  unrolled recurrence that XNNPACK runs) in float, dynamic-range and static int8, with the
  automatic schedule and, where it differs, the alternatives (1 step per WHILE trip, fully
  unrolled for short fixed T);
* ONNX: the fused ``LSTM`` (where exact) and the hoisted Scan composite, each float and
  onnxruntime dynamic int8 (pair-safe int8 weights), and DynamicQuantizeLSTM with uint8 weights
  (:mod:`edgelstm.targets.onnx.u8`) or full-range int8 weights (accurate only on CPUs
  with VNNI).

Each is run on the verification data (``data`` [N, T, I], else seeded N(0, 1) sequences) and
compared with the float64 reference (:func:`edgelstm.reference.reference_model`): max abs
error of the model output. Variants within ``max_error`` are timed on this machine's
interpreter, interleaved, with :func:`edgelstm.measure.bench.bench` (medians of many runs; the
ordering rotates so background load hits every variant alike); the fastest wins, and among
variants within :data:`TIE_MARGIN` of it (a tie) the most accurate one. The table
lists every candidate and why it lost: error over budget, slower by x%, or refused (the
variant cannot express the model, with the emitter's reason).

Full-int8 variants are calibrated on the verification data itself (pass data that looks like
deployment input; the error is then measured on the calibration set, an optimistic bound).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm._io import progress
from edgelstm.errors import EdgeLSTMError, InputDataError, UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions, OnnxOptions, UnfusedOptions
from edgelstm.ir.weights import LSTMWeights

DEFAULT_SEQUENCES = 8
DEFAULT_STEPS = 50
TIE_MARGIN = 0.03
"""Timings closer than this are a tie (measured: files holding the identical onnxruntime kernel
and weights differ by up to 2.8-3.8% between loads); a tie goes to the more accurate."""
UNROLL_TRY = 4
"""Besides the automatic schedule, also time the fully unrolled one while its weight copies
stay within this factor of ``tflite.unfused.schedule.UNROLL_BUDGET`` (the measured crossover)."""


@dataclass
class Candidate:
    """One way to compile the model, and what happened to it."""

    name: str
    format: str
    quantize: str
    build: Callable[[], bytes] = field(repr=False)
    data: bytes | None = field(default=None, repr=False)
    error: float | None = None
    p50_ms: float | None = None
    verdict: str = ""
    chosen: bool = False

    def outputs(self, x: np.ndarray, batch: int | None, time_major: bool) -> np.ndarray:
        """Run the built variant on batch-major ``x`` [N, T, I] in chunks of the model's
        batch (zero padded), from zero state; float64 output, dequantized if integer."""
        if self.data is None:
            raise ValueError(f"{self.name}: not built")
        runner = self._runner()
        n = x.shape[0]
        chunk = batch or n
        ys = []
        for start in range(0, n, chunk):
            part = x[start : start + chunk]
            if part.shape[0] < chunk:
                pad = np.zeros((chunk - part.shape[0], *part.shape[1:]))
                part = np.concatenate([part, pad])
            part = part.astype(np.float32)
            y = np.asarray(runner.run(part.transpose(1, 0, 2) if time_major else part)[0])
            if y.dtype.kind in "iu":  # an integer-output model: dequantize with its own params
                scale, zero_point = runner.output_quantization[0]
                y = (y.astype(np.float64) - zero_point) * scale
            y = y.astype(np.float64)
            if time_major and y.ndim == 3:
                y = y.transpose(1, 0, 2)
            ys.append(y[: min(chunk, n - start)])
        return np.concatenate(ys)

    def _runner(self) -> Any:
        if self.format == "onnx":
            from edgelstm.runtime.ort import OrtRunner

            return OrtRunner(self.data)
        from edgelstm.runtime.litert import LiteRTRunner

        return LiteRTRunner(self.data)


@dataclass
class OptimizeTable:
    """All candidates (chosen first) and the settings of the search."""

    candidates: list[Candidate]
    max_error: float
    data_desc: str
    runs: int

    @property
    def chosen(self) -> Candidate:
        return next(c for c in self.candidates if c.chosen)

    def format(self) -> str:
        from edgelstm.measure.bench import text_table

        best = next((c.p50_ms for c in self.candidates if c.chosen), None)
        rows = []
        for c in self.candidates:
            ratio = f"{c.p50_ms / best:.2f}" if c.p50_ms and best else "-"
            rows.append(
                [
                    c.name,
                    c.quantize,
                    "-" if c.error is None else f"{c.error:.2e}",
                    "-" if c.p50_ms is None else f"{c.p50_ms:.3f}",
                    ratio,
                    c.verdict,
                ]
            )
        head = (
            f"latency search: max error {self.max_error:g} vs the float64 reference on "
            f"{self.data_desc}; {self.runs} interleaved timed runs per survivor (p50)"
        )
        table = text_table(("candidate", "quant", "max error", "p50 ms", "x best", "verdict"), rows)
        return head + "\n" + table

    def __str__(self) -> str:
        return self.format()


class NoCandidateError(UnsupportedError):
    """No variant meets the error budget; ``table`` says why each one failed."""

    def __init__(self, table: OptimizeTable) -> None:
        self.table = table
        super().__init__(
            "optimize", f"no variant is within max error {table.max_error:g}:\n{table.format()}"
        )


def _target(target: str) -> str:
    t = str(target).lower().lstrip(".")
    if t.endswith(".tflite") or t == "tflite":
        return "tflite"
    if t.endswith(".onnx") or t == "onnx":
        return "onnx"
    raise UnsupportedError("optimize", f"target must be tflite or onnx, found {target!r}")


def candidates(model: LSTMModel, target: str, options: CompileOptions) -> list[Candidate]:
    """Every variant for ``target`` (not yet built)."""
    out: list[Candidate] = []
    if _target(target) == "onnx":
        from edgelstm.targets.onnx import to_onnx

        options = dataclasses.replace(options, onnx=OnnxOptions())  # each candidate sets its own
        for composite in (False, True):
            for q in ("none", "dynamic"):
                opts = dataclasses.replace(
                    options, quantize=q, onnx=OnnxOptions(force_composite=composite)
                )
                kind = "hoisted Scan composite" if composite else "fused LSTM"

                def build(o=opts) -> bytes:
                    return to_onnx(model, o).SerializeToString()

                out.append(Candidate(f"onnx {kind}", "onnx", q, build))
        from edgelstm.targets.onnx.dynamic import full_range_int8
        from edgelstm.targets.onnx.u8 import to_onnx_uint8_weights

        out.append(
            Candidate(
                "onnx fused LSTM, uint8 weights",
                "onnx",
                "dynamic",
                lambda: to_onnx_uint8_weights(model, options),
            )
        )
        fused_float = dataclasses.replace(options, quantize="none")
        out.append(
            Candidate(
                "onnx fused LSTM, full-range int8 weights",
                "onnx",
                "dynamic",
                lambda: full_range_int8(to_onnx(model, fused_float)),
            )
        )
        return out

    from edgelstm.targets.tflite import to_tflite
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused
    from edgelstm.targets.tflite.unfused.schedule import (
        UNROLL_BUDGET,
        choose_schedule,
        recurrent_bytes,
        while_plan,
    )

    for q in ("none", "dynamic", "int8"):
        opts = dataclasses.replace(options, quantize=q)
        out.append(Candidate("tflite fused", "tflite", q, lambda o=opts: to_tflite(model, o)))
    steps = options.seq_len
    for q in ("none", "dynamic", "int8"):
        opts = dataclasses.replace(options, quantize=q)
        auto = choose_schedule(model, steps, q, options.batch)
        schedules = [auto]
        if auto[0] == "unrolled":  # the WHILE alternative
            schedules.append(("while", *while_plan(model, steps, q, options.batch)))
        elif steps is not None and recurrent_bytes(model, q) * steps <= UNROLL_TRY * UNROLL_BUDGET:
            schedules.append(("unrolled", steps, None))
        if auto[0] == "while" and auto[1] != 1:  # one step per trip: one weight copy
            schedules.append(("while", *while_plan(model, steps, q, options.batch, chunk=1)))
        for sched, chunk, segment in schedules:
            label = "unrolled" if sched == "unrolled" else f"WHILE {chunk} step/trip"
            if sched == "while" and steps is not None and segment != steps:
                label += f", {steps // (segment or steps)} loops"

            scheduled = dataclasses.replace(
                opts,
                unfused=UnfusedOptions(sched, chunk, segment),  # type: ignore[arg-type]
            )

            def build(o=scheduled) -> bytes:
                return to_tflite_unfused(model, o)

            out.append(Candidate(f"tflite unfused {label}", "tflite", q, build))
    return out


def _data(model: LSTMModel, options: CompileOptions, data: Any) -> tuple[np.ndarray, str]:
    if data is None:
        steps = options.seq_len or DEFAULT_STEPS
        n = max(DEFAULT_SEQUENCES, options.batch or 1)
        x = np.random.default_rng(0).standard_normal((n, steps, model.n_input))
        return x.astype(np.float32), f"{n} seeded N(0,1) sequences of {steps} steps"
    if isinstance(data, (str, Path)):
        from edgelstm.measure.data import load_data

        x = load_data(data)
        desc = f"{Path(data).name} {list(x.shape)}"
    else:
        x = np.asarray(data, dtype=np.float32)
        desc = f"given data {list(x.shape)}"
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != model.n_input:
        raise InputDataError(f"data: expected [N, T, {model.n_input}], found {list(x.shape)}")
    if options.seq_len is not None and x.shape[1] != options.seq_len:
        raise InputDataError(
            f"data: sequences of {x.shape[1]} steps, but the model is compiled for "
            f"seq_len {options.seq_len}"
        )
    return x, desc


def optimize_latency(
    model: LSTMModel | LSTMWeights,
    target: str,
    max_error: float,
    data: Any = None,
    *,
    options: CompileOptions | None = None,
    runs: int = 100,
    warmup: int = 10,
    threads: int = 1,
) -> tuple[bytes, OptimizeTable]:
    """The fastest variant of ``model`` for ``target`` ("tflite"/"onnx" or a file name)
    within ``max_error`` (max abs output error vs the float64 reference on ``data``).

    Returns (the file's bytes, the table of every candidate). ``options`` fixes batch,
    seq_len, layout (its ``quantize`` is ignored: every mode is tried); without it the
    sequence length is fixed to the data's (50 for random data), batch 1. Raises
    :class:`NoCandidateError` (an :class:`UnsupportedError` carrying the table) when no
    candidate meets the budget.
    """
    from edgelstm.reference import reference_model

    model = LSTMModel.of(model)
    if not (isinstance(max_error, (int, float)) and max_error > 0 and np.isfinite(max_error)):
        raise InputDataError(f"max_error: expected a positive number, found {max_error!r}")
    if options is None:  # fix T to the data's length (or the default): the best schedules
        steps = DEFAULT_STEPS if data is None else None
        options = CompileOptions(seq_len=steps)
        x, desc = _data(model, options, data)
        options = dataclasses.replace(options, seq_len=x.shape[1])
    else:
        x, desc = _data(model, options, data)
    options = dataclasses.replace(options, calibration=x)
    time_major = model.time_major if options.time_major is None else options.time_major
    ref = reference_model(dataclasses.replace(model, time_major=False), x).output
    cands = candidates(model, target, options)
    with progress(len(cands), "building + verifying candidates") as advance:
        for c in cands:
            _build_and_check(c, x, ref, options.batch, time_major, max_error)
            advance()
    survivors = [c for c in cands if c.data is not None and not c.verdict]
    if not survivors:
        raise NoCandidateError(OptimizeTable(cands, max_error, desc, runs))
    _time(survivors, options, runs, warmup, threads)
    best = choose(survivors)
    for c in survivors:
        if c is best or c.p50_ms is None or not best.p50_ms:
            continue
        if c.p50_ms <= best.p50_ms * (1 + TIE_MARGIN):
            c.verdict = f"as fast (within {TIE_MARGIN:.0%}), less accurate"
        else:
            c.verdict = f"slower by {100 * (c.p50_ms / best.p50_ms - 1):.0f}%"
    order = sorted(cands, key=lambda c: (not c.chosen, c.p50_ms is None, c.p50_ms or 0.0))
    assert best.data is not None
    return best.data, OptimizeTable(order, max_error, desc, runs)


def _build_and_check(
    c: Candidate,
    x: np.ndarray,
    ref: np.ndarray,
    batch: int | None,
    time_major: bool,
    max_error: float,
) -> None:
    """Build ``c`` and measure its max abs error on ``x``; a refusal or an error over the
    budget becomes its verdict (it is then not timed)."""
    try:
        c.data = c.build()
        y = c.outputs(x, batch, time_major)
    except UnsupportedError as exc:
        c.verdict = f"refused: {exc.reason}"
        return
    except EdgeLSTMError as exc:
        c.verdict = f"refused: {exc}"
        return
    c.error = float(np.max(np.abs(y - ref))) if y.shape == ref.shape else float("inf")
    if not np.isfinite(c.error) or c.error > max_error:
        c.verdict = f"error over budget ({c.error:.2e} > {max_error:g})"


def choose(timed: list[Candidate]) -> Candidate:
    """The fastest candidate; among those within :data:`TIE_MARGIN` of it, the most accurate.

    Variants that run the same kernel (e.g. onnxruntime's DynamicQuantizeLSTM with
    edgelstm's pair-safe weights or with ORT's full-range ones) differ in speed only by
    noise, but by 17-20x in error: a coin flip must not pick the inaccurate one.
    """
    fastest = min(c.p50_ms or np.inf for c in timed)
    ties = [c for c in timed if (c.p50_ms or np.inf) <= fastest * (1 + TIE_MARGIN)]
    best = min(ties, key=lambda c: (c.error if c.error is not None else np.inf, c.p50_ms))
    best.chosen = True
    best.verdict = "chosen"
    return best


def _time(cands: list[Candidate], options: CompileOptions, runs: int, warmup: int, threads: int):
    from edgelstm.measure.bench import bench

    if len(cands) == 1:
        runs = min(runs, 5)
    with tempfile.TemporaryDirectory(prefix="edgelstm-optimize-") as tmp:
        paths = []
        for k, c in enumerate(cands):
            p = Path(tmp, f"candidate{k}.{c.format}")
            p.write_bytes(c.data or b"")
            paths.append(p)
        results = bench(
            paths,
            threads=threads,
            runs=runs,
            warmup=warmup,
            batch=options.batch,
            seq_len=options.seq_len or DEFAULT_STEPS,
            memory=False,
            probe=False,  # candidates edgelstm just compiled itself
        )
    for c, r in zip(cands, results, strict=True):
        c.p50_ms = r.p50_ms


__all__ = [
    "Candidate",
    "NoCandidateError",
    "OptimizeTable",
    "candidates",
    "choose",
    "optimize_latency",
]

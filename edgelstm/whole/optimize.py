"""Latency-optimal whole models: for each LSTM segment, the fused op or an unfused lowering.

The default whole-model file fuses every LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM). LiteRT's
XNNPACK delegate does not run that op, but it does run the unfused lowering
(:mod:`edgelstm.targets.tflite.unfused`: hoisted input GEMM + WHILE or unrolled recurrence
of FULLY_CONNECTED / elementwise ops), which measured 1.8x (float) to 3x (dynamic) faster
for a 128-unit LSTM between Conv1D and Dense. Which one wins depends on size, T and the
machine, so :func:`optimize_whole` measures it, as :mod:`edgelstm.measure.optimize` does for
LSTM-only models:

* the TF segments are converted once; each LSTM segment gets its variants (fused, the
  unfused automatic schedule and its alternatives), and every combination (all of them
  up to :data:`MAX_COMBINATIONS`, else one variant kind for every segment) is linked into
  a whole file;
* each file runs on the verification inputs and is compared with the Keras model itself;
  a file whose max abs error exceeds the budget is dropped. The default budget keeps the
  default conversion's accuracy: ``max(1e-5, 1.25 x the default file's error)`` — float
  stays within 1e-5 of Keras, dynamic no worse than the fused hybrid LSTM;
* the survivors are timed interleaved on LiteRT's Interpreter (1 thread by default, the
  default delegates as a user gets them); the fastest wins, a tie (within
  :data:`~edgelstm.measure.optimize.TIE_MARGIN`) goes to the more accurate.

The quantization mode stays the caller's ("none" or "dynamic"; "int8" keeps the fused op,
whose boundary scales the whole-model int8 path calibrates). The choice is recorded in the
file's ``edgelstm.optimize`` metadata entry (JSON).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.errors import EdgeLSTMError, InputDataError, UnsupportedError
from edgelstm.ir.options import CompileOptions, UnfusedOptions
from edgelstm.whole.optimize_io import (
    DEFAULT_SEQUENCES,
    OPTIMIZE_NAME,
    link_parts,
    read_choice,
    run_file,
    time_interleaved,
    verification_inputs,
)
from edgelstm.whole.segments import LstmSegment, WholeModel

FLOAT_BUDGET = 1e-5
"""The default error budget's floor: a float whole file equals Keras to this."""
ERROR_SLACK = 1.25
"""The default budget allows this factor over the default (fused) file's own error."""
MAX_COMBINATIONS = 16
FUSED = "fused"


@dataclass
class WholeCandidate:
    """One whole file: a lowering per LSTM segment, and what happened to it."""

    lowerings: tuple[str, ...]
    data: bytes | None = field(default=None, repr=False)
    error: float | None = None
    p50_ms: float | None = None
    verdict: str = ""
    chosen: bool = False

    @property
    def name(self) -> str:
        return " + ".join(self.lowerings)


@dataclass
class WholeOptimizeTable:
    """Every candidate (chosen first) and the search's settings."""

    candidates: list[WholeCandidate]
    max_error: float
    quantize: str
    runs: int

    @property
    def chosen(self) -> WholeCandidate:
        return next(c for c in self.candidates if c.chosen)

    def format(self) -> str:
        from edgelstm.measure.bench import text_table

        best = self.chosen.p50_ms
        rows = [
            [
                c.name,
                "-" if c.error is None else f"{c.error:.2e}",
                "-" if c.p50_ms is None else f"{c.p50_ms:.3f}",
                f"{c.p50_ms / best:.2f}" if c.p50_ms and best else "-",
                c.verdict,
            ]
            for c in self.candidates
        ]
        head = (
            f"whole-model latency search (quantize={self.quantize}): max error "
            f"{self.max_error:.2g} vs the framework; {self.runs} interleaved timed runs per "
            "survivor (p50)"
        )
        table = text_table(("LSTM lowering(s)", "max error", "p50 ms", "x best", "verdict"), rows)
        return head + "\n" + table

    def __str__(self) -> str:
        return self.format()


def unfused_variants(
    model: Any, options: CompileOptions, steps: int | None, masked: bool = False
) -> list[tuple[str, Callable[[], bytes]]]:
    """(label, build) of the unfused lowerings of one LSTM run: the automatic schedule and
    the alternatives the LSTM-only search also times (none for int8: see the module doc)."""
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused
    from edgelstm.targets.tflite.unfused.schedule import (
        UNROLL_BUDGET,
        choose_schedule,
        recurrent_bytes,
        while_plan,
    )

    q, batch = options.quantize, options.batch
    if q not in ("none", "dynamic"):
        return []
    auto = choose_schedule(model, steps, q, batch)
    schedules = [auto]
    if auto[0] == "unrolled":
        schedules.append(("while", *while_plan(model, steps, q, batch)))
    elif steps is not None and recurrent_bytes(model, q) * steps <= 4 * UNROLL_BUDGET:
        schedules.append(("unrolled", steps, None))
    if auto[0] == "while" and auto[1] != 1:
        schedules.append(("while", *while_plan(model, steps, q, batch, chunk=1)))
    out: list[tuple[str, Callable[[], bytes]]] = []
    for sched, chunk, segment in schedules:
        label = "unfused unrolled" if sched == "unrolled" else f"unfused WHILE {chunk} step/trip"
        opts = dataclasses.replace(
            options,
            seq_len=steps,
            unfused=UnfusedOptions(sched, chunk, segment),  # type: ignore[arg-type]
        )

        def build(o: CompileOptions = opts) -> bytes:
            if not masked:
                return to_tflite_unfused(model, o)
            from edgelstm.whole.masking import add_mask_tail

            full = to_tflite_unfused(dataclasses.replace(model, return_sequences=True), o)
            return add_mask_tail(full, return_sequences=model.return_sequences, steps=steps)

        out.append((label, build))
    return out


def lstm_variants(
    seg: LstmSegment, options: CompileOptions
) -> list[tuple[str, Callable[[], bytes]]]:
    """(label, build) of each lowering of one Keras LSTM segment, fused first."""
    from edgelstm.whole.keras_parts import convert_lstm_segment

    fused = (FUSED, lambda: convert_lstm_segment(seg, options, io=False))
    opts = dataclasses.replace(options, time_major=False)
    return [fused, *unfused_variants(seg.model, opts, seg.input_shape[0], seg.masked)]


def _combinations(variants: list[list[str]]) -> list[tuple[str, ...]]:
    combos = list(itertools.product(*variants))
    if len(combos) <= MAX_COMBINATIONS:
        return combos
    kinds = [v for v in variants[0] if all(v in other for other in variants)]
    return [tuple(v for _ in variants) for v in kinds]


def search(
    parts: Sequence[bytes],
    slots: dict[int, list[tuple[str, Callable[[], bytes]]]],
    x: np.ndarray,
    ref: np.ndarray,
    *,
    quantize: str,
    max_error: float | None = None,
    runs: int = 100,
    warmup: int = 10,
    threads: int = 1,
) -> tuple[bytes, WholeOptimizeTable]:
    """The fastest linked file: ``parts`` in series, part k replaced by one of ``slots[k]``
    (label, build) — the first of each is the default, ``parts[k]`` itself — verified on
    ``x`` against the framework's ``ref`` (module doc for the budget and the tie rule)."""
    from edgelstm.measure.optimize import TIE_MARGIN

    if max_error is not None and not (max_error > 0 and np.isfinite(max_error)):
        raise InputDataError(f"max_error: expected a positive number, found {max_error!r}")
    at = sorted(slots)
    builds = {(k, label): build for k in at for label, build in slots[k]}
    built: dict[tuple[int, str], bytes | str] = {(k, slots[k][0][0]): parts[k] for k in at}

    def part(k: int, label: str) -> bytes | str:
        if (k, label) not in built:
            try:
                built[(k, label)] = builds[(k, label)]()
            except EdgeLSTMError as exc:
                built[(k, label)] = str(getattr(exc, "reason", exc))
        return built[(k, label)]

    def pieces(c: WholeCandidate) -> list[bytes | str]:
        chosen = dict(zip(at, c.lowerings, strict=True))
        return [part(k, chosen[k]) if k in chosen else p for k, p in enumerate(parts)]

    labels = [[label for label, _ in slots[k]] for k in at]
    cands = [WholeCandidate(combo) for combo in _combinations(labels)]
    for c in cands:
        files = pieces(c)
        refused = [p for p in files if isinstance(p, str)]
        if refused:
            c.verdict = f"refused: {refused[0]}"
            continue
        try:
            c.data = link_parts([p for p in files if isinstance(p, bytes)])
            y = run_file(c.data, x, threads)
        except (EdgeLSTMError, ValueError, RuntimeError) as exc:
            c.verdict, c.data = f"refused: {str(exc)[:160]}", None
            continue
        y = y.reshape(ref.shape) if y.size == ref.size else y
        c.error = float(np.max(np.abs(y - ref))) if y.shape == ref.shape else float("inf")
    budget = max_error
    if budget is None:  # the default file's accuracy (cands[0]: every slot's default)
        base = cands[0].error if cands[0].error is not None else 0.0
        budget = max(FLOAT_BUDGET, ERROR_SLACK * (base if np.isfinite(base) else 0.0))
    for c in cands:
        if c.error is not None and not (np.isfinite(c.error) and c.error <= budget):
            c.verdict = f"error over budget ({c.error:.2e} > {budget:.2g})"
    survivors = [c for c in cands if c.data is not None and not c.verdict]
    if not survivors:
        raise UnsupportedError(
            "optimize",
            f"no whole-model variant is within max error {budget:.2g} of the framework: "
            + "; ".join(f"{c.name}: {c.verdict}" for c in cands)
            + " (raise --max-error, or compile without --optimize)",
        )
    if len(survivors) > 1:
        p50s = time_interleaved([c.data or b"" for c in survivors], x, runs, warmup, threads)
        for c, p50 in zip(survivors, p50s, strict=True):
            c.p50_ms = p50
    fastest = min(c.p50_ms or np.inf for c in survivors)
    ties = [c for c in survivors if (c.p50_ms or np.inf) <= fastest * (1 + TIE_MARGIN)]
    best = min(ties, key=lambda c: (c.error or 0.0, c.p50_ms or 0.0))
    best.chosen, best.verdict = True, "chosen"
    for c in survivors:
        if c is not best and c.p50_ms and best.p50_ms:
            c.verdict = (
                f"as fast (within {TIE_MARGIN:.0%}), less accurate"
                if c.p50_ms <= best.p50_ms * (1 + TIE_MARGIN)
                else f"slower by {100 * (c.p50_ms / best.p50_ms - 1):.0f}%"
            )
    order = sorted(cands, key=lambda c: (not c.chosen, c.p50_ms is None, c.p50_ms or 0.0))
    table = WholeOptimizeTable(order, budget, quantize, runs)
    record = {
        "objective": "latency",
        "quantize": quantize,
        "max_error": budget,
        "lstm_segments": [
            {"segment": k, "lowering": low} for k, low in zip(at, best.lowerings, strict=True)
        ],
        "error": best.error,
        "candidates": [
            {"lowerings": list(c.lowerings), "error": c.error, "p50_ms": c.p50_ms} for c in order
        ],
    }
    final = [p for p in pieces(best) if isinstance(p, bytes)]
    meta = {OPTIMIZE_NAME: json.dumps(record, sort_keys=True).encode()}
    return link_parts(final, metadata=meta), table


def optimize_whole(
    model: Any,
    options: CompileOptions | None = None,
    *,
    data: Any = None,
    max_error: float | None = None,
    runs: int = 100,
    warmup: int = 10,
    threads: int = 1,
    io_types: tuple[str, str] | None = None,
) -> tuple[bytes, WholeModel, tuple[str, ...], WholeOptimizeTable]:
    """The fastest whole file of a Keras model (or its :class:`WholeModel`) within
    ``max_error`` of Keras on ``data`` (module doc for the default budget).

    Returns (file bytes, the split model, TF op names, the table of every candidate).
    """
    from edgelstm.whole.keras_parts import convert_parts, tf_op_names
    from edgelstm.whole.segments import split_keras

    options = options if options is not None else CompileOptions(batch=None)
    whole = model if isinstance(model, WholeModel) else split_keras(model, options.seq_len)
    parts = convert_parts(whole, options, io_types)
    x = verification_inputs(whole, data)
    ref = np.asarray(whole.keras_model(x, training=False), dtype=np.float64)
    plain_io = options.quantize != "int8" and not (io_types and "int8" in io_types)
    slots = {
        k: lstm_variants(seg, options) if plain_io else [(FUSED, lambda: b"")]
        for k, seg in enumerate(whole.segments)
        if isinstance(seg, LstmSegment)
    }
    data_out, table = search(
        parts, slots, x, ref, quantize=options.quantize, max_error=max_error, runs=runs,
        warmup=warmup, threads=threads,
    )  # fmt: skip
    tf_parts = [p for p, s in zip(parts, whole.segments, strict=True) if _is_tf(s)]
    return data_out, whole, tf_op_names(tf_parts), table


def optimize_torch(
    module: Any,
    example_input: Any,
    options: CompileOptions | None = None,
    *,
    max_error: float | None = None,
    runs: int = 100,
    warmup: int = 10,
    threads: int = 1,
) -> tuple[bytes, WholeOptimizeTable]:
    """:func:`edgelstm.whole.torch_split.torch_to_tflite` with each ``nn.LSTM`` fused or
    unfused, whichever links into the fastest file within ``max_error`` of PyTorch on
    ``example_input`` (the same split and litert-torch segments; float or dynamic)."""
    import torch

    from edgelstm.targets.tflite import to_tflite
    from edgelstm.whole import torch_split as ts

    options = options or CompileOptions()
    if options.quantize not in ("none", "dynamic"):
        raise UnsupportedError(
            "tflite", "optimize_torch: quantize must be 'none' or 'dynamic' (no int8 yet)"
        )
    litert_torch = ts._litert_torch()
    was_training = module.training
    module.eval()
    parts: list[bytes] = []
    slots: dict[int, list[tuple[str, Callable[[], bytes]]]] = {}
    try:
        with torch.no_grad():
            x = _torch_inputs(torch, example_input)
            rows = [module(torch.from_numpy(row[None])).numpy() for row in x]
            ref = np.concatenate(rows).astype(np.float64)
            value = example_input
            for part in ts.split_torch(module):
                if part.kind == "lstm":
                    model, fixed = ts.lstm_part(part, value, options.quantize)
                    steps = fixed.seq_len
                    parts.append(to_tflite(model, fixed))
                    slots[len(parts) - 1] = [
                        (FUSED, lambda: b""),
                        *unfused_variants(model, fixed, int(steps)),
                    ]
                    value = part.module(value)[0]
                else:
                    with ts._quiet(litert_torch):
                        converted = litert_torch.convert(part.module, (value,))
                        segment = bytes(converted.model_content())
                        if options.quantize == "dynamic":
                            segment = ts._dynamic(segment)
                    parts.append(segment)
                    value = part.module(value)
    except EdgeLSTMError:
        raise
    except Exception as exc:  # noqa: BLE001 - litert-torch raises many kinds
        raise UnsupportedError(
            "tflite",
            f"litert-torch could not convert a segment ({type(exc).__name__}: "
            f"{str(exc).strip()[:200]}); {ts.ONNX_WAY_OUT}",
        ) from None
    finally:
        module.train(was_training)
    return search(
        parts, slots, x, ref, quantize=options.quantize, max_error=max_error, runs=runs,
        warmup=warmup, threads=threads,
    )  # fmt: skip


def _torch_inputs(torch: Any, example: Any) -> np.ndarray:
    """The example input, and for a batch of 1 seven more seeded N(0, 1) rows of its shape
    (one sequence is a thin basis for comparing two lowerings' dynamic-range error)."""
    x = np.asarray(example.detach().numpy(), dtype=np.float32)
    if x.shape[0] != 1 or not np.issubdtype(x.dtype, np.floating):
        return x
    more = np.random.default_rng(0).standard_normal((DEFAULT_SEQUENCES - 1, *x.shape[1:]))
    return np.concatenate([x, more.astype(np.float32)])


def _is_tf(seg: Any) -> bool:
    from edgelstm.whole.segments import KerasSegment

    return isinstance(seg, KerasSegment)


__all__ = [
    "OPTIMIZE_NAME",
    "WholeCandidate",
    "WholeOptimizeTable",
    "link_parts",
    "lstm_variants",
    "optimize_torch",
    "optimize_whole",
    "read_choice",
    "run_file",
    "search",
    "time_interleaved",
    "unfused_variants",
    "verification_inputs",
]

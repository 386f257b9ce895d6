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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgelstm.errors import EdgeLSTMError, InputDataError, UnsupportedError
from edgelstm.ir.options import CompileOptions, UnfusedOptions
from edgelstm.whole.segments import LstmSegment, WholeModel

OPTIMIZE_NAME = "edgelstm.optimize"
FLOAT_BUDGET = 1e-5
"""The default error budget's floor: a float whole file equals Keras to this."""
ERROR_SLACK = 1.25
"""The default budget allows this factor over the default (fused) file's own error."""
MAX_COMBINATIONS = 16
DEFAULT_SEQUENCES = 8
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
            f"{self.max_error:.2g} vs Keras; {self.runs} interleaved timed runs per survivor (p50)"
        )
        table = text_table(("LSTM lowering(s)", "max error", "p50 ms", "x best", "verdict"), rows)
        return head + "\n" + table

    def __str__(self) -> str:
        return self.format()


def lstm_variants(
    seg: LstmSegment, options: CompileOptions
) -> list[tuple[str, Callable[[], bytes]]]:
    """(label, build) of each lowering of one LSTM segment: fused first, then the unfused
    automatic schedule and the alternatives the LSTM-only search also times."""
    from edgelstm.targets.tflite.unfused.emit import (
        UNROLL_BUDGET,
        choose_schedule,
        recurrent_bytes,
        to_tflite_unfused,
        while_plan,
    )
    from edgelstm.whole.keras_tflite import convert_lstm_segment

    out: list[tuple[str, Callable[[], bytes]]] = [
        (FUSED, lambda: convert_lstm_segment(seg, options, io=False))
    ]
    if options.quantize not in ("none", "dynamic"):
        return out
    model, q, steps = seg.model, options.quantize, seg.input_shape[0]
    auto = choose_schedule(model, steps, q, options.batch)
    schedules = [auto]
    if auto[0] == "unrolled":
        schedules.append(("while", *while_plan(model, steps, q, options.batch)))
    elif steps is not None and recurrent_bytes(model, q) * steps <= 4 * UNROLL_BUDGET:
        schedules.append(("unrolled", steps, None))
    if auto[0] == "while" and auto[1] != 1:
        schedules.append(("while", *while_plan(model, steps, q, options.batch, chunk=1)))
    for sched, chunk, segment in schedules:
        label = "unfused unrolled" if sched == "unrolled" else f"unfused WHILE {chunk} step/trip"
        opts = dataclasses.replace(
            options,
            seq_len=steps,
            time_major=False,
            unfused=UnfusedOptions(sched, chunk, segment),  # type: ignore[arg-type]
        )

        def build(o: CompileOptions = opts) -> bytes:
            data = to_tflite_unfused(model, o)
            if not seg.masked:
                return data
            from edgelstm.whole.masking import add_mask_tail

            full = to_tflite_unfused(dataclasses.replace(model, return_sequences=True), o)
            return add_mask_tail(full, return_sequences=model.return_sequences, steps=steps)

        out.append((label, build))
    return out


def link_parts(parts: Sequence[bytes], metadata: dict[str, bytes] | None = None) -> bytes:
    """Parts in series, each part's first output feeding the next (an unfused LSTM's final
    states are further outputs nobody reads: computed and dropped)."""
    from edgelstm.targets.tflite.link import link_graph

    n = len(parts)
    metadata = {**_stale_state_entry(parts), **(metadata or {})}
    return link_graph(
        list(parts),
        inputs=[(0, 0)],
        edges={(k, 0): (k - 1, 0) for k in range(1, n)},
        outputs=[(n - 1, 0)],
        input_names=["input"],
        output_names=["output"],
        metadata=metadata,
    )


def _stale_state_entry(parts: Sequence[bytes]) -> dict[str, bytes]:
    """The one LSTM part's ``edgelstm`` entry without ``state_io`` / ``final_states``: an
    unfused part's final-state outputs are not outputs of the linked file, and a runner
    that read them would look for tensors the file does not expose."""
    from edgelstm.targets.tflite.link_merge import text
    from edgelstm.targets.tflite.metadata import METADATA_NAME
    from edgelstm.targets.tflite.schema import decode_model

    found = []
    for data in parts:
        model = decode_model(bytes(data))
        for m in model.metadata or []:
            if text(m.name) == METADATA_NAME:
                raw = bytes(memoryview(model.buffers[int(m.buffer)].data).cast("B"))
                found.append(json.loads(raw.decode()))
    if len(found) != 1 or not {"state_io", "final_states"} & set(found[0]):
        return {}
    meta = {k: v for k, v in found[0].items() if k not in ("state_io", "final_states")}
    return {METADATA_NAME: json.dumps(meta, sort_keys=True).encode()}


def verification_inputs(whole: WholeModel, data: Any, n: int = DEFAULT_SEQUENCES) -> np.ndarray:
    """``data`` (the model's inputs) or seeded ones: N(0, 1), or token ids below the
    Embedding's vocabulary size for an integer input."""
    shape = [d if d is not None else 50 for d in whole.input_shape]
    if data is not None:
        x = np.asarray(data)
        if x.ndim != len(shape) + 1 or list(x.shape[1:]) != list(shape):
            raise InputDataError(
                f"data: expected [N, {', '.join(map(str, shape))}] (the model's input), "
                f"found {list(x.shape)}"
            )
        return x.astype(whole.input_dtype)
    rng = np.random.default_rng(0)
    if np.issubdtype(np.dtype(whole.input_dtype), np.integer):
        vocab = min(
            (
                int(layer.input_dim)
                for seg in whole.segments
                for layer in seg.layers
                if hasattr(layer, "input_dim")
            ),
            default=2,
        )
        return rng.integers(0, vocab, (n, *shape)).astype(whole.input_dtype)
    return rng.standard_normal((n, *shape)).astype(np.float32)


def run_file(data: bytes, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """One sequence per invoke on LiteRT's Interpreter (as the whole-model tests run it)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=threads)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if list(inp["shape"]) != [1, *x.shape[1:]]:
        it.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
        it.allocate_tensors()
    ys = []
    for row in x:
        it.set_tensor(inp["index"], row[None].astype(inp["dtype"]))
        it.invoke()
        ys.append(it.get_tensor(out["index"])[0].astype(np.float64))
    return np.stack(ys)


def time_interleaved(
    files: Sequence[bytes], x: np.ndarray, runs: int = 100, warmup: int = 10, threads: int = 1
) -> list[float]:
    """p50 ms of one invoke of each file on input ``x[0:1]``, timed round-robin in blocks of
    10 with the order rotated each round (background load hits every file alike)."""
    from ai_edge_litert.interpreter import Interpreter

    its = []
    for data in files:
        it = Interpreter(model_content=data, num_threads=threads)
        it.allocate_tensors()
        inp = it.get_input_details()[0]
        if list(inp["shape"]) != [1, *x.shape[1:]]:
            it.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
            it.allocate_tensors()
        it.set_tensor(inp["index"], x[:1].astype(inp["dtype"]))
        its.append(it)
    for _ in range(warmup):
        for it in its:
            it.invoke()
    times: list[list[float]] = [[] for _ in its]
    block, clock = 10, time.perf_counter_ns
    for k in range(-(-runs // block)):
        for j in range(len(its)):
            i = (j + k) % len(its)
            for _ in range(min(block, runs - k * block)):
                t0 = clock()
                its[i].invoke()
                times[i].append((clock() - t0) / 1e6)
    return [float(np.median(t)) for t in times]


def _combinations(variants: list[list[str]]) -> list[tuple[str, ...]]:
    combos = list(itertools.product(*variants))
    if len(combos) <= MAX_COMBINATIONS:
        return combos
    kinds = [v for v in variants[0] if all(v in other for other in variants)]
    return [tuple(v for _ in variants) for v in kinds]


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
    """The fastest whole file of ``model`` (a Keras model or its :class:`WholeModel`) within
    ``max_error`` of Keras on ``data`` (module doc for the default budget).

    Returns (file bytes, the split model, TF op names, the table of every candidate).
    """
    from edgelstm.measure.optimize import TIE_MARGIN
    from edgelstm.whole.keras_tflite import convert_parts, tf_op_names
    from edgelstm.whole.segments import split_keras

    options = options if options is not None else CompileOptions(batch=None)
    if max_error is not None and not (max_error > 0 and np.isfinite(max_error)):
        raise InputDataError(f"max_error: expected a positive number, found {max_error!r}")
    whole = model if isinstance(model, WholeModel) else split_keras(model, options.seq_len)
    parts = convert_parts(whole, options, io_types)
    x = verification_inputs(whole, data)
    ref = np.asarray(whole.keras_model(x, training=False), dtype=np.float64)

    lstm_at = [k for k, s in enumerate(whole.segments) if isinstance(s, LstmSegment)]
    plain_io = options.quantize != "int8" and not (io_types and "int8" in io_types)
    builds: dict[tuple[int, str], Callable[[], bytes]] = {}
    labels: list[list[str]] = []
    for k in lstm_at:
        seg = whole.segments[k]
        assert isinstance(seg, LstmSegment)
        variants = lstm_variants(seg, options) if plain_io else [(FUSED, lambda: b"")]
        labels.append([label for label, _ in variants])
        builds |= {(k, label): build for label, build in variants}
    built: dict[tuple[int, str], bytes | str] = {(k, FUSED): parts[k] for k in lstm_at}

    def part(k: int, label: str) -> bytes | str:
        if (k, label) not in built:
            try:
                built[(k, label)] = builds[(k, label)]()
            except EdgeLSTMError as exc:
                built[(k, label)] = str(getattr(exc, "reason", exc))
        return built[(k, label)]

    cands = [WholeCandidate(combo) for combo in _combinations(labels)]
    for c in cands:
        pieces = list(parts)
        for k, label in zip(lstm_at, c.lowerings, strict=True):
            piece = part(k, label)
            if isinstance(piece, str):
                c.verdict = f"refused: {piece}"
                break
            pieces[k] = piece
        if c.verdict:
            continue
        try:
            c.data = link_parts(pieces)
            y = run_file(c.data, x, threads)
        except (EdgeLSTMError, ValueError, RuntimeError) as exc:
            c.verdict, c.data = f"refused: {str(exc)[:160]}", None
            continue
        y = y.reshape(ref.shape) if y.size == ref.size else y
        c.error = float(np.max(np.abs(y - ref))) if y.shape == ref.shape else float("inf")
    default = cands[0]  # all fused: the default conversion
    budget = max_error
    if budget is None:
        base = default.error if default.error is not None and np.isfinite(default.error) else 0
        budget = max(FLOAT_BUDGET, ERROR_SLACK * base)
    for c in cands:
        if c.error is not None and not (np.isfinite(c.error) and c.error <= budget):
            c.verdict = f"error over budget ({c.error:.2e} > {budget:.2g})"
    survivors = [c for c in cands if c.data is not None and not c.verdict]
    if not survivors:
        raise UnsupportedError(
            "optimize",
            f"no whole-model variant is within max error {budget:.2g} of Keras: "
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
    table = WholeOptimizeTable(order, budget, options.quantize, runs)
    record = {
        "objective": "latency",
        "quantize": options.quantize,
        "max_error": budget,
        "lstm_segments": [
            {"segment": k, "lowering": low} for k, low in zip(lstm_at, best.lowerings, strict=True)
        ],
        "error": best.error,
        "candidates": [
            {"lowerings": list(c.lowerings), "error": c.error, "p50_ms": c.p50_ms} for c in order
        ],
    }
    pieces = [
        part(k, best.lowerings[lstm_at.index(k)]) if k in lstm_at else p
        for k, p in enumerate(parts)
    ]
    data_out = link_parts(
        [p for p in pieces if isinstance(p, bytes)],
        metadata={OPTIMIZE_NAME: json.dumps(record, sort_keys=True).encode()},
    )
    tf_parts = [p for p, s in zip(parts, whole.segments, strict=True) if _is_tf(s)]
    return data_out, whole, tf_op_names(tf_parts), table


def _is_tf(seg: Any) -> bool:
    from edgelstm.whole.segments import KerasSegment

    return isinstance(seg, KerasSegment)


def read_choice(data: bytes) -> dict[str, Any] | None:
    """The ``edgelstm.optimize`` entry of a file (None when it was not optimized)."""
    from edgelstm.targets.tflite.link_merge import text
    from edgelstm.targets.tflite.schema import decode_model

    model = decode_model(bytes(data))
    for m in model.metadata or []:
        if text(m.name) == OPTIMIZE_NAME and 0 <= int(m.buffer) < len(model.buffers):
            raw = bytes(memoryview(model.buffers[int(m.buffer)].data).cast("B"))
            return json.loads(raw.decode())
    return None


__all__ = [
    "OPTIMIZE_NAME",
    "WholeCandidate",
    "WholeOptimizeTable",
    "link_parts",
    "lstm_variants",
    "optimize_whole",
    "read_choice",
    "run_file",
    "time_interleaved",
    "verification_inputs",
]

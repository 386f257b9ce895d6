"""How fast and how big: latency percentiles, throughput, file size and peak memory.

Fairness on a shared, noisy machine comes from interleaving, not from quiet: all models are
loaded in one process and timed round-robin in short blocks (A A.. B B.. C C.., then the
order rotated), so a burst of background load hits every model alike, and ratios (to the
fastest model's median) stay meaningful even when absolute numbers drift. Each timed run
is one sequence batch from zero state (the TFLite variable tensors are reset), with the
input prepared (quantized) beforehand, so the clock sees what a deployed model's
``invoke`` costs.

Peak memory is the RSS high-water mark (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of
a fresh subprocess per model that imports the runtime, loads the model and runs it; the
model's own cost is the growth of the current RSS across loading and running (see
:func:`peak_memory`). ``tracemalloc`` would be wrong:
it sees only Python allocations, not the interpreter's tensor arena or onnxruntime's
buffers, and the high-water mark of one shared process would mix all models.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm._io import progress
from edgelstm.errors import InputDataError, ModelFileError

DEFAULT_SEQ_LEN = 50
BLOCK = 10


@dataclass
class BenchResult:
    """Latency and footprint of one model (``ratio`` = p50 over the fastest model's p50)."""

    name: str
    path: str
    format: str
    backend: str
    threads: int
    quantization: str
    input_shape: list[int]
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    sequences_per_s: float
    steps_per_s: float
    size_bytes: int
    ratio: float = 1.0
    peak_rss_mb: float | None = None
    model_rss_mb: float | None = None
    arena_bytes: int | None = None
    """TFLite Micro (backend ``tflm``): the smallest tensor arena, the RAM a device reserves."""
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, latencies: bool = True) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not latencies:
            data.pop("latencies_ms")
        return data


def bench_input(runner: Any, batch: int | None, seq_len: int | None, seed: int = 0) -> np.ndarray:
    """Seeded N(0, 1) input of the runner's shape; dynamic dims from ``batch``/``seq_len``."""
    shape = list(runner.input_shape)
    t_axis, b_axis = (0, 1) if runner.info.time_major else (1, 0)
    if shape[b_axis] < 1:
        shape[b_axis] = batch or 1
    if shape[t_axis] < 1:
        shape[t_axis] = seq_len or DEFAULT_SEQ_LEN
    if any(d < 1 for d in shape):
        raise InputDataError(f"{runner.path}: cannot choose a size for input shape {shape}")
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return runner.prepare(x)


def _names(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


def bench(
    paths: Sequence[str | os.PathLike[str]],
    *,
    threads: int = 1,
    runs: int = 200,
    warmup: int = 20,
    backend: str = "auto",
    batch: int | None = None,
    seq_len: int | None = None,
    block: int = BLOCK,
    memory: bool = True,
    show_progress: bool | None = None,
    probe: bool = True,
) -> list[BenchResult]:
    """Benchmark ``paths`` interleaved; results in input order, ``ratio`` to the fastest.

    ``probe``: run each file once in a child process before loading it here, so that a
    runtime crash is a ModelFileError (see :func:`edgelstm.runtime.select.open_runner`);
    False for files edgelstm has just written itself. ``show_progress``: a bar on a terminal
    stderr (None = when the CLI turned bars on; see :func:`edgelstm._io.progress`); it
    advances between timed blocks, outside the clock.
    """
    from edgelstm.runtime.select import open_runner

    if not paths:
        raise InputDataError("bench: expected at least one model")
    if runs < 1 or warmup < 0 or block < 1:
        raise InputDataError("bench: runs and block must be >= 1, warmup >= 0")
    ps = [Path(p) for p in paths]
    runners = []
    try:
        for p in ps:
            runners.append(open_runner(p, backend, threads, probe=probe))
    except BaseException:
        for r in runners:
            r.close()
        raise
    try:
        inputs = [bench_input(r, batch, seq_len) for r in runners]
        times: list[list[float]] = [[] for _ in runners]
        n = len(runners)
        with progress(n * (warmup + runs), "benchmarking", show_progress) as advance:
            for _ in range(warmup):
                for r, x in zip(runners, inputs, strict=True):
                    r.run_prepared(x)
                    advance()
            rounds = -(-runs // block)
            clock = time.perf_counter_ns
            for k in range(rounds):
                count = min(block, runs - k * block)
                for j in range(n):
                    i = (j + k) % n  # rotate the order every round
                    r, x, out = runners[i], inputs[i], times[i]
                    for _ in range(count):
                        t0 = clock()
                        r.run_prepared(x)
                        out.append((clock() - t0) / 1e6)
                    advance(count)
        results = [
            _result(nm, r, x, t, warmup)
            for nm, r, x, t in zip(_names(ps), runners, inputs, times, strict=True)
        ]
    finally:
        for r in runners:
            r.close()
    fastest = min(r.p50_ms for r in results)
    for r in results:
        r.ratio = r.p50_ms / fastest if fastest > 0 else 1.0
    if memory:
        with progress(len(results), "measuring memory", show_progress) as advance:
            for r in results:
                if r.backend == "tflm":  # its arena is the memory figure (arena_bytes)
                    advance()
                    continue
                r.peak_rss_mb, r.model_rss_mb = peak_memory(
                    r.path, r.backend, threads, r.input_shape
                )
                advance()
    return results


def _result(name: str, runner: Any, x: np.ndarray, times: list[float], warmup: int) -> BenchResult:
    t = np.asarray(times)
    p50, p90, p99 = (float(v) for v in np.percentile(t, [50, 90, 99]))
    t_axis, b_axis = (0, 1) if runner.info.time_major else (1, 0)
    batch, steps = x.shape[b_axis], x.shape[t_axis]
    return BenchResult(
        name=name,
        path=str(runner.path),
        format=runner.info.format,
        backend=runner.backend,
        threads=runner.threads,
        quantization=runner.info.quantization,
        input_shape=list(x.shape),
        runs=len(times),
        warmup=warmup,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        mean_ms=float(t.mean()),
        sequences_per_s=1e3 * batch / p50,
        steps_per_s=1e3 * batch * steps / p50,
        size_bytes=runner.info.size_bytes,
        arena_bytes=getattr(runner.impl, "arena_size", None) if runner.backend == "tflm" else None,
        latencies_ms=[float(v) for v in t],
    )


_PROBE = """
import json, os, resource, sys
def rss_kb():
    try:
        with open('/proc/self/statm') as fh:
            return int(fh.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') // 1024
    except (OSError, ValueError, IndexError):
        return None
args = json.loads(sys.argv[1])
from edgelstm.runtime import select
if args["path"].lower().endswith(".onnx"):
    import onnxruntime
else:
    select._interpreter_class(args["backend"])
import numpy as np
base = rss_kb()
with select.open_runner(args["path"], args["backend"], args["threads"], probe=False) as r:
    x = r.prepare(np.zeros(args["shape"], np.float32))
    for _ in range(5):
        r.run_prepared(x)
    loaded = rss_kb()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_kb": base, "loaded_kb": loaded, "peak_kb": peak}))
"""


def peak_memory(
    path: str, backend: str, threads: int, shape: list[int]
) -> tuple[float | None, float | None]:
    """(peak RSS MB, RSS MB the loaded model adds) from a fresh subprocess; Nones on failure.

    The subprocess dying by a signal (a runtime crash) is a :class:`ModelFileError`, as in
    :func:`edgelstm.runtime.sandbox.run_isolated`; it is not probed again (it is a child already).

    The peak is the process high-water mark (``ru_maxrss``). The model's own share is the
    *current* RSS (``/proc/self/statm``) after loading and running minus before: a
    high-water difference would read 0 whenever importing the runtime peaked higher than
    the model ever needs.
    """
    try:
        import resource  # noqa: F401 - POSIX only
    except ImportError:
        return None, None
    args = json.dumps({"path": path, "backend": backend, "threads": threads, "shape": shape})
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        return None, None
    if proc.returncode < 0:
        from edgelstm.runtime.sandbox import crash_error

        label = "onnxruntime" if backend == "ort" else "the TFLite interpreter"
        raise crash_error(path, label, -proc.returncode)
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, None
    added = None
    if data["base_kb"] is not None and data["loaded_kb"] is not None:
        added = max(data["loaded_kb"] - data["base_kb"], 0) / 1024
    return data["peak_kb"] / 1024, added


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned table (first column left-aligned, the rest right-aligned)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if k == 0 else str(c).rjust(w)
            for k, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


BENCH_HEADERS = (
    "model", "backend", "quant", "p50 ms", "p90 ms", "p99 ms", "x fastest",
    "seq/s", "steps/s", "size KB", "peak MB", "model MB",
)  # fmt: skip


def bench_rows(results: Sequence[BenchResult]) -> list[list[str]]:
    def mb(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    return [
        [
            r.name,
            f"{r.backend}/{r.threads}t",
            r.quantization,
            f"{r.p50_ms:.3f}",
            f"{r.p90_ms:.3f}",
            f"{r.p99_ms:.3f}",
            f"{r.ratio:.2f}",
            f"{r.sequences_per_s:,.0f}",
            f"{r.steps_per_s:,.0f}",
            f"{r.size_bytes / 1024:,.1f}",
            mb(r.peak_rss_mb),
            mb(r.model_rss_mb),
        ]
        for r in results
    ]


def format_results(results: Sequence[BenchResult]) -> str:
    """The table ``edgelstm bench`` prints."""
    if not results:
        raise ModelFileError("bench: no results")
    r0 = results[0]
    head = f"{r0.runs} timed runs after {r0.warmup} warm-up, interleaved, input {r0.input_shape}"
    text = head + "\n" + text_table(BENCH_HEADERS, bench_rows(results))
    for r in results:
        if r.arena_bytes is not None:
            text += (
                f"\n{r.name}: TFLite Micro arena {r.arena_bytes:,} B ({r.arena_bytes / 1024:.1f} "
                "KB RAM); latency is TFLM's reference kernels on this CPU, a proxy only"
            )
    return text

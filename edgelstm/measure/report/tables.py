"""What the report says, independent of HTML or Markdown: tables, sentences, figure captions.

Every column that would read "-" in every row is dropped and replaced by one sentence saying
why the number does not exist; a column with some "-" gets that sentence too. A number that
is the same for every row (the source framework's own error, the reference file) is a
sentence, not a column, so no row appears to own it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgelstm.measure.bench import BENCH_HEADERS, bench_rows

if TYPE_CHECKING:
    from edgelstm.measure.report import Report

Table = tuple[list[str], list[list[str]], list[str]]
"""(headers, rows, sentences to print under the table)."""

ACCURACY_HEADERS = (
    "model", "quant", "reference", "max abs", "RMSE", "cosine", "max LSB", "growth",
)  # fmt: skip
DASH_WHY = {
    "max LSB": "max LSB (the error in steps of the output's quantization scale) exists only "
    "for a model with a quantized output",
    "growth": "growth (mean error over the last quarter of time steps divided by the first "
    "quarter's) needs an output at every time step, at least 4 of them",
    "model MB": "model MB was not measured (--no-memory, or its child process failed)",
    "arena KB": "arena KB (the RAM TFLite Micro needs) is measured only on the tflm backend",
}
ARENA = (
    "arena KB: the smallest tensor arena TFLite Micro runs the file in (found by search on "
    "its own interpreter), the RAM a microcontroller must reserve; on tflm rows size KB is "
    "the flash the model takes (TFLM's own code not counted), and latency is TFLM's "
    "reference kernels on this CPU, a proxy for a device only."
)
MODEL_MB = (
    "model MB: the resident memory the loaded model adds, measured for each file in its own "
    "child process (the process peak is not shown: it is dominated by importing the runtime "
    "and reads the same for every file)."
)
FIGURES = {  # name -> (heading, caption)
    "test_accuracy": (
        "Test-set accuracy",
        "Share of the test set each variant classifies correctly, each run on its own "
        "interpreter; grey is the float64 reference.",
    ),
    "accuracy_vs_latency": (
        "Accuracy vs latency",
        "Each file's median latency against its max abs error (log scale); lower left is better.",
    ),
    "error_per_step": (
        "Error per time step",
        "Max abs error at each time step vs the float64 reference; a rising line means the "
        "error accumulates through the recurrence.",
    ),
    "latency": (
        "Latency distribution",
        "Per-run latency of one input batch: box p25-p75 with the median, whiskers p1-p99.",
    ),
    "size": ("Model size", "File size on disk."),
}


def figure_text(name: str) -> tuple[str, str]:
    """(heading, caption); an unknown name still reads as words, never as an identifier."""
    return FIGURES.get(name, (name.replace("_", " ").strip().capitalize(), ""))


def _g(v: float | None, spec: str = ".3e") -> str:
    return "-" if v is None else format(v, spec)


def _prune(headers: Sequence[str], rows: list[list[str]], skip: set[int]) -> Table:
    """Drop all-"-" columns (rows in ``skip`` do not count), explain each "-" once."""
    keep, said = [0], []
    for j, h in enumerate(headers[1:], start=1):
        cells = [r[j] for i, r in enumerate(rows) if i not in skip]
        dashes = sum(c == "-" for c in cells)
        why = DASH_WHY.get(h, f"{h} is not available for that model")
        if cells and dashes == len(cells):
            said.append(f"No {h} column: {why}.")
            continue
        if dashes:
            said.append(f'"-" under {h}: {why}.')
        keep.append(j)
    return [headers[j] for j in keep], [[r[j] for j in keep] for r in rows], said


def accuracy_table(rep: Report) -> Table:
    """Per-file error vs the float64 reference; shared facts become sentences."""
    rows: list[list[str]] = []
    skip: set[int] = set()
    for i, (b, v) in enumerate(zip(rep.bench, rep.verify, strict=True)):
        if v is None:
            skip.add(i)
            rows.append([b.name, b.quantization, "-", "not verified"] + ["-"] * 4)
            continue
        rows.append(
            [
                b.name,
                v.quantization,
                v.reference,
                _g(v.max_abs),
                _g(v.rmse),
                f"{v.cosine:.6f}",
                _g(v.max_lsb, ".2f"),
                _g(v.error.growth, ".2f"),
            ]
        )
    said = []
    refs = {r[2] for i, r in enumerate(rows) if i not in skip}
    if len(refs) == 1:
        said.append(f"Reference for every file: the float64 reference of {refs.pop()}.")
        rows = [r[:2] + r[3:] for r in rows]
        headers = [h for h in ACCURACY_HEADERS if h != "reference"]
    else:
        headers = list(ACCURACY_HEADERS)
    if skip:
        said.append("Files marked not verified: the notes say why.")
    headers, rows, dash = _prune(headers, rows, skip)
    return headers, rows, said + _framework(rep) + dash


def _framework(rep: Report) -> list[str]:
    """One sentence per source framework run: its own error is the floor, not a row's."""
    seen: dict[tuple[str, str], float] = {}
    for v in rep.verify:
        if v is not None and v.framework and v.framework_error is not None:
            seen.setdefault((v.framework, v.reference), v.framework_error.max_abs)
    return [
        f"The source framework ({fw}) running the source model itself differs from the "
        f"float64 reference by max abs {err:.3e}: no compiled file can be expected closer."
        for (fw, _ref), err in seen.items()
    ]


def speed_table(rep: Report) -> Table:
    """The bench table without the process-peak column (it measures the runtime, not a file)."""
    drop = BENCH_HEADERS.index("peak MB")
    headers = [h for j, h in enumerate(BENCH_HEADERS) if j != drop]
    rows = [[c for j, c in enumerate(r) if j != drop] for r in bench_rows(rep.bench)]
    arena = any(b.arena_bytes is not None for b in rep.bench)
    if arena:  # beside the file size: RAM next to flash
        at = headers.index("size KB") + 1
        headers.insert(at, "arena KB")
        for r, b in zip(rows, rep.bench, strict=True):
            r.insert(at, "-" if b.arena_bytes is None else f"{b.arena_bytes / 1024:,.1f}")
    headers, rows, said = _prune(headers, rows, set())
    if "model MB" in headers:
        said.insert(0, MODEL_MB)
    if arena:
        said.insert(0, ARENA)
    return headers, rows, said


def missing_figures(rep: Report) -> list[str]:
    """Why a figure a reader would expect is absent."""
    verified = [v for v in rep.verify if v is not None]
    if "error_per_step" in rep.figures or not verified:
        return []
    if all(len(v.output_shape) < 3 for v in verified):
        return [
            "No error-per-time-step plot: these models return only the last time step's "
            f"output ({verified[0].output_shape}), so there is one error per sequence, not one "
            "per step."
        ]
    return ["No error-per-time-step plot: no model returned a per-step output to compare."]


def summary(rep: Report) -> str:
    b = rep.bench[0]
    threads = "1 thread" if b.threads == 1 else f"{b.threads} threads"
    return (
        f"{len(rep.bench)} model file(s); {b.runs} timed runs each after {b.warmup} warm-up, "
        f"interleaved round-robin, {threads}, input {b.input_shape}. "
        "Errors are max abs / RMSE against the float64 reference."
    )


def notes(rep: Report) -> list[str]:
    """Report notes, then per-model notes; a note every model shares is listed once."""
    per_model = [
        (b.name, v.notes) for b, v in zip(rep.bench, rep.verify, strict=True) if v is not None
    ]
    shared = set.intersection(*(set(n) for _, n in per_model)) if len(per_model) > 1 else set()
    out = list(rep.notes)
    if shared:
        out += [f"all models: {n}" for n in per_model[0][1] if n in shared]
    for name, model_notes in per_model:
        out.extend(f"{name}: {n}" for n in model_notes if n not in shared)
    return out

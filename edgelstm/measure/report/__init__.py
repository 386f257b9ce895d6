"""``edgelstm report``: verify + bench several variants, write one HTML file and a Markdown twin.

The HTML is self-contained (figures embedded as base64 PNG, inline CSS, no scripts or
external fetches), so it can be mailed or attached to a CI run and still open offline. The
Markdown twin carries the same tables and links the same PNGs, written beside it in
``<stem>_files/``, for code review and wikis. matplotlib and rich are imported only here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgelstm._io import progress
from edgelstm.errors import EdgeLSTMError, InputDataError
from edgelstm.measure.bench import BenchResult, bench
from edgelstm.measure.verify import VerifyResult, verify

DEFAULT_MAX_ERROR = 1e-3
"""The error budget the verdict is stated for when none is given (max abs vs float64)."""


@dataclass
class Report:
    """Everything a report shows (``figures``: name -> PNG bytes)."""

    title: str
    models: list[str]
    verify: list[VerifyResult | None]
    bench: list[BenchResult]
    figures: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    max_error: float = DEFAULT_MAX_ERROR


def build_report(
    models: Sequence[str | os.PathLike[str]],
    *,
    against: Any = None,
    data: Any = None,
    threads: int = 1,
    runs: int = 100,
    warmup: int = 10,
    backend: str = "auto",
    seq_len: int | None = None,
    memory: bool = True,
    title: str | None = None,
    show_progress: bool | None = None,
    max_error: float = DEFAULT_MAX_ERROR,
) -> Report:
    """Verify each model against ``against`` (or its recovered source), bench them interleaved
    and draw the figures. A model whose verification fails is reported, not fatal.
    ``max_error``: the error budget the closing verdict picks a file for."""
    from edgelstm.measure.report import plots

    if not (isinstance(max_error, (int, float)) and 0 < max_error < float("inf")):
        raise InputDataError(f"--max-error: expected a positive number, found {max_error!r}")
    paths = [str(m) for m in models]
    results: list[VerifyResult | None] = []
    notes: list[str] = []
    with progress(len(paths), "verifying", show_progress) as advance:
        for p in paths:
            try:
                results.append(
                    verify(p, against, data, backend=backend, threads=threads, seq_len=seq_len)
                )
            except EdgeLSTMError as exc:
                results.append(None)
                notes.append(f"{Path(p).name}: not verified ({exc})")
            advance()
    timings = bench(
        paths,
        threads=threads,
        runs=runs,
        warmup=warmup,
        backend=backend,
        seq_len=seq_len,
        memory=memory,
        show_progress=show_progress,
    )
    names = [b.name for b in timings]
    figures = {
        "latency": plots.latency_distribution([(b.name, b.latencies_ms) for b in timings]),
        "size": plots.size_bars([(b.name, b.size_bytes) for b in timings]),
    }
    steps = [(n, v.error.per_step_max_abs) for n, v in zip(names, results, strict=True) if v]
    if any(len(s) for _, s in steps):
        figures["error_per_step"] = plots.error_per_step([(n, s) for n, s in steps if len(s)])
    points = [
        (n, b.p50_ms, v.max_abs)
        for n, b, v in zip(names, timings, results, strict=True)
        if v is not None
    ]
    if points:
        figures["accuracy_vs_latency"] = plots.accuracy_vs_latency(points)
    return Report(
        title=title or "edgelstm report",
        models=paths,
        verify=results,
        bench=timings,
        figures=figures,
        notes=notes,
        max_error=max_error,
    )


def write_report(
    rep: Report, html_path: str | os.PathLike[str], md_path: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """Write the HTML file and its Markdown twin (default: same name, ``.md``), atomically."""
    from edgelstm._io import write_bytes_atomic
    from edgelstm.measure.report.render import render_html, render_markdown

    html = Path(html_path)
    md = Path(md_path) if md_path is not None else html.with_suffix(".md")
    assets = md.parent / f"{md.stem}_files"
    write_bytes_atomic(html, render_html(rep).encode("utf-8"))
    if rep.figures:
        assets.mkdir(exist_ok=True)
        for name, png in rep.figures.items():
            write_bytes_atomic(assets / f"{name}.png", png)
    write_bytes_atomic(md, render_markdown(rep, assets.name).encode("utf-8"))
    return html, md


def report(
    models: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] = "report.html",
    markdown: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Report:
    """Build a report (see :func:`build_report` for ``options``) and write it to ``out``."""
    rep = build_report(models, **options)
    write_report(rep, out, markdown)
    return rep


__all__ = ["DEFAULT_MAX_ERROR", "Report", "build_report", "report", "write_report"]

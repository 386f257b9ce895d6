"""The report's figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

``Figure`` + ``FigureCanvasAgg`` are used directly instead of pyplot: no global figure
state, no GUI backend selection, nothing left open between calls, so the report can be built
inside any process (a test, a notebook, a server) without touching its matplotlib setup.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

DPI = 150
"""A 7.5 in figure is 1125 px, shown at most 900 px wide: sharp on a high-DPI screen and
its 10 pt labels read at about the page's text size."""
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _figure(width: float = 7.5, height: float = 3.8) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def error_per_step(series: Sequence[tuple[str, Sequence[float]]]) -> bytes:
    """Max abs error at each time step, one line per variant (log scale when positive)."""
    fig, ax = _figure()
    positive = all(min(v) > 0 for _, v in series if len(v))
    for k, (name, values) in enumerate(series):
        ax.plot(range(len(values)), values, label=name, color=COLORS[k % len(COLORS)], lw=1.4)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("time step")
    ax.set_ylabel("max abs error vs float64 reference")
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _png(fig)


def latency_distribution(series: Sequence[tuple[str, Sequence[float]]]) -> bytes:
    """Box plot of per-run latencies (whiskers at p1/p99, no outlier dots)."""
    fig, ax = _figure(7.5, 0.8 + 0.45 * max(len(series), 2))
    data = [list(v) for _, v in series]
    ax.boxplot(data, vert=False, whis=(1, 99), showfliers=False, patch_artist=True)
    ax.set_yticks(range(1, len(series) + 1), [n for n, _ in series], fontsize=8)
    ax.invert_yaxis()
    lows = [float(np.percentile(v, 1)) for v in data if v]
    highs = [float(np.percentile(v, 99)) for v in data if v]
    if lows and min(lows) > 0 and max(highs) / min(lows) > 10:
        ax.set_xscale("log")  # a fast file's box is not squashed by a slow file's whisker
    ax.set_xlabel("latency per sequence batch (ms)")
    ax.grid(True, axis="x", alpha=0.3)
    return _png(fig)


def size_bars(series: Sequence[tuple[str, int]]) -> bytes:
    """File size of each model (KB)."""
    fig, ax = _figure(7.5, 0.8 + 0.45 * max(len(series), 2))
    names = [n for n, _ in series]
    kb = [s / 1024 for _, s in series]
    bars = ax.barh(names, kb, color=[COLORS[k % len(COLORS)] for k in range(len(series))])
    ax.bar_label(bars, labels=[f"{v:,.1f} KB" for v in kb], fontsize=8, padding=3)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("file size (KB)")
    ax.margins(x=0.2)
    return _png(fig)


def accuracy_vs_latency(points: Sequence[tuple[str, float, float]]) -> bytes:
    """(name, p50 ms, max abs error): the trade-off in one picture (log error axis).

    A label sits on the side of its point facing the middle of the plot, so a point at the
    right edge is labelled to its left instead of running off the axes.
    """
    fig, ax = _figure()
    xs = [ms for _, ms, _ in points]
    middle = (min(xs) + max(xs)) / 2 if xs else 0.0
    for k, (name, ms, err) in enumerate(points):
        ax.scatter([ms], [err], color=COLORS[k % len(COLORS)], s=40, zorder=3)
        left = ms > middle
        ax.annotate(
            name,
            (ms, err),
            textcoords="offset points",
            xytext=(-6 if left else 6, 4),
            ha="right" if left else "left",
            fontsize=8,
        )
    if points and all(e > 0 for _, _, e in points):
        ax.set_yscale("log")
    ax.set_xlabel("median latency (ms)")
    ax.set_ylabel("max abs error")
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(0.15)
    return _png(fig)

"""What ``edgelstm demo`` prints: the results table and the summary lines after it.

Kept apart from :mod:`edgelstm.demo.run` (which measures) so the numbers and their text
form can change independently; rich is imported only when the table is printed.
"""

from __future__ import annotations

import sys
from typing import Any

from edgelstm.demo.run import SEQ_LEN, DemoResult

TABLE_HEADERS = (
    "variant", "accuracy", "max err", "p50 ms", "x fast", "KB", "x float",
)  # fmt: skip


def table_rows(result: DemoResult) -> list[list[str]]:
    """The demo table as text cells, the reference first."""
    ref = [
        "reference (f64)",
        f"{result.reference_correct}/{result.total} {result.reference_accuracy:.2%}",
        "0",
    ] + ["-"] * 4
    return [ref] + [
        [
            v.name,
            f"{v.correct}/{v.total} {v.accuracy:.2%}",
            f"{v.max_abs_error:.1e}",
            f"{v.p50_ms:.3f}",
            f"{v.ratio:.2f}",
            f"{v.size_bytes / 1024:.1f}",
            f"{v.size_ratio:.2f}",
        ]
        for v in result.variants
    ]


def print_table(result: DemoResult, file: Any = None) -> None:
    """Print the demo table with rich (no colours or box-drawing width issues when piped)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    stream = file if file is not None else sys.stdout
    console = Console(file=stream)
    if not console.is_terminal:
        console = Console(file=stream, width=120)
    table = Table(
        title=f"edgelstm demo: Japanese Vowels speaker ID, {result.source}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for k, h in enumerate(TABLE_HEADERS):
        table.add_column(h, justify="left" if k == 0 else "right", no_wrap=True)
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"accuracy: {result.total} test utterances, on each variant's own interpreter; "
        "max err: max |softmax - float64 reference| over them; p50: per sequence (batch 1, "
        f"{SEQ_LEN} steps, {result.threads} thread{'s' if result.threads > 1 else ''}, "
        f"{result.runs} runs interleaved); x fast: p50 over the fastest's; x float: size over "
        "the same format's float32 file",
        highlight=False,
        soft_wrap=False,
    )


def summary_lines(result: DemoResult) -> list[str]:
    """What ``edgelstm demo`` prints after the table."""
    prefix = result.model.replace("-", "_")
    lines = [f"model files in {result.out_dir}/; every number in {prefix}_demo.json there"]
    if result.report_html:
        lines.append(f"report: {result.report_html} (+ {result.report_md})")
    lines += [f"note: {n}" for n in result.notes if "differs from the reference" in n]
    ver = ", ".join(f"{k} {v}" for k, v in result.versions.items() if k != "machine")
    lines.append(f"{ver}; {result.seconds:.1f} s")
    return lines


__all__ = ["TABLE_HEADERS", "print_table", "summary_lines", "table_rows"]

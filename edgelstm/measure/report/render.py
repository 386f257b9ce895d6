"""HTML and Markdown renderings of a :class:`~edgelstm.measure.report.Report` (same order)."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgelstm.measure.bench import BENCH_HEADERS, bench_rows

if TYPE_CHECKING:
    from edgelstm.measure.report import Report

VERIFY_HEADERS = (
    "model", "quant", "backend", "reference", "max abs", "RMSE", "cosine", "max LSB",
    "growth", "framework max abs",
)  # fmt: skip
FIGURE_TITLES = {
    "error_per_step": "Error per time step",
    "latency": "Latency distribution",
    "size": "Model size",
    "accuracy_vs_latency": "Accuracy vs latency",
}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
img{max-width:100%;display:block;margin:0.5em 0 1.5em}
.note{color:#555;font-size:13px}
"""


def _g(v: float | None, spec: str = ".3e") -> str:
    return "-" if v is None else format(v, spec)


def verify_rows(rep: Report) -> list[list[str]]:
    rows = []
    for b, v in zip(rep.bench, rep.verify, strict=True):
        if v is None:
            rows.append([b.name, b.quantization, b.backend, "not verified"] + ["-"] * 6)
            continue
        growth = v.error.growth
        rows.append(
            [
                b.name,
                v.quantization,
                v.backend,
                v.reference,
                _g(v.max_abs),
                _g(v.rmse),
                f"{v.cosine:.6f}",
                _g(v.max_lsb, ".2f"),
                _g(growth, ".2f"),
                _g(v.framework_error.max_abs if v.framework_error else None),
            ]
        )
    return rows


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _notes(rep: Report) -> list[str]:
    """Report notes, then per-model notes; a note every model shares is listed once."""
    per_model = [
        (b.name, v.notes) for b, v in zip(rep.bench, rep.verify, strict=True) if v is not None
    ]
    shared = set.intersection(*(set(n) for _, n in per_model)) if len(per_model) > 1 else set()
    notes = list(rep.notes)
    if shared:
        notes += [f"all models: {n}" for n in per_model[0][1] if n in shared]
    for name, model_notes in per_model:
        notes.extend(f"{name}: {n}" for n in model_notes if n not in shared)
    return notes


def _summary(rep: Report) -> str:
    b = rep.bench[0]
    return (
        f"{len(rep.bench)} model(s); {b.runs} timed runs each after {b.warmup} warm-up, "
        f"interleaved round-robin, {b.threads} thread(s), input {b.input_shape}. "
        "Errors are against the float64 reference."
    )


def render_html(rep: Report) -> str:
    """One self-contained page: inline CSS, figures as base64 PNG data URIs."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(rep.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(rep.title)}</h1>",
        f"<p>{html.escape(_summary(rep))}</p>",
        "<h2>Accuracy</h2>",
        _html_table(VERIFY_HEADERS, verify_rows(rep)),
        "<h2>Speed and size</h2>",
        _html_table(BENCH_HEADERS, bench_rows(rep.bench)),
    ]
    for name, png in rep.figures.items():
        title = FIGURE_TITLES.get(name, name)
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(
            f'<img id="fig-{name}" alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
        )
    notes = _notes(rep)
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        parts.extend(f'<li class="note">{html.escape(n)}</li>' for n in notes)
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(c: object) -> str:
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(rep: Report, assets: str) -> str:
    """The same tables in Markdown; figures link to ``assets/<name>.png``."""
    parts = [
        f"# {rep.title}",
        "",
        _summary(rep),
        "",
        "## Accuracy",
        "",
        _md_table(VERIFY_HEADERS, verify_rows(rep)),
        "",
        "## Speed and size",
        "",
        _md_table(BENCH_HEADERS, bench_rows(rep.bench)),
        "",
    ]
    for name in rep.figures:
        title = FIGURE_TITLES.get(name, name)
        parts += [f"## {title}", "", f"![{title}]({assets}/{name}.png)", ""]
    notes = _notes(rep)
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts)

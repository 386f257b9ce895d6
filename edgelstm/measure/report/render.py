"""HTML and Markdown renderings of a :class:`~edgelstm.measure.report.Report` (same order)."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgelstm.measure.report import tables
from edgelstm.measure.report.verdict import verdict

if TYPE_CHECKING:
    from edgelstm.measure.report import Report

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:960px;color:#222;padding:0 1em;line-height:1.45}
.wide{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:1em 0 0.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
figure{margin:1em 0 2em;text-align:center}
figure img{width:100%;max-width:900px;height:auto;display:block;margin:0 auto}
figcaption,.say{color:#555;font-size:14px}
figcaption{margin-top:0.4em}
.verdict{border-left:4px solid #2ca02c;background:#f4faf4;padding:0.6em 1em}
.note{color:#555;font-size:13px}
"""


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table}</div>'


def _code(text: str) -> str:
    """Escape, and show `backticked` spans (commands) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _html_says(sentences: Sequence[str]) -> list[str]:
    return [f'<p class="say">{html.escape(t)}</p>' for t in sentences]


def _html_section(heading: str, table: tables.Table) -> list[str]:
    headers, rows, said = table
    return [f"<h2>{html.escape(heading)}</h2>", _html_table(headers, rows), *_html_says(said)]


def render_html(rep: Report) -> str:
    """One self-contained page: inline CSS, figures as base64 PNG data URIs, verdict last."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(rep.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(rep.title)}</h1>",
        f"<p>{html.escape(tables.summary(rep))}</p>",
        *_html_section("Accuracy", tables.accuracy_table(rep)),
        *_html_section("Speed and size", tables.speed_table(rep)),
    ]
    for name, png in rep.figures.items():
        title, caption = tables.figure_text(name)
        data = base64.b64encode(png).decode("ascii")
        parts += [
            f"<h2>{html.escape(title)}</h2><figure>",
            f'<img id="fig-{name}" alt="{html.escape(title)}" src="data:image/png;base64,{data}">',
            f"<figcaption>{html.escape(caption)}</figcaption></figure>" if caption else "</figure>",
        ]
    parts += _html_says(tables.missing_figures(rep))
    notes = tables.notes(rep)
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        parts.extend(f'<li class="note">{html.escape(n)}</li>' for n in notes)
        parts.append("</ul>")
    first, *rest = verdict(rep)
    parts += [
        f'<h2>Verdict for an error budget of {rep.max_error:g}</h2><div class="verdict">',
        f"<p><strong>{_code(first)}</strong></p>",
    ]
    if rest:
        parts += ["<ul>", *(f"<li>{_code(t)}</li>" for t in rest), "</ul>"]
    parts.append("</div></body></html>")
    return "\n".join(parts)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(c: object) -> str:
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_section(heading: str, table: tables.Table) -> list[str]:
    headers, rows, said = table
    return [f"## {heading}", "", _md_table(headers, rows), "", *(f"{t}\n" for t in said)]


def render_markdown(rep: Report, assets: str) -> str:
    """The same tables, sentences and verdict in Markdown; figures link ``assets/<name>.png``."""
    parts = [
        f"# {rep.title}",
        "",
        tables.summary(rep),
        "",
        *_md_section("Accuracy", tables.accuracy_table(rep)),
        *_md_section("Speed and size", tables.speed_table(rep)),
    ]
    for name in rep.figures:
        title, caption = tables.figure_text(name)
        parts += [f"## {title}", "", f"![{title}]({assets}/{name}.png)", ""]
        parts += [f"*{caption}*", ""] if caption else []
    parts += [f"{t}\n" for t in tables.missing_figures(rep)]
    notes = tables.notes(rep)
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    first, *rest = verdict(rep)
    parts += [f"## Verdict for an error budget of {rep.max_error:g}", "", f"**{first}**", ""]
    parts += [f"- {t}" for t in rest] + [""]
    return "\n".join(parts)

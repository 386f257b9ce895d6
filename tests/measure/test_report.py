"""``edgelstm report``: one self-contained HTML (base64 PNG figures) and a Markdown twin.

The browser test renders the HTML in headless Chromium (Debian: ``apt-get install -y
chromium``; CI installs it) and checks what a reader would notice: every figure decodes and
is centred, nothing runs past the page width, no heading reads like an identifier. It is
skipped only when no Chromium binary is on PATH.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from _verify_helpers import build_variants

from edgelstm.cli.main import main
from edgelstm.measure.bench import BenchResult
from edgelstm.measure.report import Report, build_report, write_report
from edgelstm.measure.report.render import render_html, render_markdown
from edgelstm.measure.verify import ErrorStats, VerifyResult

FIGURES = ("latency", "size", "error_per_step", "accuracy_vs_latency")
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    v = build_variants(root)
    models = [v["float"], v["dynamic"], v["onnx"]] + ([v["int8"]] if v["int8"] else [])
    rep = build_report(models, runs=10, warmup=1, memory=False, show_progress=False)
    html, md = write_report(rep, root / "report.html")
    return rep, html, md


def _image(png: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_figures_are_real_pngs(written):
    rep, _, _ = written
    assert set(rep.figures) == set(FIGURES)
    for name, png in rep.figures.items():
        img = _image(png)
        assert img.shape[0] > 100 and img.shape[1] > 300, name
        assert img[..., :3].std() > 0.05, f"{name} is blank"


def test_html_is_self_contained(written):
    rep, html, _ = written
    text = html.read_text()
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(imgs) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in imgs)
    assert not re.search(r'(src|href)="(https?:|//)', text)
    for b in rep.bench:
        assert b.name in text
    assert "<table>" in text and "max abs" in text


def test_markdown_twin(written):
    rep, _, md = written
    text = md.read_text()
    assert text.startswith("# ") and "| model |" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(FIGURES)
    for link in links:
        assert (md.parent / link).is_file()
    assert len([line for line in text.splitlines() if line.startswith("| ")]) >= 2 * (
        1 + len(rep.bench)
    )


def _md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (header first, separator dropped)."""
    out: list[list[list[str]]] = []
    prev = ""
    for line in text.splitlines():
        if line.startswith("| "):
            if not prev.startswith("|"):
                out.append([])
            out[-1].append([c.strip() for c in line.strip("|").split(" | ")])
        elif line.startswith("|---"):
            pass
        prev = line
    return out


def test_no_column_is_all_dashes_or_one_shared_number(written):
    """A column of "-" or of one number repeated in every row says nothing per row."""
    _, html, md = written
    text = md.read_text()
    for table in _md_tables(text):
        header, *rows = table
        assert len(rows) >= 3
        for j, name in enumerate(header[1:], start=1):
            cells = [r[j] for r in rows]
            assert any(c != "-" for c in cells), name
    page = html.read_text()
    assert "framework max abs" not in page and "peak MB" not in page
    assert "model MB" in page or "No model MB column" in page


def _synthetic(errors_ms: list[tuple[float, float]], out_shape: list[int]) -> Report:
    bench, verify = [], []
    for k, (err, ms) in enumerate(errors_ms):
        bench.append(
            BenchResult(
                name=f"m{k}.tflite", path=f"m{k}.tflite", format="tflite", backend="litert",
                threads=1, quantization="float", input_shape=[1, 10, 4], runs=10, warmup=1,
                p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, sequences_per_s=1e3 / ms,
                steps_per_s=1e4 / ms, size_bytes=2048, latencies_ms=[ms] * 10,
            )
        )  # fmt: skip
        stats = ErrorStats(max_abs=err, rmse=err / 3, mean_abs=err / 4, cosine=1.0)
        verify.append(
            VerifyResult(
                model=f"m{k}.tflite", backend="litert", quantization="float",
                reference="src.npz (given)", input_shape=[8, 10, 4], output_shape=out_shape,
                error=stats,
            )
        )  # fmt: skip
    return Report("T", [b.path for b in bench], verify, bench, max_error=1e-3)


@pytest.mark.parametrize(
    ("points", "ship"),
    [
        # fastest over budget -> the fastest within budget
        ([(1e-7, 1.0), (1e-4, 0.5), (1e-2, 0.2)], "m1.tflite"),
        # 2% slower than the fastest in-budget one: a tie, the more accurate wins
        ([(5e-4, 0.50), (1e-6, 0.51), (1e-7, 0.9)], "m1.tflite"),
        # 10% slower is no tie
        ([(5e-4, 0.50), (1e-6, 0.55)], "m0.tflite"),
    ],
)
def test_verdict_ships_what_optimize_would(points, ship):
    rep = _synthetic(points, [8, 10, 3])
    text = render_markdown(rep, "a")
    verdict = text.split("## Verdict for an error budget of 0.001", 1)[1]
    assert verdict.strip().startswith(f"**Ship {ship}:"), verdict
    assert verdict.rstrip().endswith("ranking.")  # the verdict ends the report


def test_verdict_when_nothing_fits():
    text = render_markdown(_synthetic([(1e-2, 1.0), (5e-3, 2.0)], [8, 3]), "a")
    assert "No file is within the error budget of 0.001" in text
    assert "most accurate is m1.tflite" in text and "--max-error" in text


def test_last_step_output_says_why_there_is_no_step_plot():
    rep = _synthetic([(1e-7, 1.0), (1e-4, 0.5)], [8, 3])
    rep.figures["test_accuracy"] = b"png"
    page = render_html(rep)
    assert "No error-per-time-step plot: these models return only the last time step" in page
    assert "<h2>Test-set accuracy</h2>" in page and "test_accuracy</h2>" not in page
    # growth needs per-step output and max LSB a quantized output: no such columns, a reason
    assert "<th>growth</th>" not in page and "No growth column: " in page
    assert "<th>max LSB</th>" not in page and "No max LSB column: " in page


def test_cli_report(tmp_path, capsys):
    v = build_variants(tmp_path)
    out = tmp_path / "r.html"
    argv = ["report", str(v["float"]), str(v["onnx"]), "-o", str(out), "--runs", "5"]
    assert main([*argv, "--no-memory", "--warmup", "0", "--title", "T1", "--max-error", "1"]) == 0
    assert out.is_file() and (tmp_path / "r.md").is_file()
    page = out.read_text()
    assert "<title>T1</title>" in page and "Verdict for an error budget of 1</h2>" in page
    assert "No model MB column: model MB was not measured (--no-memory" in page
    assert "wrote" in capsys.readouterr().out


PROBE = """<pre id="probe"></pre><script>
window.addEventListener('load', () => {
  const width = document.documentElement.clientWidth;
  const body = document.body.getBoundingClientRect();
  const wide = Array.from(document.querySelectorAll('body *'))
    .filter(e => e.id !== 'probe' && e.getBoundingClientRect().right > width + 1
                 && !e.closest('.wide'))
    .map(e => e.tagName + ':' + (e.id || e.className));
  const imgs = Array.from(document.images).map(i => {
    const r = i.getBoundingClientRect();
    return [i.id, i.complete, i.naturalWidth, r.width, r.left - body.left, body.right - r.right];
  });
  const headings = Array.from(document.querySelectorAll('h1,h2')).map(h => h.textContent);
  document.getElementById('probe').textContent = 'PROBE=' + JSON.stringify(
    {width, scroll: document.documentElement.scrollWidth, wide, imgs, headings});
});
</script></body>"""


def _chromium(*args: str, profile) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=90, check=False
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install -y chromium)")
def test_renders_in_headless_chromium(written, tmp_path):
    """What a reader sees at a 1000 px window: figures decode, are large and centred; no
    element runs past the page; no heading reads like a code identifier."""
    _, html, _ = written
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace("</body>", PROBE))
    dom = _chromium(
        "--virtual-time-budget=10000",
        "--window-size=1000,2000",
        "--dump-dom",
        probe.as_uri(),
        profile=tmp_path / "p1",
    )
    found = re.search(r"PROBE=(\{.*?\})\s*<", dom.stdout)
    assert found, f"probe did not run: {dom.stderr[-500:]}"
    page = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert page["scroll"] <= page["width"] and not page["wide"], page["wide"]
    assert {i[0] for i in page["imgs"]} == {f"fig-{n}" for n in FIGURES}
    for name, complete, natural, shown, left, right in page["imgs"]:
        assert complete and natural > 0, name  # decoded
        assert shown >= 0.8 * min(900, page["width"] - 40), (name, shown)  # not a thumbnail
        assert abs(left - right) <= 2, (name, left, right)  # centred
    for h in page["headings"]:
        assert not re.search(r"\w_\w", h), f"heading reads like an identifier: {h!r}"
    assert len(page["headings"]) == len(set(page["headings"]))
    assert page["headings"][-1].startswith("Verdict")
    # The untouched page paints: a screenshot that is not one flat colour.
    shot = tmp_path / "shot.png"
    proc = _chromium(
        f"--screenshot={shot}", "--window-size=1000,2400", html.as_uri(), profile=tmp_path / "p2"
    )
    assert shot.is_file(), proc.stderr[-500:]
    img = _image(shot.read_bytes())[..., :3]
    assert img.std() > 0.05
    assert (img.mean(axis=-1) < 0.9).mean() > 0.02  # enough non-white pixels: text and plots

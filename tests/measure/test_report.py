"""``edgelstm report``: one self-contained HTML (base64 PNG figures) and a Markdown twin.

The browser test renders the HTML in headless Chromium (Debian: ``apt-get install -y
chromium``) and checks that every image decoded and the page is not blank; it is skipped
when no Chromium binary is on PATH.
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
from edgelstm.measure.report import build_report, write_report

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


def test_cli_report(tmp_path, capsys):
    v = build_variants(tmp_path)
    out = tmp_path / "r.html"
    argv = ["report", str(v["float"]), str(v["onnx"]), "-o", str(out), "--runs", "5"]
    assert main([*argv, "--no-memory", "--warmup", "0", "--title", "T1"]) == 0
    assert out.is_file() and (tmp_path / "r.md").is_file()
    assert "<title>T1</title>" in out.read_text()
    assert "wrote" in capsys.readouterr().out


PROBE = """<pre id="imgcheck"></pre><script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.getElementById('imgcheck').textContent =
    'IMGCHECK=' + JSON.stringify(imgs.map(i => [i.id, i.complete, i.naturalWidth]));
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
    _, html, _ = written
    # Images decode: a probe copy lists every <img> with its naturalWidth in the DOM.
    probe = tmp_path / "probe.html"
    probe.write_text(html.read_text().replace("</body>", PROBE))
    dom = _chromium(
        "--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "p1"
    )
    found = re.search(r"IMGCHECK=(\[.*?\])\s*<", dom.stdout)
    assert found, f"probe did not run: {dom.stderr[-500:]}"
    images = json.loads(found.group(1).replace("&quot;", '"'))
    assert {i[0] for i in images} == {f"fig-{n}" for n in FIGURES}
    assert all(complete and width > 0 for _, complete, width in images), images
    # The untouched page paints: a screenshot that is not one flat colour.
    shot = tmp_path / "shot.png"
    proc = _chromium(
        f"--screenshot={shot}", "--window-size=1200,2400", html.as_uri(), profile=tmp_path / "p2"
    )
    assert shot.is_file(), proc.stderr[-500:]
    img = _image(shot.read_bytes())[..., :3]
    assert img.std() > 0.05
    assert (img.mean(axis=-1) < 0.9).mean() > 0.02  # enough non-white pixels: text and plots

"""``edgelstm demo``: the whole pipeline on the bundled Japanese Vowels classifiers, end to end.

The accuracy checks are acceptance criteria, not tolerances to tune: each float variant must
predict exactly what the float64 reference predicts, and each int8 variant (TFLite full int8,
ONNX dynamic int8) must stay within 1 point of its format's float32 variant.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from _paths import REPO

from edgelstm.cli.commands import COMMANDS
from edgelstm.cli.main import main
from edgelstm.demo.data import BUNDLED, bundled_path
from edgelstm.demo.run import VARIANTS

ROOT = REPO
HEAVY = ("tensorflow", "keras", "tf_keras", "torch")
NAMES = [v.name for v in VARIANTS]

RUN_CLI = """
import sys
from edgelstm.cli.main import main
rc = main(sys.argv[1:])
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))
print('HEAVY=' + ','.join(heavy))
sys.exit(rc)
"""


def _load(out: Path, prefix: str) -> dict:
    return json.loads((out / f"{prefix}_demo.json").read_text())


def _check_accuracy(result: dict) -> None:
    rows = {r["name"]: r for r in result["variants"]}
    assert list(rows) == NAMES
    assert result["total"] == 370
    for fmt, (flt, int8) in {
        "tflite": ("TFLite float32", "TFLite int8"),
        "onnx": ("ONNX float32", "ONNX dyn. int8"),
    }.items():
        f, q = rows[flt], rows[int8]
        assert f["format"] == q["format"] == fmt
        # float32 on its interpreter predicts exactly what the float64 reference predicts
        assert f["correct"] == result["reference_correct"], flt
        assert f["max_abs_error"] < 1e-4, flt
        # acceptance criterion: int8 within 1 point of float
        assert abs(q["accuracy"] - f["accuracy"]) <= 0.01, (int8, q["correct"], f["correct"])
    assert rows["TFLite hybrid"]["quantization"] == "dynamic"
    assert rows["TFLite int8"]["quantization"] == "int8"
    for r in rows.values():
        assert r["p50_ms"] > 0 and r["size_bytes"] > 0
        assert Path(r["path"]).is_file()
    assert rows["TFLite hybrid"]["size_ratio"] < 0.5  # int8 weights: ~1/3 of the float file


def test_demo_cli_no_report_without_heavy_frameworks(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-c", RUN_CLI.format(heavy=HEAVY), "demo", "--out-dir", str(out)]
        + ["--runs", "5", "--no-report"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "HEAVY=", "TensorFlow/PyTorch imported by the demo"
    table = proc.stdout
    for name in ["reference (f64)", *NAMES]:
        assert name in table, name
    assert "358/370 96.76%" in table  # the recorded reference accuracy (models/README.md)
    result = _load(out, "jv")
    assert result["reference_correct"] == 358
    _check_accuracy(result)
    assert result["report_html"] is None
    assert not list(out.glob("*report*"))
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["jv_demo.json"] + [v.filename("jv") for v in VARIANTS]
    )


def test_demo_with_report_cifg_ln(tmp_path, capsys):
    out = tmp_path / "nested" / "out"  # created with its parents
    rc = main(["demo", "--out-dir", str(out), "--runs", "5", "--model", "jv-cifg-ln"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    for name in NAMES:
        assert name in captured.out
    result = _load(out, "jv_cifg_ln")
    assert result["reference_correct"] == 364  # models/README.md
    _check_accuracy(result)
    html, md = out / "jv_cifg_ln_report.html", out / "jv_cifg_ln_report.md"
    assert result["report_html"] == str(html) and result["report_md"] == str(md)
    assert html.stat().st_size > 10_000 and md.is_file()
    page = html.read_text()
    assert 'id="fig-test_accuracy"' in page and "364/370 = 98.38%" in page
    assert 'src="http' not in page  # self-contained
    for png in ("test_accuracy", "latency", "size", "accuracy_vs_latency"):
        assert (out / "jv_cifg_ln_report_files" / f"{png}.png").is_file()
        assert f"jv_cifg_ln_report_files/{png}.png" in md.read_text()


@pytest.mark.parametrize("kind", ["file", "under_file"])
def test_bad_out_dir_exits_2(tmp_path, capsys, kind):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker if kind == "file" else blocker / "sub"
    rc = main(["demo", "--out-dir", str(out), "--runs", "1", "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("edgelstm demo: error: "), err
    assert blocker.read_text() == "x"


def test_bundled_files_are_the_models_files():
    """edgelstm/demo/data/*.npz resolve to exactly models/*.npz (one copy, via symlinks)."""
    for name in BUNDLED:
        path = bundled_path(name)
        assert path.is_file()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == hashlib.sha256((ROOT / "models" / name).read_bytes()).hexdigest()


def test_demo_is_the_first_command():
    assert COMMANDS[0] == "demo"

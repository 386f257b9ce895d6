"""``edgelstm compile`` and its source file: never overwritten, missing frameworks named."""

from __future__ import annotations

import os
import re
import sys

import pytest

from edgelstm import LSTMSpec, LSTMWeights, MissingDependencyError, save_npz
from edgelstm.cli.main import main
from edgelstm.importers.load import load_source


@pytest.fixture
def tflite(tmp_path):
    src = tmp_path / "cell.npz"
    save_npz(LSTMWeights.random(LSTMSpec(3, 5), seed=1), src)
    out = tmp_path / "m.tflite"
    assert main(["compile", str(src), "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_compile_refuses_to_overwrite_its_source(tflite, tmp_path, capsys, link):
    source = tflite
    if link == "symlink":
        source = tmp_path / "alias.tflite"
        source.symlink_to(tflite)
    elif link == "hardlink":
        source = tmp_path / "hard.tflite"
        os.link(tflite, source)
    before = tflite.read_bytes()
    capsys.readouterr()
    assert main(["compile", str(source), "-o", str(tflite), "--batch", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is the source" in err and "--overwrite" in err
    assert tflite.read_bytes() == before


def test_overwrite_flag_allows_it(tflite, capsys):
    assert main(["compile", str(tflite), "-o", str(tflite), "--overwrite", "--batch", "0"]) == 0
    assert "wrote" in capsys.readouterr().out


def test_torch_flags_refused_for_other_sources(tflite, tmp_path, capsys):
    out = tmp_path / "o.onnx"
    assert main(["compile", str(tflite), "-o", str(out), "--batch-first"]) == 2
    err = capsys.readouterr().err
    assert "--batch-first" in err and ".pt" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("suffix", "modules", "extra"),
    [
        (".keras", ("keras", "tf_keras"), "edgelstm[tf]"),
        (".h5", ("keras", "tf_keras"), "edgelstm[tf]"),
        (".pt", ("torch",), "edgelstm[torch]"),
    ],
)
def test_missing_framework_names_the_extra(tmp_path, monkeypatch, capsys, suffix, modules, extra):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    src = tmp_path / f"model{suffix}"
    src.write_bytes(b"not read: the framework is missing first")
    with pytest.raises(MissingDependencyError, match=re.escape(f"pip install '{extra}'")):
        load_source(src)
    out = tmp_path / "m.tflite"
    assert main(["compile", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"pip install '{extra}'" in err and "No module named" not in err
    assert not out.exists()

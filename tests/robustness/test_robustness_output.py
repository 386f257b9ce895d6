"""Output paths: unwritable places are clear errors, and an existing file is replaced only
when the whole new file has been written (atomic rename); no temporary file is left behind.

These tests run as root in CI containers, where ``chmod 0o500`` does not stop writes, so an
"unwritable directory" is made differently: a path *under a regular file* (the OS answers
ENOTDIR whoever you are), a directory under /proc (procfs refuses to create files, even for
root), and an output path that is itself an existing directory.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from edgelstm import LSTMSpec, LSTMWeights, save_npz
from edgelstm.cli.main import main
from edgelstm.errors import ModelFileError
from edgelstm.targets.onnx import save_onnx
from edgelstm.targets.tflite import save_tflite

W = LSTMWeights.random(LSTMSpec(3, 4, peephole=True), seed=3)
SAVERS = {"npz": save_npz, "onnx": save_onnx, "tflite": save_tflite}


def _cli_error(argv: list[str], capsys, *needles: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (rc, err)
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def _no_temp(directory: Path) -> None:
    assert not [p.name for p in directory.iterdir() if p.name.endswith(".part")]


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "src" / "w.npz"
    path.parent.mkdir()
    save_npz(W, path)
    return path


@pytest.mark.parametrize("fmt", sorted(SAVERS))
def test_missing_directory(tmp_path, fmt) -> None:
    with pytest.raises(ModelFileError, match=r"output directory .*missing does not exist"):
        SAVERS[fmt](W, tmp_path / "missing" / f"m.{fmt}")
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize("fmt", sorted(SAVERS))
def test_directory_that_is_a_regular_file(tmp_path, fmt) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"output directory .*file is not a directory"):
        SAVERS[fmt](W, blocker / f"m.{fmt}")
    assert blocker.read_bytes() == b"x"


@pytest.mark.parametrize("fmt", sorted(SAVERS))
def test_directory_where_nobody_may_create_files(fmt) -> None:
    """/proc refuses new files even for root (the read-only directory stand-in)."""
    target = Path("/proc") / f"edgelstm-test.{fmt}"
    with pytest.raises(ModelFileError, match=r"cannot write in /proc"):
        SAVERS[fmt](W, target)
    assert not target.exists()


@pytest.mark.parametrize("fmt", sorted(SAVERS))
def test_output_path_is_a_directory(tmp_path, fmt) -> None:
    out = tmp_path / f"m.{fmt}"
    out.mkdir()
    with pytest.raises(ModelFileError, match="is a directory"):
        SAVERS[fmt](W, out)
    assert out.is_dir() and not list(out.iterdir())
    _no_temp(tmp_path)


def test_cli_output_problems(tmp_path, source, capsys) -> None:
    src = str(source)
    (tmp_path / "file").write_bytes(b"x")
    (tmp_path / "dir.onnx").mkdir()
    _cli_error(["compile", src, "-o", str(tmp_path / "missing/m.onnx")], capsys, "does not exist")
    _cli_error(["compile", src, "-o", str(tmp_path / "file/m.tflite")], capsys, "not a directory")
    _cli_error(["compile", src, "-o", "/proc/m.onnx"], capsys, "cannot write in /proc")
    _cli_error(["compile", src, "-o", str(tmp_path / "dir.onnx")], capsys, "is a directory")
    _cli_error(["compile", src, "-o", str(tmp_path / "m.pb")], capsys, ".tflite or .onnx")
    _cli_error(["compile", src, "-o", ""], capsys, ".tflite or .onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx", "file", "src"]


# -- an existing file is replaced only on success ------------------------------------------


class _Boom(RuntimeError):
    pass


def _failing_write_bytes(monkeypatch, exc: BaseException) -> None:
    """Path.write_bytes writes the first half of the data, then raises ``exc``."""

    def write_bytes(self: Path, data: bytes) -> int:
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise exc

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def _failing_savez(monkeypatch, exc: BaseException) -> None:
    def savez(file, **arrays) -> None:
        file.write(b"PK\x03\x04 half an archive")
        raise exc

    monkeypatch.setattr(np, "savez", savez)


@pytest.mark.parametrize("fmt", sorted(SAVERS))
@pytest.mark.parametrize(
    "exc",
    [_Boom("emitter failed mid-write"), OSError(errno.ENOSPC, "No space left on device")],
    ids=["exception", "disk-full"],
)
def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch, fmt, exc) -> None:
    out = tmp_path / f"m.{fmt}"
    out.write_bytes(b"the previous, good model")
    (_failing_savez if fmt == "npz" else _failing_write_bytes)(monkeypatch, exc)
    expected = ModelFileError if isinstance(exc, OSError) else _Boom
    with pytest.raises(expected) as info:
        SAVERS[fmt](W, out)
    if isinstance(exc, OSError):
        assert "No space left on device" in str(info.value) and str(out) in str(info.value)
    assert out.read_bytes() == b"the previous, good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_interrupt_mid_write_keeps_the_old_file(tmp_path, monkeypatch, fmt) -> None:
    out = tmp_path / f"m.{fmt}"
    out.write_bytes(b"old")
    _failing_write_bytes(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        SAVERS[fmt](W, out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_cli_disk_full_and_interrupt(tmp_path, source, monkeypatch, capsys, fmt) -> None:
    out = tmp_path / f"m.{fmt}"
    out.write_bytes(b"old")
    _failing_write_bytes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    _cli_error(["compile", str(source), "-o", str(out)], capsys, "No space left on device")
    _failing_write_bytes(monkeypatch, KeyboardInterrupt())
    assert main(["compile", str(source), "-o", str(out)]) == 130
    assert capsys.readouterr().err == "edgelstm: interrupted\n"
    assert out.read_bytes() == b"old"
    _no_temp(tmp_path)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_refused_compile_keeps_the_old_file(tmp_path, capsys, fmt) -> None:
    """A refusal (here: an activation / quantization the target cannot express) happens
    before anything is written."""
    src = tmp_path / "sig.npz"
    save_npz(W.replace(activation="sigmoid"), src)
    out = tmp_path / f"m.{fmt}"
    out.write_bytes(b"old")
    args = ["--quantize", "int8"] if fmt == "onnx" else []
    _cli_error(["compile", str(src), "-o", str(out), *args], capsys, f"{fmt}: ")
    assert out.read_bytes() == b"old"
    _no_temp(tmp_path)


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_success_replaces_the_old_file(tmp_path, source, capsys, fmt) -> None:
    out = tmp_path / f"m.{fmt}"
    out.write_bytes(b"old")
    assert main(["compile", str(source), "-o", str(out)]) == 0
    assert out.read_bytes() != b"old" and out.stat().st_size > 100
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    _no_temp(tmp_path)

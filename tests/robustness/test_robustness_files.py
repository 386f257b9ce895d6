"""Bad model files, class by class, through the API and the CLI (deterministic cases).

Classes: empty, random bytes (with and without the right magic), truncated at every section
boundary of the format (zip members / protobuf fields / flatbuffer tables and vectors),
length fields set to 0 / -1 / +1 / huge, pickled .npz arrays and pickled .pt objects (never
executed), corrupted .keras/.h5/.pt, and crafted regressions for the readers of other
modules (marked xfail(strict) while their owners fix them). The CLI contract: exit 2, exactly
one line on stderr, no traceback, no output file. The random/mutation versions of these are
in test_fuzz_files.py.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _paths import REPO
from test_fuzz_files import (
    _models,
    digests,
    layout,
    read_inspect,
    read_npz,
    read_onnx,
    read_tflite,
    seed_files,
)

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.cli.main import main
from edgelstm.errors import EdgeLSTMError, ModelFileError
from edgelstm.importers.load import load_source

ROOT = REPO
EDGELSTM = Path(sys.executable).with_name("edgelstm")

READERS: dict[str, list[Callable[[Path], Any]]] = {
    ".npz": [read_npz, load_source],
    ".onnx": [read_onnx, read_inspect, load_source],
    ".tflite": [read_tflite, read_inspect, load_source],
}
MAGIC = {".npz": b"PK\x03\x04", ".onnx": b"\x08\x08\x12\x08", ".tflite": b"\x1c\x00\x00\x00TFL3"}


def outcome(reader: Callable[[Path], Any], path: Path) -> Any:
    """The reader's result, or the EdgeLSTMError it raised (anything else propagates)."""
    try:
        return reader(path)
    except EdgeLSTMError as exc:
        assert str(exc).strip()
        return exc


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """Run the CLI in-process: exit 2, one stderr line naming the command, no traceback."""
    rc = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert rc == 2, (rc, captured.err)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"edgelstm {argv[0]}: error: "), lines
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def no_outputs(directory: Path, *names: str) -> None:
    present = sorted(p.name for p in directory.iterdir())
    assert not [n for n in present if n.endswith(".part")], present
    for name in names:
        assert name not in present, present


# -- empty, random, wrong magic ----------------------------------------------------------


def _junk() -> dict[str, bytes]:
    rng = np.random.default_rng(7)
    return {
        "empty": b"",
        "one-byte": b"\x00",
        "random-64": rng.bytes(64),
        "random-4k": rng.bytes(4096),
        "text": b"hello, this is not a model\n" * 10,
    }


@pytest.mark.parametrize("suffix", sorted(READERS))
@pytest.mark.parametrize("kind", sorted(_junk()) + ["magic+random"])
def test_junk_files_are_model_file_errors(tmp_path, suffix, kind) -> None:
    if kind == "magic+random":
        data = MAGIC[suffix] + np.random.default_rng(1).bytes(2000)
    else:
        data = _junk()[kind]
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(data)
    for reader in READERS[suffix]:
        result = outcome(reader, path)
        assert isinstance(result, EdgeLSTMError), (reader.__name__, result)
        if kind != "magic+random":
            assert isinstance(result, ModelFileError), (reader.__name__, result)
        assert str(path) in str(result) or "tflite" in str(result) or "onnx" in str(result)


@pytest.mark.parametrize("suffix", [".npz", ".onnx", ".tflite"])
def test_cli_compile_junk_exit_2_one_line_nothing_written(tmp_path, capsys, suffix) -> None:
    src = tmp_path / f"junk{suffix}"
    src.write_bytes(np.random.default_rng(3).bytes(1000))
    for out in ("out.onnx", "out.tflite"):
        cli_error(["compile", str(src), "-o", str(tmp_path / out)], capsys, str(src))
    no_outputs(tmp_path, "out.onnx", "out.tflite")


def test_cli_source_problems(tmp_path, capsys) -> None:
    out = str(tmp_path / "o.onnx")
    cli_error(["compile", str(tmp_path / "nope.npz"), "-o", out], capsys, "not found")
    cli_error(["compile", str(tmp_path), "-o", out], capsys, "unknown source type")
    (tmp_path / "dir.npz").mkdir()
    cli_error(["compile", str(tmp_path / "dir.npz"), "-o", out], capsys, "is a directory")
    (tmp_path / "w.txt").write_text("x")
    cli_error(["compile", str(tmp_path / "w.txt"), "-o", out], capsys, "unknown source type .txt")
    (tmp_path / "e.npz").write_bytes(b"")
    cli_error(["compile", str(tmp_path / "e.npz"), "-o", out], capsys, "is empty")
    cli_error(["inspect", str(tmp_path / "nope.onnx")], capsys, "not found")
    cli_error(["inspect", str(tmp_path / "w.txt")], capsys, ".tflite or .onnx")
    no_outputs(tmp_path, "o.onnx")


# -- truncated at every section boundary, length fields mutated ------------------------------


def _cut_points(name: str) -> list[int]:
    size = len(seed_files()[name])
    points = {p + d for p in layout(name).bounds for d in (-1, 0, 1)}
    return sorted(p for p in points if 0 < p < size)


def _same_model_or_error(reader, path: Path, name: str, where: str, strict: bool) -> None:
    result = outcome(reader, path)
    if isinstance(result, EdgeLSTMError) or reader is read_inspect:
        return
    if strict:
        raise AssertionError(f"{reader.__name__} loaded a damaged {name} ({where})")
    assert digests(result) == _original_digests(name, reader), f"{name} {where}: other model"


@functools.cache
def _original_digests(name: str, reader: Any) -> list[Any]:
    stem = Path(name).stem
    if stem in _models() and not name.endswith(".onnx"):
        return digests(_models()[stem])
    path = Path(tempfile.mkdtemp()) / name
    path.write_bytes(seed_files()[name])
    return digests(reader(path))


def _cases(known: Callable[[str, Any], str | None]) -> list[Any]:
    """(seed file, reader) pairs; load_source is the same reader as from_* for these."""
    params = []
    for name in sorted(seed_files()):
        for reader in READERS[Path(name).suffix]:
            if reader is load_source:
                continue
            bug = known(name, reader)
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            params.append(pytest.param(name, reader, id=f"{name}-{reader.__name__}", marks=marks))
    return params


@pytest.mark.parametrize(("name", "reader"), _cases(lambda name, reader: None))
def test_truncated_at_every_section_boundary(tmp_path, name, reader) -> None:
    """A cut file is refused; at worst (protobuf has no length header) the part that was
    cut held nothing the model needs and the very same model loads."""
    data = seed_files()[name]
    path = tmp_path / f"cut{Path(name).suffix}"
    points = _cut_points(name)
    assert len(points) > 30
    for cut in points:
        path.write_bytes(data[:cut])
        strict = name.endswith(".npz")  # zip: the central directory is at the end
        _same_model_or_error(reader, path, name, f"cut at {cut}/{len(data)}", strict)


def _length_bug(name: str, reader: Any) -> str | None:
    return None


@pytest.mark.parametrize(("name", "reader"), _cases(_length_bug))
def test_length_fields_mutated(tmp_path, name, reader) -> None:
    """Zip sizes / protobuf lengths / flatbuffer vector lengths set to 0, -1, +1, 2x+1, max:
    refused, or (.npz, CRC-checked) the same model. test_fuzz_files.py combines them."""
    from test_fuzz_files import apply_mutations

    data = seed_files()[name]
    lay = layout(name)
    path = tmp_path / f"len{Path(name).suffix}"
    values = ("0", "+1", "max") if name.endswith(".npz") else ("0", "-1", "+1", "x2", "max")
    stride = max(1, len(lay.lengths) // 100)  # every field of small files; 100 of big ones
    for k in range(0, len(lay.lengths), stride):
        for how in values:
            path.write_bytes(apply_mutations(data, [("length", k, how)], lay))
            where = f"length field {lay.lengths[k]} -> {how}"
            _same_model_or_error(reader, path, name, where, strict=False)


# -- never unpickle --------------------------------------------------------------------------


class _Evil:
    """Unpickling this creates ``marker``: proof that pickled data was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_pickled_npz_is_refused_and_never_unpickled(tmp_path, capsys) -> None:
    marker = tmp_path / "PWNED"
    arrays = dict(np.load(io.BytesIO(seed_files()["single.npz"])))
    arrays["forget_gate_bias"] = np.array([_Evil(marker)], dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="pickled"):
        load_source(path)
    cli_error(["compile", str(path), "-o", str(tmp_path / "o.onnx")], capsys, "pickled")
    assert not marker.exists()
    no_outputs(tmp_path, "o.onnx")


def _torch_load_calls() -> list[tuple[str, int, ast.Call]]:
    calls = []
    for path in sorted((ROOT / "edgelstm").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                calls.append((str(path.relative_to(ROOT)), node.lineno, node))
    return calls


def test_torch_load_is_always_weights_only() -> None:
    """Static audit: every torch.load(...) in edgelstm passes weights_only=True literally."""
    calls = _torch_load_calls()
    assert calls, "expected the PyTorch importer's torch.load"
    for where, line, call in calls:
        kw = {k.arg: k.value for k in call.keywords}
        value = kw.get("weights_only")
        assert isinstance(value, ast.Constant) and value.value is True, f"{where}:{line}"
    text = "\n".join(p.read_text() for p in (ROOT / "edgelstm").rglob("*.py"))
    assert "pickle.load(" not in text and "allow_pickle=True" not in text


@pytest.mark.torch
def test_pickled_torch_object_is_refused_and_never_run(tmp_path, capsys) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"weight_ih_l0": torch.zeros(16, 3), "payload": _Evil(marker)}, path)
    with pytest.raises(ModelFileError):
        load_source(path)
    cli_error(["compile", str(path), "-o", str(tmp_path / "o.onnx")], capsys, str(path))
    assert not marker.exists()


@pytest.mark.torch
def test_pickled_torch_object_message_says_so(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "evil.pt"
    torch.save({"weight_ih_l0": torch.zeros(16, 3), "payload": _Evil(tmp_path / "x")}, path)
    with pytest.raises(ModelFileError, match="pickled Python object"):
        load_source(path)


# -- corrupted framework files ---------------------------------------------------------------


def _damaged(data: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    flipped = bytearray(data)
    for pos in rng.integers(0, len(data), 40):
        flipped[pos] ^= 0xFF
    return {
        "half": data[: len(data) // 2],
        "tail-cut": data[:-7],
        "flipped": bytes(flipped),
        "magic-only": data[:8],
    }


@pytest.mark.torch
def test_corrupted_pt_files(tmp_path, capsys) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(torch.nn.LSTM(3, 4).state_dict(), buf)
    for kind, data in _damaged(buf.getvalue()).items():
        path = tmp_path / f"{kind}.pt"
        path.write_bytes(data)
        result = outcome(load_source, path)
        assert isinstance(result, (EdgeLSTMError, LSTMModel)), kind
        if kind != "flipped":  # a flip may land in tensor data: still a valid state_dict
            assert isinstance(result, ModelFileError), (kind, result)
            cli_error(["compile", str(path), "-o", str(tmp_path / "o.onnx")], capsys, str(path))
    no_outputs(tmp_path, "o.onnx")


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_corrupted_keras_and_h5_files(tmp_path, capsys) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    keras = pytest.importorskip("keras")
    tf_keras = pytest.importorskip("tf_keras")
    k3 = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)])
    k3.save(tmp_path / "ok.keras")
    k2 = tf_keras.Sequential([tf_keras.layers.Input((5, 3)), tf_keras.layers.LSTM(4)])
    k2.save(tmp_path / "ok.h5")
    for suffix in (".keras", ".h5"):
        for kind, data in _damaged((tmp_path / f"ok{suffix}").read_bytes()).items():
            path = tmp_path / f"{kind}{suffix}"
            path.write_bytes(data)
            result = outcome(load_source, path)
            assert isinstance(result, (EdgeLSTMError, LSTMModel)), (suffix, kind)
            if kind in ("half", "magic-only"):
                assert isinstance(result, ModelFileError), (suffix, kind, result)
                out = str(tmp_path / "o.tflite")
                cli_error(["compile", str(path), "-o", out], capsys, str(path))
    no_outputs(tmp_path, "o.tflite")


@pytest.mark.tf
@pytest.mark.slow
def test_keras_lambda_layer_is_never_executed(tmp_path) -> None:
    """A .keras whose Lambda layer would run code on load: safe_mode refuses it first."""
    keras = pytest.importorskip("keras")
    marker = tmp_path / "PWNED"
    code = f"lambda x: (__import__('os').makedirs({str(marker)!r}, exist_ok=True), x)[1]"
    model = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.Lambda(eval(code)), keras.layers.LSTM(4)]
    )
    model.save(tmp_path / "evil.keras")
    marker.rmdir()  # building the model above ran the lambda once; loading must not
    with pytest.raises(EdgeLSTMError):
        load_source(tmp_path / "evil.keras")
    assert not marker.exists()


# -- regressions in other modules' readers (xfail strict until their owners fix them) -------


def _tflite_edit(edit: Callable[[Any], None], name: str = "single") -> bytes:
    import flatbuffers

    from edgelstm.targets.tflite.schema import FILE_IDENTIFIER, load_model

    m = load_model(seed_files()[f"{name}.tflite"])
    edit(m)
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _weight_tensor(m: Any) -> Any:
    return next(t for t in m.subgraphs[0].tensors if t.name.endswith(b"input_to_forget_weights"))


def _set_metadata(m: Any, change: Callable[[dict], Any] | bytes) -> None:
    entry = next(e for e in m.metadata if e.name in (b"edgelstm", "edgelstm"))
    buf = m.buffers[entry.buffer]
    if isinstance(change, bytes):
        buf.data = list(change)
        return
    meta = json.loads(bytes(np.asarray(buf.data, np.uint8)))
    change(meta)
    buf.data = list(json.dumps(meta).encode())


TFLITE_CRAFTED: dict[str, tuple[Callable[[Any], None], str | None, str | None]] = {
    # name: (edit, xfail reason for from_tflite, xfail reason for inspect)
    "buffer-index-out-of-range": (
        lambda m: setattr(_weight_tensor(m), "buffer", len(m.buffers) + 5),
        None,
        None,
    ),
    "opcode-index-out-of-range": (
        lambda m: setattr(m.subgraphs[0].operators[0], "opcodeIndex", 9),
        None,
        None,
    ),
    "lstm-op-with-5-inputs": (
        lambda m: setattr(
            m.subgraphs[0].operators[0], "inputs", list(m.subgraphs[0].operators[0].inputs)[:5]
        ),
        None,
        None,
    ),
    "op-output-out-of-range": (
        lambda m: setattr(m.subgraphs[0].operators[0], "outputs", [999]),
        None,
        None,
    ),
    "no-subgraph": (lambda m: setattr(m, "subgraphs", []), None, None),
    "cell-clip-nan": (
        lambda m: setattr(m.subgraphs[0].operators[0].builtinOptions, "cellClip", float("nan")),
        None,
        None,
    ),
    "metadata-model-not-an-object": (
        lambda m: _set_metadata(m, lambda d: d.update(model="abc")),
        None,
        None,
    ),
    "metadata-layers-not-a-list": (
        lambda m: _set_metadata(m, lambda d: d["model"].update(layers="abc")),
        None,
        None,
    ),
    "metadata-provenance-not-an-object": (
        lambda m: _set_metadata(m, lambda d: d.update(provenance=[1, 2])),
        None,
        None,
    ),
    "metadata-nested-too-deep": (
        lambda m: _set_metadata(m, b"[" * 100000),
        None,
        None,
    ),
    "metadata-not-utf8": (lambda m: _set_metadata(m, b"\xff\xfe"), None, None),
}


def _crafted_params() -> list[Any]:
    params = []
    for name, (_, reader_bug, inspect_bug) in TFLITE_CRAFTED.items():
        for reader, bug in ((read_tflite, reader_bug), (read_inspect, inspect_bug)):
            marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
            params.append(pytest.param(name, reader, id=f"{name}-{reader.__name__}", marks=marks))
    return params


@pytest.mark.parametrize(("name", "reader"), _crafted_params())
def test_crafted_tflite(tmp_path, name, reader) -> None:
    path = tmp_path / "crafted.tflite"
    path.write_bytes(_tflite_edit(TFLITE_CRAFTED[name][0]))
    outcome(reader, path)


def _onnx_edit(edit: Callable[[Any], None], name: str) -> bytes:
    import onnx

    proto = onnx.ModelProto()
    proto.ParseFromString(seed_files()[f"{name}.onnx"])
    edit(proto)
    return proto.SerializeToString()


def _non_utf8_metadata(_: Any) -> None:
    pass  # applied on the bytes below


ONNX_CRAFTED: dict[str, Callable[[Any], None]] = {
    "initializer-undefined-dtype": lambda p: setattr(p.graph.initializer[0], "data_type", 0),
    "initializer-unknown-dtype": lambda p: setattr(p.graph.initializer[0], "data_type", 33),
    "initializer-raw-data-short": lambda p: setattr(
        p.graph.initializer[0], "raw_data", p.graph.initializer[0].raw_data[:-4]
    ),
    "input-elem-type-0": lambda p: setattr(p.graph.input[0].type.tensor_type, "elem_type", 0),
    "metadata-nested-too-deep": lambda p: setattr(p.metadata_props[0], "value", "[" * 100000),
    "metadata-not-utf8": _non_utf8_metadata,
}


@pytest.mark.parametrize("name", sorted(ONNX_CRAFTED))
@pytest.mark.parametrize(
    "reader",
    [read_onnx, read_inspect],
    ids=["from_onnx", "inspect"],
)
def test_crafted_onnx(tmp_path, name, reader) -> None:
    data = _onnx_edit(ONNX_CRAFTED[name], "model")
    if name == "metadata-not-utf8":  # protobuf won't set it; flip a byte of a value
        start = data.index(b"edgelstm.version")
        at = data.index(b"0.1.0", start)
        data = data[:at] + b"\xff" + data[at + 1 :]
    path = tmp_path / "crafted.onnx"
    path.write_bytes(data)
    outcome(reader, path)


def test_cli_compile_crafted_tflite_exit_2(tmp_path, capsys) -> None:
    src = tmp_path / "crafted.tflite"
    src.write_bytes(_tflite_edit(TFLITE_CRAFTED["buffer-index-out-of-range"][0]))
    cli_error(["compile", str(src), "-o", str(tmp_path / "o.onnx")], capsys, str(src))


# -- the CLI contract in a real process (console script, stderr as the user sees it) ----------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(EDGELSTM), *args] if EDGELSTM.exists() else [sys.executable, "-m", "edgelstm", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["compile", "inspect", "verify"])
def test_subprocess_one_line_no_traceback(tmp_path, command) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(seed_files()["single.tflite"][:100])
    args = {"compile": ["-o", str(tmp_path / "o.onnx")], "inspect": [], "verify": []}[command]
    proc = _run(command, str(bad), *args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"edgelstm {command}: error: ") and str(bad) in proc.stderr
    no_outputs(tmp_path, "o.onnx")


def test_weights_file_with_nan_shape_and_inconsistency(tmp_path, capsys) -> None:
    """Weights-level errors from a file name the file, the tensor, expected and found."""
    w = LSTMWeights.random(LSTMSpec(3, 4), seed=0)
    arrays = {k: np.array(v) for k, v in w.tensors.items()}
    cases = {
        "nan": ({**arrays, "cell_gate_bias": np.array([0, np.nan, 0, 0], np.float32)}, "NaN/inf"),
        "inf": ({**arrays, "input_to_cell_weights": np.full((4, 3), np.inf)}, "NaN/inf"),
        "transposed": (
            {**arrays, "input_to_cell_weights": arrays["input_to_cell_weights"].T},
            "expected shape [4, 3], found [3, 4]",
        ),
        "inconsistent-cells": (
            {**arrays, "recurrent_to_output_weights": np.zeros((5, 4), np.float32)},
            "expected shape [4, 4], found [5, 4]",
        ),
        "half-peephole": (
            {**arrays, "cell_to_forget_weights": np.zeros(4, np.float32)},
            "optional groups must be all present or all absent",
        ),
        "complex-clip": ({**arrays, "cell_clip": np.array(1 + 1j)}, "cell_clip"),
        "negative-clip": ({**arrays, "cell_clip": np.array(-1.0)}, "cell_clip"),
        "bad-activation": ({**arrays, "activation": np.array("swish")}, "activation"),
    }
    for kind, (arrs, needle) in cases.items():
        path = tmp_path / f"{kind}.npz"
        np.savez(path, **arrs)
        line = cli_error(["compile", str(path), "-o", str(tmp_path / "o.onnx")], capsys, needle)
        assert str(path) in line, line
    no_outputs(tmp_path, "o.onnx")


@pytest.mark.parametrize("command", ["inspect", "verify"])
@pytest.mark.parametrize("suffix", [".onnx", ".tflite"])
@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
def test_inspect_and_verify_bad_model_files(tmp_path, capsys, command, suffix, kind) -> None:
    data = seed_files()[f"single{suffix}"]
    bad = {
        "empty": b"",
        "random": np.random.default_rng(2).bytes(700),
        "truncated": data[: len(data) // 3],
    }[kind]
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(bad)
    cli_error([command, str(path)], capsys, str(path))


def test_bad_data_and_calibration_files(tmp_path, capsys) -> None:
    """Input data (verify --data) and calibration (compile --calibration) files too."""
    from edgelstm import save_npz
    from edgelstm.targets.tflite import save_tflite

    w = LSTMWeights.random(LSTMSpec(3, 4), seed=0)
    src, model = tmp_path / "w.npz", tmp_path / "w.tflite"
    save_npz(w, src)
    save_tflite(w, model)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"\x93NUMPY garbage")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((2, 5, 3), np.nan, np.float32))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.random.default_rng(0).normal(size=(2, 5, 7)).astype(np.float32))
    for data in (junk, nan, wrong, tmp_path / "missing.npy"):
        needle = "expected [N, T, 3]" if data is wrong else data.name
        cli_error(["verify", str(model), "--data", str(data)], capsys, needle)
        out = tmp_path / "q.tflite"
        args = ["compile", str(src), "-o", str(out), "--quantize", "int8", "--calibration"]
        cli_error([*args, str(data)], capsys, "expected I = 3" if data is wrong else data.name)
    no_outputs(tmp_path, "q.tflite")

"""run_isolated: a native crash or hang in a child becomes a ModelFileError.

The children here crash on purpose (SIGSEGV by os.kill and by a ctypes null dereference,
SIGABRT by os.abort), hang, exit without answering, or load a real adversarial .tflite that
segfaults LiteRT's UNIDIRECTIONAL_SEQUENCE_LSTM kernel (a non-CIFG op whose input_gate_bias
input is -1). The CLI tests at the end check that ``verify``/``bench`` survive that file:
``open_runner`` probes it in a child first, so the CLI reports one error line (exit 2)
instead of dying with SIGSEGV (exit -11).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgelstm import LSTMSpec, LSTMWeights
from edgelstm.errors import EdgeLSTMError, ModelFileError, UnsupportedError
from edgelstm.runtime.sandbox import run_isolated

EDGELSTM = Path(sys.executable).with_name("edgelstm")


# -- children (module level: they are pickled by reference into the child) ----------------


def child_value(path: str, x: np.ndarray) -> dict:
    print("chatter on stdout must not corrupt the result")
    return {"path": path, "sum": float(np.sum(x)), "x": x * 2}


def child_unsupported(path: str) -> None:
    raise UnsupportedError("tflite", f"{path}: refused on purpose")


def child_value_error(path: str) -> None:
    raise ValueError(f"{path}: plain ValueError")


def child_segv(path: str) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def child_null_deref(path: str) -> None:
    ctypes.string_at(0)


def child_abort(path: str) -> None:
    os.abort()


def child_hang(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(600)


def child_exit(path: str) -> None:
    os._exit(3)


def invoke_tflite(path: str) -> list[np.ndarray]:
    """Load and invoke a .tflite with LiteRT (what verify/bench do), refusals as errors."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=path)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        interpreter.set_tensor(inp["index"], np.ones(inp["shape"], inp["dtype"]))
        interpreter.invoke()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: the interpreter rejected it ({exc})") from None
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


# -- run_isolated ----------------------------------------------------------------------------


def test_returns_the_value_and_keeps_stdout_clean(capfd) -> None:
    x = np.arange(6.0).reshape(2, 3)
    got = run_isolated(child_value, "m.tflite", x, timeout=60)
    assert got["path"] == "m.tflite" and got["sum"] == 15.0
    np.testing.assert_array_equal(got["x"], x * 2)
    captured = capfd.readouterr()
    assert "chatter" in captured.err and "chatter" not in captured.out


def test_edgelstm_errors_cross_unchanged() -> None:
    with pytest.raises(UnsupportedError) as info:
        run_isolated(child_unsupported, "m.tflite", timeout=60)
    assert info.value.target == "tflite"
    assert info.value.reason == "m.tflite: refused on purpose"


def test_other_exceptions_cross_unchanged_with_the_child_traceback() -> None:
    with pytest.raises(ValueError, match="plain ValueError") as info:
        run_isolated(child_value_error, "m.onnx", timeout=60)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert sys.version_info < (3, 11) or "child_value_error" in notes


@pytest.mark.parametrize(
    ("child", "name", "number"),
    [
        (child_segv, "SIGSEGV", 11),
        (child_null_deref, "SIGSEGV", 11),
        (child_abort, "SIGABRT", 6),
    ],
    ids=["kill-SIGSEGV", "ctypes-null-deref", "os.abort"],
)
def test_signal_death_becomes_model_file_error(child, name, number) -> None:
    with pytest.raises(ModelFileError) as info:
        run_isolated(child, "evil.tflite", timeout=60, label="the TFLite interpreter")
    text = str(info.value)
    assert text.startswith("evil.tflite: crashed the TFLite interpreter")
    assert f"({name}, signal {number})" in text and "\n" not in text


def test_hang_is_killed_after_the_timeout(tmp_path) -> None:
    pid_file = tmp_path / "pid"
    start = time.monotonic()
    with pytest.raises(ModelFileError, match=r"did not finish within 2 s and was killed"):
        run_isolated(child_hang, str(pid_file), timeout=2, label="onnxruntime")
    assert time.monotonic() - start < 30
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # the child is gone, not orphaned
        os.kill(pid, 0)


def test_exit_without_result() -> None:
    with pytest.raises(ModelFileError, match="exited with code 3 and no result"):
        run_isolated(child_exit, "m.onnx", timeout=60)


def test_unpicklable_function_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="picklable"):
        run_isolated(lambda p: p, "m.onnx", timeout=60)


def test_errors_and_models_pickle_across_the_boundary() -> None:
    """What children send back: every error type and a whole LSTMModel round-trip pickle."""
    import pickle

    from edgelstm import LSTMModel, errors

    for cls in (errors.SpecError, errors.WeightsError, errors.CalibrationError):
        assert str(pickle.loads(pickle.dumps(cls("x: expected 1, found 2")))) == (
            "x: expected 1, found 2"
        )
    for exc in (ModelFileError("f: bad"), errors.InputDataError("in: bad")):
        assert str(pickle.loads(pickle.dumps(exc))) == str(exc)
    back = pickle.loads(pickle.dumps(UnsupportedError("onnx", "int8")))
    assert (back.target, back.reason, str(back)) == ("onnx", "int8", "onnx: int8")
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(2, 3), seed=1), provenance={"a": 1})
    again = pickle.loads(pickle.dumps(model))
    assert again.layers[0].forward.allclose(model.layers[0].forward)
    assert dict(again.provenance) == {"a": 1}


# -- a real adversarial file -----------------------------------------------------------------


def segfaulting_tflite(path: Path) -> Path:
    """A float fused-LSTM .tflite whose (required) input_gate_bias input is -1: LiteRT
    accepts it at allocate_tensors() and dereferences a null bias in invoke()."""
    import flatbuffers

    from edgelstm.ir.roles import role
    from edgelstm.targets.tflite import to_tflite
    from edgelstm.targets.tflite.schema import FILE_IDENTIFIER, load_model

    weights = LSTMWeights.random(LSTMSpec(3, 4), seed=0)
    model = load_model(to_tflite(weights))
    codes = model.operatorCodes
    op = next(o for o in model.subgraphs[0].operators if codes[o.opcodeIndex].builtinCode == 44)
    inputs = list(op.inputs)
    inputs[role("input_gate_bias").index] = -1
    op.inputs = inputs
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    path.write_bytes(bytes(builder.Output()))
    return path


def test_real_segfaulting_file_is_contained(tmp_path) -> None:
    path = segfaulting_tflite(tmp_path / "evil.tflite")
    with pytest.raises(EdgeLSTMError) as info:
        run_isolated(invoke_tflite, str(path), timeout=120, label="the TFLite interpreter")
    assert isinstance(info.value, ModelFileError)
    assert str(path) in str(info.value)


def test_good_file_runs_in_the_sandbox(tmp_path) -> None:
    from edgelstm.targets.tflite import save_tflite

    path = tmp_path / "good.tflite"
    save_tflite(LSTMWeights.random(LSTMSpec(3, 4), seed=0), path)
    (y,) = run_isolated(invoke_tflite, str(path), timeout=120)
    assert y.shape == (1, 1, 4) and np.all(np.isfinite(y))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(EDGELSTM), *args] if EDGELSTM.exists() else [sys.executable, "-m", "edgelstm", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["verify", "bench"])
def test_cli_survives_an_interpreter_crash(tmp_path, command) -> None:
    path = segfaulting_tflite(tmp_path / "evil.tflite")
    extra = ["--runs", "1", "--warmup", "0", "--no-memory"] if command == "bench" else []
    proc = _cli(command, str(path), *extra)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edgelstm")]
    assert len(errors) == 1 and "crashed" in errors[0], proc.stderr


def test_inspect_reads_the_crashing_file_without_an_interpreter(tmp_path, capsys) -> None:
    """inspect parses with the flatbuffer schema only: safe on the same file."""
    from edgelstm.cli.main import main

    path = segfaulting_tflite(tmp_path / "evil.tflite")
    assert main(["inspect", str(path)]) == 0
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in capsys.readouterr().out

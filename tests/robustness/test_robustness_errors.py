"""The error hierarchy as a tested property.

* A static audit: the finished modules raise only EdgeLSTMError subclasses on purpose
  (a short allowlist of internal invariants excepted), and every ``except Exception`` in a
  reader turns into an EdgeLSTMError.
* A table of bad API inputs (shapes, NaN/inf, types, option values) with the exact error
  class and the words the message must contain (what is wrong, expected vs found).
* Target refusals name the target and the reason (TFLite activation linear/sigmoid, ONNX
  static int8), through the API and the CLI.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from _paths import REPO

from edgelstm import (
    DenseHead,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    reference,
    reference_model,
    save_npz,
)
from edgelstm.cli.main import main
from edgelstm.errors import (
    CalibrationError,
    EdgeLSTMError,
    InputDataError,
    ModelFileError,
    SpecError,
    UnsupportedError,
    WeightsError,
)
from edgelstm.ir.options import CompileOptions

ROOT = REPO
CORE = (
    "errors reference _io ir/roles ir/spec ir/weights ir/model ir/gate_orders ir/options "
    "importers/npz importers/load cli/main runtime/sandbox"
)
FINISHED = [
    *(f"edgelstm/{m}.py" for m in CORE.split()),
    "edgelstm/cli/commands.py",
    "edgelstm/cli/compile.py",
    "edgelstm/importers/tf_cell.py",
    "edgelstm/importers/keras.py",
    "edgelstm/runtime/ort.py",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "edgelstm/targets/onnx").glob("*.py")),
]
ALLOWED_BUILTIN_RAISES = {
    # internal invariants, unreachable from user input (programming errors)
    ("edgelstm/ir/roles.py", "KeyError"),  # gate_role(kind, gate) with a gate name typo
    ("edgelstm/targets/onnx/builder.py", "ValueError"),  # duplicate graph name inside the emitter
    ("edgelstm/targets/onnx/fused.py", "ValueError"),  # emit_fused called with a bad direction set
    ("edgelstm/targets/onnx/__init__.py", "AttributeError"),  # module __getattr__ protocol
    ("edgelstm/runtime/sandbox.py", "TypeError"),  # run_isolated(unpicklable fn): caller's bug
    ("edgelstm/runtime/sandbox.py", "RuntimeError"),  # child's result/exception not picklable
}
BUILTIN_ERRORS = {
    "ValueError",
    "KeyError",
    "IndexError",
    "TypeError",
    "RuntimeError",
    "AssertionError",
    "Exception",
    "OSError",
    "AttributeError",
}


def _raises(path: str) -> list[tuple[int, str]]:
    tree = ast.parse((ROOT / path).read_text(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name):
                found.append((node.lineno, exc.id))
    return found


def test_finished_modules_raise_only_edgelstm_errors() -> None:
    bad = [
        f"{path}:{line} raises {name}"
        for path in FINISHED
        for line, name in _raises(path)
        if name in BUILTIN_ERRORS and (path, name) not in ALLOWED_BUILTIN_RAISES
    ]
    assert not bad, bad


def test_broad_excepts_in_finished_modules_become_edgelstm_errors() -> None:
    """``except Exception`` (reading untrusted data) must re-raise an EdgeLSTMError class."""
    ours = {c.__name__ for c in (EdgeLSTMError, *EdgeLSTMError.__subclasses__())}
    ours |= {"TypeError", "RuntimeError"}  # _sandbox: documented programming errors
    offenders = []
    for path in FINISHED:
        tree = ast.parse((ROOT / path).read_text(), path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ExceptHandler) or node.type is None:
                continue
            names = [n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)]
            if "Exception" not in names and "BaseException" not in names:
                continue
            raised = {name for _, name in _raises_in(node)}
            if not raised <= ours:  # (no raise at all: recorded, e.g. the next Keras loader)
                offenders.append(f"{path}:{node.lineno} {sorted(raised)}")
    assert not offenders, offenders


def _raises_in(node: ast.AST) -> list[tuple[int, str]]:
    out = []
    for n in ast.walk(node):
        if not (isinstance(n, ast.Raise) and isinstance(n.exc, ast.Call)):
            continue
        call = n.exc
        if call.args and isinstance(call.args[0], ast.Call):  # raise _with_note(Error(...), ..)
            call = call.args[0]
        if isinstance(call.func, ast.Name):
            out.append((n.lineno, call.func.id))
    return out


def test_error_classes() -> None:
    for cls in (SpecError, WeightsError, CalibrationError, InputDataError):
        assert issubclass(cls, EdgeLSTMError) and issubclass(cls, ValueError)
    for cls in (UnsupportedError, ModelFileError):
        assert issubclass(cls, EdgeLSTMError)
    exc = UnsupportedError("tflite", "activation 'linear' ...")
    assert (exc.target, str(exc)) == ("tflite", "tflite: activation 'linear' ...")


# -- bad API inputs --------------------------------------------------------------------------

SPEC = LSTMSpec(3, 4)
W = LSTMWeights.random(SPEC, seed=0)
T = dict(W.tensors)


def _with(**changes: Any) -> dict[str, Any]:
    return {**T, **changes}


BAD_INPUTS: dict[str, tuple[Callable[[], Any], type[EdgeLSTMError], tuple[str, ...]]] = {
    # spec
    "spec-zero-cells": (lambda: LSTMSpec(3, 0), SpecError, ("n_cell", "positive", "0")),
    "spec-float-size": (lambda: LSTMSpec(3.0, 4), SpecError, ("n_input", "3.0")),
    "spec-bool-size": (lambda: LSTMSpec(True, 4), SpecError, ("n_input", "True")),
    "spec-projection-size": (lambda: LSTMSpec(3, 4, 2), SpecError, ("n_output", "4", "2")),
    "spec-nan-clip": (lambda: LSTMSpec(3, 4, cell_clip=float("nan")), SpecError, ("cell_clip",)),
    "spec-inf-clip": (lambda: LSTMSpec(3, 4, cell_clip=float("inf")), SpecError, ("finite",)),
    "spec-neg-clip": (lambda: LSTMSpec(3, 4, cell_clip=-1), SpecError, ("cell_clip", "-1")),
    "spec-str-clip": (lambda: LSTMSpec(3, 4, cell_clip="x"), SpecError, ("number", "'x'")),
    "spec-proj-clip-no-proj": (
        lambda: LSTMSpec(3, 4, proj_clip=1.0),
        SpecError,
        ("proj_clip", "without projection"),
    ),
    "spec-activation": (lambda: LSTMSpec(3, 4, activation="gelu"), SpecError, ("'gelu'",)),
    "spec-from-dict-missing": (lambda: LSTMSpec.from_dict({}), SpecError, ("n_input",)),
    "spec-from-dict-unknown": (
        lambda: LSTMSpec.from_dict({"n_input": 1, "n_cell": 1, "forget_bias": 1}),
        SpecError,
        ("forget_bias",),
    ),
    "spec-from-dict-list": (lambda: LSTMSpec.from_dict([1]), SpecError, ("dict",)),
    # weights
    "weights-transposed": (
        lambda: LSTMWeights(SPEC, _with(input_to_cell_weights=T["input_to_cell_weights"].T)),
        WeightsError,
        ("input_to_cell_weights", "expected shape [4, 3]", "found [3, 4]"),
    ),
    "weights-nan": (
        lambda: LSTMWeights(SPEC, _with(forget_gate_bias=np.array([0, np.nan, 0, 0]))),
        WeightsError,
        ("forget_gate_bias", "finite", "1 NaN/inf"),
    ),
    "weights-inf": (
        lambda: LSTMWeights(SPEC, _with(input_to_output_weights=np.full((4, 3), -np.inf))),
        WeightsError,
        ("input_to_output_weights", "12 NaN/inf"),
    ),
    "weights-float32-overflow": (
        lambda: LSTMWeights(SPEC, _with(cell_gate_bias=np.full(4, 1e300))),
        WeightsError,
        ("cell_gate_bias", "NaN/inf"),
    ),
    "weights-missing": (
        lambda: LSTMWeights(SPEC, {k: v for k, v in T.items() if k != "cell_gate_bias"}),
        WeightsError,
        ("cell_gate_bias", "missing"),
    ),
    "weights-superfluous": (
        lambda: LSTMWeights(SPEC, _with(cell_to_forget_weights=np.zeros(4))),
        WeightsError,
        ("cell_to_forget_weights", "absent"),
    ),
    "weights-unknown-role": (
        lambda: LSTMWeights(SPEC, _with(forget_bias=np.zeros(4))),
        WeightsError,
        ("forget_bias", "unknown"),
    ),
    "weights-strings": (
        lambda: LSTMWeights(SPEC, _with(cell_gate_bias=np.array(["a"] * 4))),
        WeightsError,
        ("cell_gate_bias", "real numeric", "<U1"),
    ),
    "weights-complex": (
        lambda: LSTMWeights(SPEC, _with(cell_gate_bias=np.ones(4, complex))),
        WeightsError,
        ("complex",),
    ),
    "weights-ragged": (
        lambda: LSTMWeights(SPEC, _with(cell_gate_bias=[[1], [1, 2]])),
        WeightsError,
        ("cell_gate_bias", "not convertible"),
    ),
    "weights-not-a-mapping": (lambda: LSTMWeights(SPEC, [1, 2]), WeightsError, ("mapping",)),
    "weights-spec-not-a-spec": (lambda: LSTMWeights("spec", T), WeightsError, ("LSTMSpec",)),
    "from-tensors-half-peephole": (
        lambda: LSTMWeights.from_tensors(_with(cell_to_forget_weights=np.zeros(4))),
        WeightsError,
        ("cell_to_input_weights", "all present or all absent"),
    ),
    "from-tensors-1d": (
        lambda: LSTMWeights.from_tensors(_with(input_to_forget_weights=np.zeros(4))),
        WeightsError,
        ("2-D", "(4,)"),
    ),
    "from-tensors-empty": (
        lambda: LSTMWeights.from_tensors({k: v[:0] for k, v in T.items()}),
        SpecError,
        ("n_cell", "0"),
    ),
    # model
    "model-no-layers": (lambda: LSTMModel(()), SpecError, ("at least one layer",)),
    "model-layers-none": (lambda: LSTMModel(None), SpecError, ("sequence of LSTMLayer",)),
    "model-one-layer-not-tuple": (lambda: LSTMModel(LSTMLayer(W)), SpecError, ("one layer",)),
    "model-weights-as-layer": (lambda: LSTMModel((W,)), SpecError, ("layers[0]", "LSTMLayer")),
    "model-chain-mismatch": (
        lambda: LSTMModel((LSTMLayer(W), LSTMLayer(LSTMWeights.random(LSTMSpec(5, 2))))),
        SpecError,
        ("layers[1].n_input", "expected 4", "found 5"),
    ),
    "model-provenance-list": (
        lambda: LSTMModel((LSTMLayer(W),), provenance=[1]),
        SpecError,
        ("provenance", "mapping"),
    ),
    "layer-forward-str": (lambda: LSTMLayer("w"), SpecError, ("LSTMLayer.forward", "str")),
    "layer-backward-str": (lambda: LSTMLayer(W, "w"), SpecError, ("LSTMLayer.backward",)),
    "layer-backward-inputs": (
        lambda: LSTMLayer(W, LSTMWeights.random(LSTMSpec(5, 4))),
        SpecError,
        ("backward.n_input", "expected 3", "found 5"),
    ),
    "layer-bidi-go-backwards": (
        lambda: LSTMLayer(W, W, go_backwards=True),
        SpecError,
        ("bidirectional",),
    ),
    "head-1d": (lambda: DenseHead(np.ones(3), np.ones(3)), WeightsError, ("2-D",)),
    "head-bias": (
        lambda: DenseHead(np.ones((2, 4)), np.ones(3)),
        WeightsError,
        ("head.bias", "[2]", "[3]"),
    ),
    "head-nan": (
        lambda: DenseHead(np.full((2, 4), np.nan), np.ones(2)),
        WeightsError,
        ("head.kernel", "NaN/inf"),
    ),
    "head-activation": (
        lambda: DenseHead(np.ones((2, 4)), np.ones(2), "relu"),
        SpecError,
        ("head.activation", "'relu'"),
    ),
    "head-width": (
        lambda: LSTMModel((LSTMLayer(W),), head=DenseHead(np.ones((2, 5)), np.ones(2))),
        WeightsError,
        ("head.kernel", "[units, 4]", "[2, 5]"),
    ),
    # options
    "options-batch-0": (lambda: CompileOptions(batch=0), SpecError, ("batch", "0")),
    "options-batch-int32": (lambda: CompileOptions(batch=2**31), SpecError, ("int32",)),
    "options-seq-float": (lambda: CompileOptions(seq_len=2.0), SpecError, ("seq_len", "2.0")),
    "options-quantize": (lambda: CompileOptions(quantize="int4"), SpecError, ("'int4'",)),
    "to-onnx-options-dict": (
        lambda: __import__("edgelstm.targets.onnx", fromlist=["x"]).to_onnx(W, {"batch": 1}),
        SpecError,
        ("CompileOptions", "dict"),
    ),
    "to-onnx-recurrence": (
        lambda: __import__("edgelstm.targets.onnx", fromlist=["x"]).to_onnx(W, recurrence="while"),
        SpecError,
        ("recurrence", "'while'"),
    ),
    "to-onnx-not-a-model": (
        lambda: __import__("edgelstm.targets.onnx", fromlist=["x"]).to_onnx("m.npz"),
        SpecError,
        ("LSTMWeights or LSTMModel", "str"),
    ),
    # input data
    "input-width": (
        lambda: reference(W, np.ones((2, 5, 4))),
        InputDataError,
        ("I = 3", "[2, 5, 4]"),
    ),
    "input-rank": (lambda: reference(W, np.ones(3)), InputDataError, ("[B, T, I]", "[3]")),
    "input-nan": (lambda: reference(W, np.full((1, 2, 3), np.nan)), InputDataError, ("NaN",)),
    "input-inf": (lambda: reference(W, np.full((1, 2, 3), np.inf)), InputDataError, ("NaN/inf",)),
    "input-ragged": (
        lambda: reference(W, [[[1, 2, 3]], [[1, 2]]]),
        InputDataError,
        ("rectangular",),
    ),
    "input-complex": (
        lambda: reference(W, np.ones((1, 2, 3), complex)),
        InputDataError,
        ("real numbers", "complex"),
    ),
    "input-strings": (
        lambda: reference(W, np.full((1, 2, 3), "a")),
        InputDataError,
        ("real numbers",),
    ),
    "state-shape": (
        lambda: reference(W, np.ones((1, 2, 3)), (np.ones((1, 3)), np.ones((1, 4)))),
        InputDataError,
        ("initial state h", "[1, 4]", "[1, 3]"),
    ),
    "state-not-a-pair": (
        lambda: reference(W, np.ones((1, 2, 3)), (np.ones((1, 4)),)),
        InputDataError,
        ("pair (h, c)",),
    ),
    "states-per-layer": (
        lambda: reference_model(W, np.ones((1, 2, 3)), []),
        InputDataError,
        ("one entry per layer (1)", "found 0"),
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_api_input(name) -> None:
    fn, cls, needles = BAD_INPUTS[name]
    with pytest.raises(cls) as info:
        fn()
    assert type(info.value) is cls
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


# -- refusals name the target and the reason --------------------------------------------------


@pytest.mark.parametrize("activation", ["linear", "sigmoid"])
def test_tflite_refuses_activation(tmp_path, capsys, activation) -> None:
    from edgelstm.targets.tflite import to_tflite

    w = W.replace(activation=activation)
    second = LSTMWeights.random(LSTMSpec(4, 4, activation=activation))
    with pytest.raises(UnsupportedError) as info:
        to_tflite(LSTMModel((LSTMLayer(LSTMWeights.random(SPEC)), LSTMLayer(second))))
    assert info.value.target == "tflite"
    assert f"layer 1: activation '{activation}'" in info.value.reason
    src = tmp_path / "w.npz"
    save_npz(w, src)
    rc = main(["compile", str(src), "-o", str(tmp_path / "w.tflite")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(
        f"edgelstm compile: error: tflite: layer 0: activation '{activation}'"
    )
    assert not (tmp_path / "w.tflite").exists()
    # ONNX expresses both exactly
    assert main(["compile", str(src), "-o", str(tmp_path / "w.onnx")]) == 0


def test_onnx_refuses_static_int8(tmp_path, capsys) -> None:
    from edgelstm.targets.onnx import to_onnx

    with pytest.raises(UnsupportedError) as info:
        to_onnx(W, CompileOptions(quantize="int8"))
    assert info.value.target == "onnx" and "static int8 is not supported" in info.value.reason
    src = tmp_path / "w.npz"
    save_npz(W, src)
    rc = main(["compile", str(src), "-o", str(tmp_path / "w.onnx"), "--quantize", "int8"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("edgelstm compile: error: onnx: static int8")
    assert len(err.splitlines()) == 1


def test_cli_folds_multi_line_messages_into_one_line(capsys, monkeypatch) -> None:
    from edgelstm.cli import compile as compile_command

    def run(args):
        raise ModelFileError("m.onnx: onnxruntime said:\n  line two\n\n  line three")

    monkeypatch.setattr(compile_command, "run", run)
    assert main(["compile", "m.npz", "-o", "m.onnx"]) == 2
    err = capsys.readouterr().err
    assert err == "edgelstm compile: error: m.onnx: onnxruntime said: line two line three\n"


def test_cli_out_of_memory_is_one_line(capsys, monkeypatch) -> None:
    from edgelstm.cli import compile as compile_command

    def run(args):
        raise MemoryError

    monkeypatch.setattr(compile_command, "run", run)
    assert main(["compile", "m.npz", "-o", "m.onnx"]) == 2
    assert capsys.readouterr().err == "edgelstm compile: error: out of memory\n"
    with pytest.raises(MemoryError):
        main(["--debug", "compile", "m.npz", "-o", "m.onnx"])


def test_cli_batch_beyond_int32(tmp_path, capsys) -> None:
    src = tmp_path / "w.npz"
    save_npz(W, src)
    rc = main(["compile", str(src), "-o", str(tmp_path / "w.tflite"), "--batch", str(2**31)])
    err = capsys.readouterr().err
    assert rc == 2 and "CompileOptions.batch" in err and "int32" in err

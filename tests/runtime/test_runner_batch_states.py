"""Runner.run on what users pass: any batch on a file compiled without ``--batch``, and
initial states through the public API, each checked against the float64 reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelstm import DenseHead, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.cli.main import main
from edgelstm.errors import InputDataError, UnsupportedError
from edgelstm.importers.npz import save_npz
from edgelstm.ir.options import CompileOptions, OnnxOptions, UnfusedOptions
from edgelstm.runtime.select import InterpreterRunner, open_runner
from edgelstm.targets.onnx import save_onnx

SPEC = LSTMSpec(n_input=5, n_cell=12, n_output=7, peephole=True, projection=True, cell_clip=3.0)
BATCH, STEPS = 8, 11
TOLERANCE = {"float": 2e-6, "dynamic": 0.01, "int8": 0.1, "unfused": 2e-6, "onnx": 2e-6}
"""Max abs vs float64: float kernels round in float32 (measured <= 5e-8); hybrid rounds the
weights to 8 bits (measured 2.4e-3); full int8 also the activations (measured 2 LSB on most
sequences, 30 LSB = 0.076 on one whose cell state saturates: the same run one sequence at a
time, so not a batch effect)."""


def _model() -> LSTMModel:
    return LSTMModel.of(LSTMWeights.random(SPEC, seed=11))


def _bidi_stack() -> LSTMModel:
    small = LSTMSpec(n_input=5, n_cell=6)
    second = LSTMSpec(n_input=12, n_cell=4)
    layers = (
        LSTMLayer(LSTMWeights.random(small, seed=1), LSTMWeights.random(small, seed=2)),
        LSTMLayer(LSTMWeights.random(second, seed=3)),
    )
    head = DenseHead(np.random.default_rng(0).normal(size=(3, 4)).astype("f4"), np.zeros(3, "f4"))
    return LSTMModel(layers, head=head)


def _x(batch: int = BATCH, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, STEPS, 5)).astype(np.float32)


def _states(model: LSTMModel, batch: int, seed: int = 5) -> list[list[tuple]]:
    rng = np.random.default_rng(seed)
    return [
        [
            (
                rng.uniform(-0.8, 0.8, (batch, w.spec.n_output)).astype(np.float32),
                rng.uniform(-1.5, 1.5, (batch, w.spec.n_cell)).astype(np.float32),
            )
            for w in layer.directions
        ]
        for layer in model.layers
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The same model compiled by the CLI without --batch, one file per kind."""
    root = tmp_path_factory.mktemp("nobatch")
    save_npz(_model(), root / "m.npz")
    cal = root / "cal.npy"
    np.save(cal, _x(64, seed=9))
    argv = {
        "float": ["-o", str(root / "float.tflite")],
        "dynamic": ["-o", str(root / "dynamic.tflite"), "--quantize", "dynamic"],
        "int8": ["-o", str(root / "int8.tflite"), "--quantize", "int8", "--calibration", str(cal)],
        "onnx": ["-o", str(root / "m.onnx")],
    }
    out = {}
    for kind, args in argv.items():
        assert main(["compile", str(root / "m.npz"), *args]) == 0
        out[kind] = Path(args[1])
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

    (root / "unfused.tflite").write_bytes(to_tflite_unfused(_model(), CompileOptions(batch=None)))
    out["unfused"] = root / "unfused.tflite"
    stream = CompileOptions(batch=None, unfused=UnfusedOptions(state_inputs=True))
    (root / "streaming_unfused.tflite").write_bytes(to_tflite_unfused(_model(), stream))
    out["streaming_unfused"] = root / "streaming_unfused.tflite"
    streaming = CompileOptions(batch=None, onnx=OnnxOptions(state_inputs=True))
    save_onnx(_model(), root / "streaming.onnx", streaming)
    out["streaming_onnx"] = root / "streaming.onnx"
    return out


@pytest.mark.parametrize("kind", sorted(TOLERANCE))
def test_file_compiled_without_batch_runs_any_batch(files, kind):
    runner = open_runner(files[kind])
    ref = reference_model(_model(), _x()).output
    for batch in (BATCH, 1, 3):  # resized down and up again on one runner
        y = runner.run(_x(batch) if batch != BATCH else _x())[0]
        want = ref if batch == BATCH else reference_model(_model(), _x(batch)).output
        assert y.shape == want.shape
        assert np.abs(y - want).max() <= TOLERANCE[kind], kind
    assert runner.input_shape[0] == -1
    one_by_one = np.concatenate([runner.run(_x()[i : i + 1])[0] for i in range(BATCH)])
    np.testing.assert_allclose(runner.run(_x())[0], one_by_one, rtol=0, atol=1e-6)


def test_plain_interpreter_resizes_the_state_variables(files):
    """The tflite-runtime path (a bare Interpreter) resizes the fused op's h/c too."""
    runner = InterpreterRunner(files["float"], 1, "litert")
    y = runner.run(_x())[0]
    assert np.abs(y - reference_model(_model(), _x()).output).max() <= 2e-6


@pytest.mark.parametrize("kind", sorted(TOLERANCE))
def test_initial_state_simple_form_and_final_states(files, kind):
    model = _model()
    states = _states(model, BATCH)
    want = reference_model(model, _x(), states)
    path = files[f"streaming_{kind}" if kind in ("onnx", "unfused") else kind]
    out = open_runner(path).run(_x(), initial_state=states[0][0])
    tol = TOLERANCE[kind]
    assert np.abs(out[0] - want.output).max() <= tol
    zero = reference_model(model, _x()).output
    assert np.abs(out[0] - zero).max() > 2 * tol  # the state really was used
    if kind == "int8":  # h is padded to n_cell in this file (edgelstm.quant.pad)
        assert out.states is None
        return
    ((h, c),) = out.states[0]
    ((want_h, want_c),) = want.states[0]
    assert np.abs(h - want_h).max() <= tol
    assert np.abs(c - want_c).max() <= 4 * tol  # c is unbounded (clipped at 3)


def test_initial_state_nested_on_a_bidirectional_stack(tmp_path):
    from edgelstm.targets.tflite import save_tflite

    model = _bidi_stack()
    save_tflite(model, tmp_path / "b.tflite", CompileOptions(batch=None))
    states = _states(model, BATCH)
    states[1][0] = None  # None keeps zeros
    want = reference_model(model, _x(), states)
    out = open_runner(tmp_path / "b.tflite").run(_x(), initial_state=states)
    assert np.abs(out[0] - want.output).max() <= 2e-6
    assert [len(layer) for layer in out.states] == [2, 1]
    got_all = [pair for layer in out.states for pair in layer]
    want_all = [pair for layer in want.states for pair in layer]
    for got, ref in zip(got_all, want_all, strict=True):
        assert np.abs(got[0] - ref[0]).max() <= 2e-6
        assert np.abs(got[1] - ref[1]).max() <= 2e-6


def test_initial_state_errors_name_the_way_out(files, tmp_path):
    from edgelstm.targets.tflite import save_tflite

    save_tflite(_bidi_stack(), tmp_path / "b.tflite", CompileOptions(batch=None))
    bidi = open_runner(tmp_path / "b.tflite")
    h, c = _states(_model(), BATCH)[0][0]
    with pytest.raises(InputDataError, match=r"\[layer\]\[direction\]"):
        bidi.run(_x(), initial_state=(h, c))
    with pytest.raises(InputDataError, match="one entry per layer"):
        bidi.run(_x(), initial_state=[[(h, c)]])
    with pytest.raises(InputDataError, match="2-D"):
        open_runner(files["float"]).run(_x(), initial_state=(h[0], c[0]))
    with pytest.raises(InputDataError, match="state_inputs=True"):
        open_runner(files["onnx"]).run(_x(), initial_state=(h, c))  # a stateless ONNX file
    with pytest.raises(InputDataError, match=r"UnfusedOptions\(state_inputs=True\)"):
        open_runner(files["unfused"]).run(_x(), initial_state=(h, c))  # stateless unfused
    with pytest.raises(UnsupportedError, match=r"UnfusedOptions\(state_inputs=True\)"):
        open_runner(files["unfused"]).impl.invoke_chunk(_x())
    plain = open_runner(files["float"], "tflite-runtime") if _has_tflite_runtime() else None
    if plain is not None:
        with pytest.raises(UnsupportedError, match="litert"):
            plain.run(_x(), initial_state=(h, c))


def _has_tflite_runtime() -> bool:
    try:
        import tflite_runtime.interpreter  # noqa: F401
    except ImportError:
        return False
    return True

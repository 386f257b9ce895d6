"""``keras_to_tflite(..., optimize="latency")``: each LSTM segment fused or unfused, whichever
links into the fastest file; checked against Keras itself (no timing assertions: the choice
depends on the machine, so every surviving candidate is checked, not only the chosen one)."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm.ir.options import CompileOptions

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter

from edgelstm.whole.keras_tflite import keras_to_tflite  # noqa: E402
from edgelstm.whole.optimize import OPTIMIZE_NAME, read_choice  # noqa: E402

FLOAT_TOL = 1e-5
T = 12


def _conv():
    return keras.Sequential(
        [
            keras.Input((2 * T, 3)),
            keras.layers.Conv1D(6, 3, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.LSTM(8),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def _masked():
    return keras.Sequential(
        [
            keras.Input((T, 4)),
            keras.layers.Masking(),
            keras.layers.LSTM(6, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(3)),
        ]
    )


def _bidi():
    return keras.Sequential(
        [
            keras.Input((T, 4)),
            keras.layers.Dense(5, activation="relu"),
            keras.layers.Bidirectional(keras.layers.LSTM(6)),
            keras.layers.Dense(3),
        ]
    )


MODELS = {"conv": (_conv, (2 * T, 3)), "masked": (_masked, (T, 4)), "bidi": (_bidi, (T, 4))}


def _inputs(name: str, n: int = 6) -> np.ndarray:
    x = np.random.default_rng(7).normal(size=(n, *MODELS[name][1])).astype(np.float32)
    if name == "masked":  # post-padded
        for k, length in enumerate(range(T - n + 1, T + 1)):
            x[k, length:] = 0.0
    return x


@pytest.fixture(scope="module")
def results():
    """(model, {quantize: (optimized result, default file)}) per model, built once."""
    out = {}
    for name, (build, _) in MODELS.items():
        keras.utils.set_random_seed(1)
        model = build()
        per = {}
        for q in ("none", "dynamic"):
            options = CompileOptions(batch=None, quantize=q)
            opt = keras_to_tflite(model, options, optimize="latency", data=_inputs(name), runs=5)
            per[q] = (opt, keras_to_tflite(model, options).data)
        out[name] = (model, per)
    return out


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    ys = []
    for row in x:
        it.set_tensor(inp["index"], row[None])
        it.invoke()
        ys.append(it.get_tensor(out["index"])[0])
    return np.stack(ys)


def _keras(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("name", list(MODELS))
def test_optimized_float_equals_keras_and_records_choice(results, name) -> None:
    model, per = results[name]
    result, _ = per["none"]
    x = np.random.default_rng(11).normal(size=(4, *MODELS[name][1])).astype(np.float32)
    assert np.abs(_run(result.data, x) - _keras(model, x)).max() <= FLOAT_TOL
    choice = read_choice(result.data)
    assert choice is not None and choice["objective"] == "latency"
    chosen = [entry["lowering"] for entry in choice["lstm_segments"]]
    assert tuple(chosen) == result.optimize.chosen.lowerings
    assert len(chosen) == 1 and chosen[0] in [c.lowerings[0] for c in result.optimize.candidates]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_float_candidate_equals_keras(results, name) -> None:
    """The unfused lowerings, linked between TF's segments, are as exact as the fused one."""
    model, per = results[name]
    table = per["none"][0].optimize
    names = {c.lowerings[0] for c in table.candidates if c.data is not None}
    assert "fused" in names and any(n.startswith("unfused") for n in names)
    x = _inputs(name)
    for c in table.candidates:
        if c.data is not None:
            assert np.abs(_run(c.data, x) - _keras(model, x)).max() <= FLOAT_TOL, c.name


@pytest.mark.parametrize("name", list(MODELS))
def test_optimized_dynamic_no_less_accurate_than_default(results, name) -> None:
    model, per = results[name]
    result, default = per["dynamic"]
    x = _inputs(name)
    ref = _keras(model, x)
    err_default = np.abs(_run(default, x) - ref).max()
    err_opt = np.abs(_run(result.data, x) - ref).max()
    assert err_opt <= max(FLOAT_TOL, 1.25 * err_default) + 1e-7
    assert read_choice(result.data)["quantize"] == "dynamic"


def test_default_conversion_has_no_choice_entry(results) -> None:
    _, per = results["conv"]
    assert read_choice(per["none"][1]) is None
    assert OPTIMIZE_NAME == "edgelstm.optimize"


def test_cli_optimize_latency(results, tmp_path, capsys) -> None:
    from edgelstm.cli.main import main

    model, _ = results["conv"]
    src = tmp_path / "conv.keras"
    model.save(src)
    out = tmp_path / "fast.tflite"
    assert main(["compile", str(src), "-o", str(out), "--optimize", "latency", "--runs", "5"]) == 0
    text = capsys.readouterr().out
    assert "whole-model latency search" in text and "chosen" in text
    x = _inputs("conv")
    assert np.abs(_run(out.read_bytes(), x) - _keras(model, x)).max() <= FLOAT_TOL
    onnx = tmp_path / "fast.onnx"
    assert main(["compile", str(src), "-o", str(onnx), "--optimize", "latency"]) != 0
    assert not onnx.exists()


@pytest.mark.torch
def test_optimize_torch_float_equals_pytorch() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    from edgelstm.whole.optimize import optimize_torch

    class ConvLstm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv1d(3, 5, 3, padding=1)
            self.lstm = torch.nn.LSTM(5, 6, batch_first=True, proj_size=4)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            y, _ = self.lstm(torch.relu(self.conv(x)).transpose(1, 2))
            return self.fc(y)

    torch.manual_seed(0)
    module = ConvLstm().eval()
    data, table = optimize_torch(module, torch.randn(1, 3, T), CompileOptions(), runs=5)
    x = torch.randn(1, 3, T)
    with torch.no_grad():
        expected = module(x).numpy()
    assert np.abs(_run(data, x.numpy()) - expected).max() <= FLOAT_TOL
    assert [e["lowering"] for e in read_choice(data)["lstm_segments"]] == list(
        table.chosen.lowerings
    )
    assert sum(c.data is not None for c in table.candidates) >= 2  # fused and unfused linked

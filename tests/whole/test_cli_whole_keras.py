"""``edgelstm compile model.keras`` on whole models: one .tflite, checked against Keras."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from edgelstm.cli.main import main

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter


@pytest.fixture(scope="module")
def conv_file(tmp_path_factory):
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((12, 3)),
            keras.layers.Conv1D(6, 3, activation="relu"),
            keras.layers.MaxPooling1D(2),
            keras.layers.LSTM(5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("whole") / "conv.keras"
    model.save(path)
    return path, model


def _run(path, x):
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], x)
    it.invoke()
    return it.get_tensor(out["index"])


def test_whole_model_compiles_to_one_file(conv_file, tmp_path, capsys):
    src, model = conv_file
    out = tmp_path / "m.tflite"
    assert main(["compile", str(src), "-o", str(out)]) == 0
    line = capsys.readouterr().out
    assert "whole Keras model: 1 LSTM segment(s) fused, 2 TF segment(s) (" in line
    assert "CONV_2D" in line and "FULLY_CONNECTED" in line
    x = np.random.default_rng(0).normal(size=(1, 12, 3)).astype(np.float32)
    assert np.abs(_run(out, x) - np.asarray(model(x))).max() <= 1e-5


def test_int8_with_calibration_and_int8_io(conv_file, tmp_path, capfd):
    src, _ = conv_file
    cal = tmp_path / "cal.npy"
    np.save(cal, np.random.default_rng(1).normal(size=(32, 12, 3)).astype(np.float32))
    out = tmp_path / "q.tflite"
    args = ["compile", str(src), "-o", str(out), "--quantize", "int8", "--calibration", str(cal)]
    assert main([*args, "--int8-io"]) == 0
    assert "fully_quantize" not in capfd.readouterr().err  # TF's C++ lines are not ours
    it = Interpreter(model_path=str(out))
    assert it.get_input_details()[0]["dtype"] == np.int8
    assert it.get_output_details()[0]["dtype"] == np.int8
    bad = tmp_path / "bad.npy"
    np.save(bad, np.random.default_rng(2).normal(size=(4, 12, 5)).astype(np.float32))
    out2 = tmp_path / "bad.tflite"
    args = ["compile", str(src), "-o", str(out2), "--quantize", "int8", "--calibration", str(bad)]
    assert main(args) == 2
    assert "calibration shape" in capfd.readouterr().err and not out2.exists()


def test_pure_lstm_stack_keeps_the_lstm_only_path(tmp_path, capsys):
    model = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(3), keras.layers.Dense(2)])
    src = tmp_path / "stack.keras"
    model.save(src)
    assert main(["compile", str(src), "-o", str(tmp_path / "s.tflite")]) == 0
    line = capsys.readouterr().out
    assert "whole Keras model" not in line and "quantize=none" in line


def test_branching_model_refused_without_a_file(tmp_path, capsys):
    inp = keras.Input((5, 3))
    merged = keras.layers.Concatenate()(
        [keras.layers.LSTM(4)(inp), keras.layers.GlobalAveragePooling1D()(inp)]
    )
    src = tmp_path / "branch.keras"
    keras.Model(inp, merged).save(src)
    out = tmp_path / "b.tflite"
    assert main(["compile", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "get_layer" in err and "Traceback" not in err and not out.exists()


def test_flags_that_do_not_apply_are_refused(conv_file, tmp_path, capsys):
    src, _ = conv_file
    out = tmp_path / "o.tflite"
    assert main(["compile", str(src), "-o", str(out), "--streaming"]) == 2
    assert "--streaming" in capsys.readouterr().err and not out.exists()


def test_onnx_without_the_module_is_a_clear_error(conv_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "edgelstm.whole.keras_onnx", None)
    src, _ = conv_file
    out = tmp_path / "o.onnx"
    assert main(["compile", str(src), "-o", str(out)]) == 2
    assert "ONNX from a whole Keras model" in capsys.readouterr().err and not out.exists()


def test_onnx_output_goes_through_keras_to_onnx(conv_file, tmp_path, capsys, monkeypatch):
    """-o X.onnx hands the loaded model and the options to keras_to_onnx (H3's module)."""
    onnx = pytest.importorskip("onnx")
    from edgelstm.whole import keras_onnx

    seen = {}

    def fake(model, options):
        seen.update(model=model, quantize=options.quantize)
        return onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))

    monkeypatch.setattr(keras_onnx, "keras_to_onnx", fake)
    src, _ = conv_file
    out = tmp_path / "m.onnx"
    assert main(["compile", str(src), "-o", str(out), "--quantize", "dynamic"]) == 0
    assert seen["quantize"] == "dynamic" and hasattr(seen["model"], "layers")
    assert onnx.load(str(out)).graph.name == "g"
    assert "whole Keras model" in capsys.readouterr().out


def test_token_ids_stay_int32_with_int8(tmp_path, capsys):
    """Calibration ids as [N, T, 1] (the loader's [N, T, I] form); the file takes int32 ids."""
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(12, 4),
            keras.layers.LSTM(4),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    src = tmp_path / "ids.keras"
    model.save(src)
    cal = tmp_path / "ids.npy"
    np.save(cal, np.random.default_rng(0).integers(0, 12, (32, 6, 1)).astype(np.int32))
    out = tmp_path / "ids.tflite"
    args = ["compile", str(src), "-o", str(out), "--quantize", "int8", "--calibration", str(cal)]
    assert main(args) == 0
    it = Interpreter(model_path=str(out))
    assert it.get_input_details()[0]["dtype"] == np.int32
    assert it.get_output_details()[0]["dtype"] == np.float32

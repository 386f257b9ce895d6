"""``compile --streaming``: a file that keeps its LSTM state between invokes, on request.

Without it every file starts each invoke from zero state (see
tests/targets/tflite/test_state_reset.py); with it the fused TFLite file carries h/c in its
variables (two invokes of T steps = one of 2T, checked against the float64 reference) and
an ONNX file takes the state as inputs. An ONNX source whose LSTM reads its state from
graph inputs (the streaming-VAD pattern) gets a note naming the flag.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, reference_model, save_npz
from edgelstm.cli.main import main
from edgelstm.inspect import format_info, inspect_model

WEIGHTS = LSTMWeights.random(LSTMSpec(3, 5), seed=2)


def _invoke(interp, x: np.ndarray) -> np.ndarray:
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def test_streaming_tflite_carries_state_and_default_resets(tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter

    src = tmp_path / "m.npz"
    save_npz(WEIGHTS, src)
    x = np.random.default_rng(0).normal(size=(2, 1, 6, 3)).astype(np.float32)
    whole = reference_model(LSTMModel.of(WEIGHTS), np.concatenate(list(x), axis=1)).output
    for flag, words in (([], "reset in the graph"), (["--streaming"], "carried across")):
        out = tmp_path / f"m{len(flag)}.tflite"
        args = ["compile", str(src), "-o", str(out), "--batch", "1", "--seq-len", "6", *flag]
        assert main(args) == 0
        assert words in format_info(inspect_model(out))
        interp = Interpreter(model_path=str(out))
        interp.allocate_tensors()
        first, second = _invoke(interp, x[0]), _invoke(interp, x[1])
        if flag:  # two invokes of 6 steps continue like one of 12
            both = np.concatenate([first, second], axis=1)
            assert np.abs(both - whole).max() <= 1e-5
        else:  # the second invoke starts from zero again
            alone = reference_model(LSTMModel.of(WEIGHTS), x[1]).output
            assert np.abs(second - alone).max() <= 1e-5
    capsys.readouterr()


def test_streaming_onnx_takes_state_inputs(tmp_path, capsys):
    src = tmp_path / "m.npz"
    save_npz(WEIGHTS, src)
    names = {}
    for flag in ([], ["--streaming"]):
        out = tmp_path / f"m{len(flag)}.onnx"
        assert main(["compile", str(src), "-o", str(out), *flag]) == 0
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        names[bool(flag)] = [i.name for i in session.get_inputs()]
    assert len(names[False]) == 1 and len(names[True]) == 3, names
    capsys.readouterr()


def _onnx_with_state_inputs(path) -> None:
    """One LSTM whose initial_h / initial_c are graph inputs (a streaming graph)."""
    rng = np.random.default_rng(1)
    i, h = 3, 4
    init = [
        numpy_helper.from_array(rng.normal(size=(1, 4 * h, i)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.normal(size=(1, 4 * h, h)).astype(np.float32), "R"),
        numpy_helper.from_array(rng.normal(size=(1, 8 * h)).astype(np.float32), "B"),
    ]
    node = helper.make_node(
        "LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["y", "hn", "cn"], hidden_size=h
    )
    graph = helper.make_graph(
        [node],
        "streaming",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, i]),
            helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, h]),
            helper.make_tensor_value_info("c0", TensorProto.FLOAT, [1, 1, h]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 1, h]),
            helper.make_tensor_value_info("hn", TensorProto.FLOAT, [1, 1, h]),
            helper.make_tensor_value_info("cn", TensorProto.FLOAT, [1, 1, h]),
        ],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def test_onnx_source_with_state_inputs_gets_a_note(tmp_path, capsys):
    src = tmp_path / "streaming.onnx"
    _onnx_with_state_inputs(src)
    assert main(["compile", str(src), "-o", str(tmp_path / "a.tflite")]) == 0
    err = capsys.readouterr().err
    assert "graph inputs (h0, c0)" in err and "--streaming" in err, err
    assert main(["compile", str(src), "-o", str(tmp_path / "b.tflite"), "--streaming"]) == 0
    assert "note:" not in capsys.readouterr().err
    assert "carried across" in format_info(inspect_model(tmp_path / "b.tflite"))

"""The ONNX intake on small hand-built graphs: what feeds an LSTM (zero states built from
shapes, folded constants, slices of graph inputs), LSTMs in subgraphs, ``lstm=`` selection,
the inspect listing and ``compile --lstm``. Numbers are checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgelstm import UnsupportedError
from edgelstm.cli.main import main
from edgelstm.importers import from_onnx
from edgelstm.importers.onnx_intake import find_lstms
from edgelstm.inspect import inspect_model
from edgelstm.inspect.text import format_info

ort = pytest.importorskip("onnxruntime")
T, B, I, H = 5, 2, 3, 4  # noqa: E741 - the ONNX spec's names


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _graph(state_nodes, state_inits, h0="h0", extra_inputs=(), outputs=("Y",)):
    """x -> LSTM(initial_h=h0, initial_c=h0) -> outputs; states built by ``state_nodes``."""
    rng = np.random.default_rng(0)
    inits = [
        _init("W", rng.uniform(-0.5, 0.5, (1, 4 * H, I)).astype(np.float32)),
        _init("R", rng.uniform(-0.5, 0.5, (1, 4 * H, H)).astype(np.float32)),
        *state_inits,
    ]
    lstm = helper.make_node(
        "LSTM", ["x", "W", "R", "", "", h0, h0], ["Y", "Y_h"], hidden_size=H, name="lstm"
    )
    graph = helper.make_graph(
        [*state_nodes, lstm],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I]), *extra_inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _zero_from_shape():
    """torch.onnx legacy style: zeros [1, B, H] from Shape(x)[1], Unsqueeze, Concat, Expand."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["b"], axis=0),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
        helper.make_node("Concat", ["d1", "b1", "dh"], ["shape"], axis=0),
        helper.make_node("Expand", ["zero", "shape"], ["h0"]),
    ]
    inits = [
        _init("one", np.array(1, np.int64)),
        _init("ax0", np.array([0], np.int64)),
        _init("d1", np.array([1], np.int64)),
        _init("dh", np.array([H], np.int64)),
        _init("zero", np.array(0.0, np.float32)),
    ]
    return nodes, inits


def _ort(model, x, outputs=None):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(outputs, {"x": x})


def test_zero_states_built_from_shapes_import_whole():
    model = _graph(*_zero_from_shape())
    (site,) = find_lstms(model)
    assert site.features()["states"] == {"initial_h": "zero", "initial_c": "zero"}
    from edgelstm import reference_model

    x = np.random.default_rng(1).normal(size=(T, B, I)).astype(np.float32)
    (y,) = _ort(model, x, ["Y"])
    got = reference_model(from_onnx(model), x).output
    assert np.abs(got - y[:, 0]).max() <= 1e-5


def test_nonzero_state_from_shapes_is_refused_with_the_op():
    nodes, inits = _zero_from_shape()
    inits[-1] = _init("zero", np.array(0.5, np.float32))  # Expand of 0.5: not zero
    model = _graph(nodes, inits)
    with pytest.raises(UnsupportedError, match=r"built from the input's shape.*not provably zero"):
        from_onnx(model)


def test_state_computed_from_data_is_refused():
    nodes = [helper.make_node("ReduceMean", ["x"], ["h0"], axes=[0], keepdims=1)]
    model = _graph(nodes, [], outputs=("Y",))
    with pytest.raises(UnsupportedError, match="initial_h 'h0' is computed by a ReduceMean"):
        from_onnx(model)


def test_lstm_selection_and_other_ops():
    nodes, inits = _zero_from_shape()
    model = _graph(nodes, inits, outputs=("Z",))
    model.graph.node.append(helper.make_node("Relu", ["Y"], ["Z"]))
    with pytest.raises(UnsupportedError, match=r"Relu.*--lstm NAME.*-o OUT.onnx: every LSTM"):
        from_onnx(model)
    imported = from_onnx(model, lstm="lstm")
    assert imported.return_sequences and imported.time_major
    with pytest.raises(UnsupportedError, match=r"'nope' is not an LSTM node.*\['lstm'\]"):
        from_onnx(model, lstm="nope")


def test_inspect_lists_lstm_nodes_and_compile_lstm(tmp_path, capsys):
    nodes, inits = _zero_from_shape()
    model = _graph(nodes, inits, outputs=("Z",))
    model.graph.node.append(helper.make_node("Relu", ["Y"], ["Z"]))
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    info = inspect_model(path)
    (entry,) = info.lstm_nodes
    assert entry["name"] == "lstm" and entry["tflite"] == "fused LSTM op: --lstm lstm"
    assert "LSTM nodes" in format_info(info)
    out = tmp_path / "out.tflite"
    assert main(["compile", str(path), "-o", str(out)]) != 0 and not out.exists()
    assert "--lstm NAME" in capsys.readouterr().err
    assert main(["compile", str(path), "-o", str(out), "--lstm", "lstm"]) == 0
    assert out.exists()

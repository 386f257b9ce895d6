"""verify feeds a foreign (exporter-style) ONNX LSTM graph in the layout its LSTM reads.

Regression: a time-major [T, B, I] graph with a fixed batch of 1 was fed batch-major
(T read as the batch), so verify reported a false error of ~0.15 on an exact file.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgelstm.inspect import inspect_model
from edgelstm.measure.verify import verify

T, B, N_IN, H = 5, 1, 4, 8


def _time_major_graph(path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (1, 4 * H, N_IN)).astype(np.float32)
    r = rng.normal(0, 0.5, (1, 4 * H, H)).astype(np.float32)
    b = rng.normal(0, 0.1, (1, 8 * H)).astype(np.float32)
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["y4"], hidden_size=H, name="lstm")
    squeeze = helper.make_node("Squeeze", ["y4", "axis1"], ["y"])  # as torch.onnx writes it
    axis1 = numpy_helper.from_array(np.array([1], np.int64), "axis1")
    graph = helper.make_graph(
        [node, squeeze],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [T, B, N_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [T, B, H])],
        [numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"))] + [axis1],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_time_major_foreign_graph_is_fed_time_major(tmp_path):
    path = tmp_path / "tm.onnx"
    _time_major_graph(path)
    assert inspect_model(path).time_major is True
    result = verify(path, probe=False)
    assert result.input_shape[1] == T  # [N, T, I] after reading: T steps, not T sequences
    assert result.error.max_abs < 1e-5


def test_lstm_cut_from_a_whole_graph_is_verified_against_that_node(tmp_path):
    """A file compiled with --lstm from a graph with other ops finds its source node again
    (provenance records the node): the reference counts the int8 weight rounding."""
    from edgelstm.cli.main import main

    path = tmp_path / "whole.onnx"
    _time_major_graph(path)
    model = onnx.load(str(path))
    model.graph.node.append(helper.make_node("Relu", ["y"], ["z"]))
    model.graph.output[0].name = "z"
    onnx.save(model, str(path))
    cal = tmp_path / "cal.npy"
    np.save(cal, np.random.default_rng(1).normal(size=(8, T, N_IN)).astype(np.float32))
    out = tmp_path / "lstm8.tflite"
    args = ["compile", str(path), "--lstm", "lstm", "-o", str(out), "--quantize", "int8"]
    assert main([*args, "--calibration", str(cal)]) == 0
    result = verify(out, probe=False)
    assert "whole.onnx (from provenance, digest match)" in result.reference

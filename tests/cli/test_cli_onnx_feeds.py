"""``edgelstm compile graph.onnx -o out.onnx --quantize dynamic --calibration FEEDS.npz``:
the whole-graph rewrite's int8 weight scheme measured on the graph's own inputs.

Oracle: onnxruntime on the original float graph; the bar: onnxruntime's own
``quantize_dynamic`` (defaults) of the original, on the same inputs (#17).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgelstm.cli.main import main
from edgelstm.errors import SpecError
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.onnx.rewrite import rewrite_onnx

ort = pytest.importorskip("onnxruntime")
F, E, H = 6, 16, 32


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """MatMul -> LSTM -> Y as an exporter writes it: x [T, 1, F] (T dynamic) -> y."""
    rng = np.random.default_rng(7)

    def init(name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    nodes = [
        helper.make_node("MatMul", ["x", "w_in"], ["e"]),
        helper.make_node("LSTM", ["e", "W", "R", "B"], ["y4"], hidden_size=H),
        helper.make_node("Squeeze", ["y4", "axes"], ["y"]),
    ]
    inits = [
        init("w_in", F, E),
        init("W", 1, 4 * H, E),
        init("R", 1, 4 * H, H),
        init("B", 1, 8 * H, scale=0.1),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, F])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", 1, H])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    root = tmp_path_factory.mktemp("feeds")
    path = root / "g.onnx"
    onnx.save(model, path)
    feeds = root / "feeds.npz"  # real-looking inputs: positive, larger than N(0, 1)
    np.savez(feeds, x=rng.uniform(0, 4, (6, 12, 1, F)))
    return {"root": root, "path": path, "feeds": feeds}


def _run(data, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_calibrated_scheme_never_less_accurate_than_ort(graph, capsys) -> None:
    from onnxruntime.quantization import quantize_dynamic

    out, theirs = graph["root"] / "cal.onnx", graph["root"] / "ort.onnx"
    args = ["compile", str(graph["path"]), "-o", str(out), "--quantize", "dynamic"]
    assert main([*args, "--calibration", str(graph["feeds"])]) == 0
    err = capsys.readouterr().err
    assert "measured on 6 given feed(s)" in err and "seeded" not in err
    scheme = json.loads(
        {p.key: p.value for p in onnx.load(out).metadata_props}["edgelstm.quantize.scheme"]
    )
    assert scheme["measured_on"] == "6 given feed(s)"
    quantize_dynamic(str(graph["path"]), str(theirs))
    xs = np.load(graph["feeds"])["x"].astype(np.float32)
    ref = np.stack([_run(str(graph["path"]), x) for x in xs])
    ours = np.stack([_run(str(out), x) for x in xs])
    ort_q = np.stack([_run(str(theirs), x) for x in xs])
    rmse = [float(np.sqrt(np.mean((y - ref) ** 2))) for y in (ours, ort_q)]
    print(f"\nwhole-graph dynamic on the feeds: edgelstm {rmse[0]:.3e}, ORT {rmse[1]:.3e}")
    assert 0 < rmse[0] <= 1.02 * rmse[1], (scheme, rmse)


def test_without_calibration_the_note_says_how(graph, capsys) -> None:
    out = graph["root"] / "seeded.onnx"
    assert main(["compile", str(graph["path"]), "-o", str(out), "--quantize", "dynamic"]) == 0
    err = capsys.readouterr().err
    assert "measured on seeded N(0, 1) inputs" in err and "--calibration FEEDS.npz" in err


def test_refusals_write_nothing(graph, tmp_path, capsys) -> None:
    out = tmp_path / "out.onnx"
    base = ["compile", str(graph["path"]), "-o", str(out), "--calibration", str(graph["feeds"])]
    assert main(base) == 2
    assert "add --quantize dynamic" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=np.zeros((2, 12, 1, F)))
    assert main([*base[:-1], str(bad), "--quantize", "dynamic"]) == 2
    err = capsys.readouterr().err
    assert "no array for ['x']" in err and "'x' [T, 1, 6] float32" in err
    assert not out.exists()


def test_api_feeds(graph) -> None:
    model = onnx.load(graph["path"])
    x = np.load(graph["feeds"])["x"]
    with pytest.raises(SpecError, match="quantize='dynamic'"):
        rewrite_onnx(model, CompileOptions(), feeds={"x": x})
    proto, report = rewrite_onnx(model, CompileOptions(quantize="dynamic"), feeds=x[:2])
    assert report.applied
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["edgelstm.quantize.scheme"])["measured_on"] == "2 given feed(s)"

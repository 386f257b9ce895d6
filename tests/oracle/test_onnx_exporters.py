"""Exporter corpus: every LSTM that torch.onnx (both exporters), tf2onnx, If/Loop graphs and
onnxruntime's DynamicQuantizeLSTM produce is imported (``lstm=`` / ``--lstm``, or the whole
graph when it holds only LSTMs and glue) and its fused TFLite file matches onnxruntime running
the ORIGINAL graph (the LSTM's X and Y exposed as outputs) and the source framework, <= 1e-5.
"""

from __future__ import annotations

import contextlib

import numpy as np
import onnx
import pytest
from _exporter_corpus import (
    control_flow_cases,
    tf2onnx_cases,
    torch_cases,
    with_outputs,
)

from edgelstm import UnsupportedError
from edgelstm.importers import from_onnx
from edgelstm.importers.onnx_intake import find_lstms
from edgelstm.ir.options import CompileOptions
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite import to_tflite

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow
TOL = 1e-5
DYNAMIC = CompileOptions(batch=None)  # as the CLI compiles by default


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    root = tmp_path_factory.mktemp("exporters")
    cases = torch_cases(root) | control_flow_cases(root)
    with contextlib.suppress(ImportError):  # tf2onnx is a dev extra; else those are skipped
        cases |= tf2onnx_cases(root)
    return cases


def _merged(y: np.ndarray) -> np.ndarray:
    """ONNX Y [T, D, B, H] -> [T, B, D*H] (the imported model's output layout)."""
    t, d, b, h = y.shape
    return np.transpose(y, (0, 2, 1, 3)).reshape(t, b, d * h)


def _session(data: bytes | str):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _check_chain(case, sites) -> float:
    """Compile the chain, run it on the X the original graph computes, compare."""
    model = from_onnx(case.path, lstm=[s.where for s in sites])
    x_name, y_name = sites[0].node.input[0], sites[-1].node.output[0]
    if sites[0].path:  # inside a subgraph: the cases feed X from a graph input, Y is output
        feeds = case.x | (
            {"cond": np.array("then_branch" in sites[0].path)} if "cond" in case.x else {}
        )
        x, y = case.x["x"], _session(str(case.path)).run(None, feeds)[0]
        y = y[0] if y.ndim == 5 else y  # Loop stacks one Y per iteration
    else:
        sess = _session(with_outputs(case.path, [x_name, y_name]))
        x, y = sess.run([x_name, y_name], case.x)
    want = _merged(y)
    got = LiteRTRunner(to_tflite(model, DYNAMIC)).run(x)[0]
    err = float(np.abs(got - want).max())
    if case.source is not None:
        err = max(err, float(np.abs(got - case.source(x)).max()))
    return err


EXPECTED = {  # whole-graph -o .tflite: accepted, or refused with the reason
    "torch_legacy_one_zero": None,
    "torch_dynamo_one_zero": None,
    "torch_legacy_one_h0": None,
    "torch_dynamo_one_h0": None,
    "torch_legacy_bidi2_zero": "Concat",
    "torch_legacy_linlstmlin_zero": "MatMul",
    "tf2onnx_lstm_dense": "MatMul",
    "if_lstm": "--lstm NAME",
}


def test_every_lstm_compiles_exactly(corpus):
    errors = {}
    for name, case in sorted(corpus.items()):
        sites = find_lstms(onnx.load(str(case.path)))
        assert sites and all(s.problem is None for s in sites), (name, [s.problem for s in sites])
        groups = [[s] for s in sites] if sites[0].path else [sites]  # subgraphs: one each
        errors[name] = max(_check_chain(case, g) for g in groups)
    assert len(errors) >= 17, sorted(errors)
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, bad


def test_whole_graph_import_or_named_refusal(corpus):
    for name, reason in EXPECTED.items():
        case = corpus[name]
        if reason is not None:
            with pytest.raises(UnsupportedError, match=reason):
                from_onnx(case.path)
            continue
        model = from_onnx(case.path)
        out = _session(str(case.path)).run(None, case.x)[0]
        got = LiteRTRunner(to_tflite(model, DYNAMIC)).run(case.x["x"])[0]
        assert np.abs(got - out.reshape(got.shape)).max() <= TOL, name


def test_dynamo_proj_size_is_refused_with_the_reason(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from _exporter_corpus import _quiet

    lstm = torch.nn.LSTM(5, 8, proj_size=3)

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = lstm

        def forward(self, x):
            return self.lstm(x)[0]

    path = tmp_path / "proj.onnx"
    with _quiet():
        torch.onnx.export(Wrap(), (torch.randn(4, 2, 5),), str(path), dynamo=True)
    for lstm_arg in (None, "node_lstm__2"):
        with pytest.raises(
            UnsupportedError, match=r"dropped the projection.*compile lstm.pt .* --prefix"
        ):
            sites = find_lstms(onnx.load(str(path)))
            from_onnx(path, lstm=lstm_arg if lstm_arg is None else sites[0].name)


def test_dynamic_quantize_lstm(corpus, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = corpus["torch_legacy_one_zero"]
    path = tmp_path / "dq.onnx"
    quantize_dynamic(str(src.path), str(path), weight_type=QuantType.QInt8)
    (site,) = find_lstms(onnx.load(str(path)))
    assert site.node.op_type == "DynamicQuantizeLSTM" and site.problem is None
    model = from_onnx(path)
    assert any("dequantized" in n for n in model.provenance["notes"])
    got = LiteRTRunner(to_tflite(model, DYNAMIC)).run(src.x["x"])[0]
    # Independent dequantization: the int8 initializers, (q - zp) * scale, as a float LSTM.
    init = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    node = site.node

    w = (init[node.input[1]].astype(np.float64) - init[node.input[9]]) * init[node.input[8]]
    r = (init[node.input[2]].astype(np.float64) - init[node.input[11]]) * init[node.input[10]]
    floats = onnx.helper.make_graph(
        [onnx.helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y"], hidden_size=7)],
        "deq",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
        [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
        [
            onnx.numpy_helper.from_array(np.transpose(w, (0, 2, 1)).astype(np.float32), "W"),
            onnx.numpy_helper.from_array(np.transpose(r, (0, 2, 1)).astype(np.float32), "R"),
            onnx.numpy_helper.from_array(init[node.input[3]], "B"),
        ],
    )
    proto = onnx.helper.make_model(floats, opset_imports=[onnx.helper.make_opsetid("", 17)])
    (y,) = _session(proto.SerializeToString()).run(None, {"x": src.x["x"]})
    assert np.abs(got - _merged(y)).max() <= TOL
    (y_q,) = _session(str(path)).run(None, src.x)[:1]  # ORT's own int8 kernel
    assert np.abs(got - y_q.reshape(got.shape)).max() <= 0.05

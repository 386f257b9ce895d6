"""Whole-graph ONNX rewrite on real exporter output: every LSTM node replaced by edgelstm's
lowering, everything else kept, ALL graph outputs <= 1e-5 vs onnxruntime running the
ORIGINAL graph; ``quantize="dynamic"`` gives one model whose error vs the float original is
reported; the dynamo proj_size graph is refused with the reason.

Corpus: torch.onnx (both exporters x {1 layer, 2-layer bidi batch_first, Linear->LSTM->Linear}
x {zero states, h0/c0 inputs}), tf2onnx (LSTM, Bidirectional, LSTM+Dense), LSTMs inside If
and Loop (tests/oracle/_exporter_corpus.py), the six onnx backend LSTM cases (their expected
data is the oracle), and the pretrained Silero VAD when its wheel can be fetched.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import onnx
import pytest
from _exporter_corpus import control_flow_cases, tf2onnx_cases, torch_cases
from test_onnx_backend_roundtrip import CASES, RUNTIME_INPUTS
from test_pretrained_vad import _speech_like, _vad_batch, vad_models  # noqa: F401 - fixture

from edgelstm.importers.onnx_intake import find_lstms
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.onnx.rewrite import rewrite_onnx
from edgelstm.targets.onnx.rewrite.apply import report_of

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow
TOL = 1e-5
DYNAMIC = CompileOptions(quantize="dynamic")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    root = tmp_path_factory.mktemp("rewrite_corpus")
    cases = torch_cases(root) | control_flow_cases(root)
    with contextlib.suppress(ImportError):  # tf2onnx is a dev extra; else those are skipped
        cases |= tf2onnx_cases(root)
    return cases


def _session(model: onnx.ModelProto | str):
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _feeds_for(case) -> list[dict[str, np.ndarray]]:
    """Every branch of an If case; the case's own feeds otherwise."""
    if "cond" in case.x:
        return [case.x | {"cond": np.array(c)} for c in (True, False)]
    return [case.x]


def _errors(original, rewritten, feeds) -> float:
    want = _session(original).run(None, feeds)
    got = _session(rewritten).run(None, feeds)
    assert len(want) == len(got)
    return max(float(np.abs(w - g).max()) for w, g in zip(want, got, strict=True))


def test_every_corpus_graph_rewrites_exactly(corpus):
    errors, quantized = {}, {}
    for name, case in sorted(corpus.items()):
        source = onnx.load(str(case.path))
        new, report = rewrite_onnx(case.path)
        assert len(report.applied) == len(find_lstms(source)) and not report.refused, name
        assert [i.name for i in new.graph.input] == [i.name for i in source.graph.input]
        assert [o.name for o in new.graph.output] == [o.name for o in source.graph.output]
        assert new.opset_import[0].version == source.opset_import[0].version
        assert report_of(new)["rewritten"], name
        errors[name] = max(_errors(str(case.path), new, f) for f in _feeds_for(case))
        q, _ = rewrite_onnx(case.path, DYNAMIC)
        assert any(n.op_type == "DynamicQuantizeLSTM" for n in _all_nodes(q)), name
        quantized[name] = max(_errors(str(case.path), q, f) for f in _feeds_for(case))
    print(f"\nwhole-graph float error: {errors}\nwhole-graph dynamic int8 error: {quantized}")
    assert len(errors) >= 17, sorted(errors)
    assert all(e <= TOL for e in errors.values()), errors
    assert all(e <= 0.05 for e in quantized.values()), quantized


def _all_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    from edgelstm.targets.onnx.weight_schemes import walk_graphs

    return [n for g in walk_graphs(model.graph) for n in g.node]


@pytest.mark.parametrize("name", sorted(CASES))
def test_backend_cases_match_their_expected_data(name):
    """Weights as graph inputs with initializer defaults (kept as inputs): the rewritten
    model reproduces the case's expected outputs."""
    case = CASES[name]
    inputs, outputs = case.data_sets[0]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    values = {i.name: v for i, v in zip(model.graph.input, inputs, strict=True)}
    for i in model.graph.input:
        if i.name not in RUNTIME_INPUTS:
            model.graph.initializer.append(onnx.numpy_helper.from_array(values[i.name], i.name))
    new, report = rewrite_onnx(model)
    assert len(report.applied) == 1, report.to_dict()
    assert [i.name for i in new.graph.input] == [i.name for i in model.graph.input]
    sess = _session(new)
    got = sess.run(None, {i.name: values[i.name] for i in sess.get_inputs()})
    for g, w in zip(got, outputs, strict=True):
        assert g.shape == w.shape and np.abs(g - w).max() <= TOL


def test_dynamic_quantize_lstm_source(corpus, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = corpus["torch_legacy_linlstmlin_zero"]
    path = tmp_path / "dq.onnx"
    quantize_dynamic(str(src.path), str(path), weight_type=QuantType.QInt8)
    new, report = rewrite_onnx(path)
    (done,) = report.applied
    assert "dequantized" in done.detail and any("dequantized" in n for n in done.info["notes"])
    # Same int8 weights as ORT's kernel, activations kept float: close to ORT's own output.
    assert _errors(str(path), new, src.x) <= 0.05


def test_dynamo_proj_size_is_refused_with_the_reason(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from _exporter_corpus import _quiet

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(5, 8, proj_size=3)

        def forward(self, x):
            return self.lstm(x)[0]

    path = tmp_path / "proj.onnx"
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrap().eval(), (torch.randn(4, 2, 5),), str(path), dynamo=True)
    _, report = rewrite_onnx(path)
    assert not report.applied
    assert "dropped the projection" in report.refused[0].detail


def test_pretrained_vad_whole_graph(vad_models):  # noqa: F811 - the imported fixture
    batch = _vad_batch(_speech_like())
    half = len(batch) // 2
    for path in vad_models:
        new, report = rewrite_onnx(path)
        assert report.applied and not report.refused
        assert report.applied[0].info["states"] == "wired"  # h/c stay graph inputs
        orig, ours = _session(str(path)), _session(new)
        zero = np.zeros((1, 1, 128), np.float32)
        for sess_pair in ((orig, ours),):
            runs = []
            for sess in sess_pair:  # two calls, the state carried by the caller
                _, h, c = sess.run(None, {"input": batch[:half], "h": zero, "c": zero})
                runs.append(sess.run(None, {"input": batch[half:], "h": h, "c": c}))
            for w, g in zip(*runs, strict=True):
                assert np.abs(w - g).max() <= TOL
        q, _ = rewrite_onnx(path, DYNAMIC)
        feeds = {"input": batch, "h": zero, "c": zero}
        err = float(np.abs(orig.run(None, feeds)[0] - _session(q).run(None, feeds)[0]).max())
        print(f"\n{path.name}: whole-graph dynamic int8, max |probability error| {err:.3f}")


def test_pretrained_vad_lstm_streaming_tflite(vad_models, tmp_path):  # noqa: F811
    """``--lstm NAME --streaming``: the fused TFLite file carries h/c itself; two invokes of
    half the VAD's features continue like onnxruntime's one pass from zero state."""
    from ai_edge_litert.interpreter import Interpreter

    from edgelstm.cli.main import main

    batch = _vad_batch(_speech_like())
    for path in vad_models:
        model = onnx.load(str(path))
        (site,) = find_lstms(model)
        out = tmp_path / "vad_stream.tflite"
        args = ["compile", str(path), "-o", str(out), "--lstm", site.name, "--streaming"]
        assert main([*args, "--batch", "1"]) == 0
        for name in (site.node.input[0], site.node.output[0]):
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, 1, None))
        zero = np.zeros((1, 1, 128), np.float32)
        *_, x, y = _session(model).run(None, {"input": batch, "h": zero, "c": zero})
        half = len(x) // 2
        interp = Interpreter(model_path=str(out))
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], [half, 1, x.shape[2]])
        interp.allocate_tensors()
        got = []
        for part in (x[:half], x[half : 2 * half]):
            interp.set_tensor(interp.get_input_details()[0]["index"], part)
            interp.invoke()
            got.append(interp.get_tensor(interp.get_output_details()[0]["index"]).copy())
        want = y[: 2 * half].reshape(2 * half, 1, -1)
        assert np.abs(np.concatenate(got) - want).max() <= TOL

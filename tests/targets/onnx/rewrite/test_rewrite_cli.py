"""``edgelstm compile model.onnx -o out.onnx``: the whole-graph rewrite from the command line,
and streaming from an ONNX source whose LSTM states are graph inputs/outputs (the VAD
pattern): ``--lstm NAME --streaming`` gives a TFLite file that carries the state itself, the
whole-graph ONNX keeps the same state interface. Oracle: onnxruntime on the original graph.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgelstm.cli.main import main
from edgelstm.targets.onnx.rewrite.apply import report_of

ort = pytest.importorskip("onnxruntime")
T, F, H, K = 8, 3, 5, 2  # steps, features, hidden, head outputs
TOL = 1e-5


def _vad_like(path, clip: float | None = None) -> None:
    """x -> Relu -> LSTM (h/c graph inputs, final h/c graph outputs) -> MatMul -> Sigmoid."""
    rng = np.random.default_rng(7)
    init = [
        numpy_helper.from_array(rng.uniform(-0.7, 0.7, s).astype(np.float32), n)
        for n, s in (("W", (1, 4 * H, F)), ("R", (1, 4 * H, H)), ("B", (1, 8 * H)))
    ]
    init.append(numpy_helper.from_array(rng.normal(size=(H, K)).astype(np.float32), "head"))
    extra = {} if clip is None else {"clip": clip}
    nodes = [
        helper.make_node("Relu", ["x"], ["xr"]),
        helper.make_node(
            "LSTM",
            ["xr", "W", "R", "B", "", "h", "c"],
            ["y", "hn", "cn"],
            hidden_size=H,
            name="rnn",
            **extra,
        ),
        helper.make_node("Squeeze", ["y", "one"], ["y3"]),
        helper.make_node("MatMul", ["y3", "head"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["prob"]),
    ]
    init.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    state = [1, 1, H]
    graph = helper.make_graph(
        nodes,
        "vad_like",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", 1, F]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, state),
            helper.make_tensor_value_info("c", TensorProto.FLOAT, state),
        ],
        [
            helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["t", 1, K]),
            helper.make_tensor_value_info("hn", TensorProto.FLOAT, state),
            helper.make_tensor_value_info("cn", TensorProto.FLOAT, state),
        ],
        init,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture
def vad(tmp_path):
    path = tmp_path / "vad_like.onnx"
    _vad_like(path)
    return path


def _session(path_or_bytes):
    return ort.InferenceSession(
        str(path_or_bytes) if not isinstance(path_or_bytes, bytes) else path_or_bytes,
        providers=["CPUExecutionProvider"],
    )


def _chunks(sess, xs) -> list[list[np.ndarray]]:
    """Run chunk after chunk, carrying h/c as the caller of a streaming VAD does."""
    h = c = np.zeros((1, 1, H), np.float32)
    outs = []
    for x in xs:
        prob, h, c = sess.run(None, {"x": x, "h": h, "c": c})
        outs.append([prob, h, c])
    return outs


def test_whole_graph_keeps_the_state_interface(vad, tmp_path, capsys):
    out = tmp_path / "out.onnx"
    assert main(["compile", str(vad), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rewrote 1 LSTM node(s) (fused LSTM); kept" in printed and "bytes" in printed
    orig, new = _session(vad), _session(out)
    assert [(i.name, i.shape) for i in new.get_inputs()] == [
        (i.name, i.shape) for i in orig.get_inputs()
    ]
    assert [o.name for o in new.get_outputs()] == ["prob", "hn", "cn"]
    xs = list(np.random.default_rng(1).normal(size=(3, T, 1, F)).astype(np.float32))
    for want, got in zip(_chunks(orig, xs), _chunks(new, xs), strict=True):
        for w, g in zip(want, got, strict=True):
            assert np.abs(w - g).max() <= TOL
    stored = report_of(onnx.load(str(out)))
    assert stored["rewritten"][0]["states"] == "wired"


def test_lstm_streaming_tflite_carries_the_state(vad, tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "rnn.tflite"
    args = ["compile", str(vad), "-o", str(out), "--lstm", "rnn", "--streaming", "--batch", "1"]
    assert main(args) == 0
    capsys.readouterr()
    probe = onnx.load(str(vad))  # the LSTM's own X and Y, from the original graph
    probe.graph.output.extend(
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("xr", "y")
    )
    sess = _session(probe.SerializeToString())
    x = np.random.default_rng(2).normal(size=(2 * T, 1, F)).astype(np.float32)
    zero = np.zeros((1, 1, H), np.float32)
    _, _, _, xr, y = sess.run(None, {"x": x, "h": zero, "c": zero})
    interp = Interpreter(model_path=str(out))
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], [T, 1, F])  # time-major
    interp.allocate_tensors()
    got = []
    for half in (xr[:T], xr[T:]):  # two invokes of T steps continue like one of 2T
        interp.set_tensor(interp.get_input_details()[0]["index"], half)
        interp.invoke()
        got.append(interp.get_tensor(interp.get_output_details()[0]["index"]).copy())
    assert np.abs(np.concatenate(got).reshape(y.shape) - y).max() <= TOL


def test_quantize_dynamic_from_the_cli(vad, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    assert main(["compile", str(vad), "-o", str(out), "--quantize", "dynamic"]) == 0
    assert "quantize=dynamic" in capsys.readouterr().out
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops
    xs = list(np.random.default_rng(3).normal(size=(2, T, 1, F)).astype(np.float32))
    for want, got in zip(_chunks(_session(vad), xs), _chunks(_session(out), xs), strict=True):
        assert np.abs(want[0] - got[0]).max() <= 0.05


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--streaming"], "--lstm NAME --streaming"),
        (["--quantize", "int8"], "static int8"),
        (["--seq-len", "4"], "--seq-len do(es) not apply"),
        (["--time-major", "--batch", "2"], "--batch, --time-major"),
        (["--optimize", "latency", "--max-error", "1e-3"], "--optimize"),
    ],
)
def test_flags_that_do_not_apply_are_refused(vad, tmp_path, capsys, flags, words):
    out = tmp_path / "o.onnx"
    assert main(["compile", str(vad), "-o", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not out.exists()


def test_nothing_rewritable_is_refused_and_writes_nothing(tmp_path, capsys):
    src, out = tmp_path / "clip.onnx", tmp_path / "o.onnx"
    _vad_like(src, clip=0.5)
    assert main(["compile", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "can be rewritten" in err and "clip" in err
    assert not out.exists()


def test_lstm_flag_and_own_files_take_the_lstm_only_path(vad, tmp_path, capsys):
    own = tmp_path / "own.onnx"
    assert main(["compile", str(vad), "-o", str(own), "--lstm", "rnn"]) == 0
    assert report_of(onnx.load(str(own))) is None  # edgelstm's own LSTM file, not a rewrite
    again = tmp_path / "again.onnx"
    assert main(["compile", str(own), "-o", str(again)]) == 0
    assert report_of(onnx.load(str(again))) is None
    capsys.readouterr()


def test_a_refused_node_is_kept_and_noted(vad, tmp_path, capsys):
    """A second LSTM with gate clip: kept unchanged (a note says why); the first rewritten."""
    model = onnx.load(str(vad))
    model.graph.node.append(
        helper.make_node("LSTM", ["xr", "W", "R", "B"], ["y_clip"], hidden_size=H, clip=0.5)
    )
    model.graph.output.append(helper.make_tensor_value_info("y_clip", TensorProto.FLOAT, None))
    src, out = tmp_path / "two.onnx", tmp_path / "two_out.onnx"
    onnx.save(model, str(src))
    assert main(["compile", str(src), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert (
        "rewrote 1 LSTM node(s)" in captured.out and "1 LSTM node(s) kept unchanged" in captured.out
    )
    assert "note: LSTM y_clip kept unchanged" in captured.err and "clip" in captured.err
    xs = list(np.random.default_rng(4).normal(size=(1, T, 1, F)).astype(np.float32))
    feeds = {"x": xs[0], "h": np.zeros((1, 1, H), np.float32), "c": np.zeros((1, 1, H), np.float32)}
    for w, g in zip(_session(src).run(None, feeds), _session(out).run(None, feeds), strict=True):
        assert np.abs(w - g).max() <= TOL

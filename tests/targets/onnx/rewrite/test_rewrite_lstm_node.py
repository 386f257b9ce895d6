"""The LSTM-node rewrite rule on small hand-built graphs: match / check / rewrite, and the
rewritten model equal to onnxruntime running the ORIGINAL graph (all outputs).

ORT rejects ``layout=1``, so batch-major nodes are compared with the same node built
time-major (inputs and outputs transposed by the test).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgelstm import UnsupportedError
from edgelstm.ir.options import CompileOptions, OnnxOptions
from edgelstm.targets.onnx.rewrite import RewriteReport, rewrite_onnx
from edgelstm.targets.onnx.rewrite.apply import report_of
from edgelstm.targets.onnx.rewrite.lstm_node import LstmNodeRule
from edgelstm.targets.onnx.rewrite.rule import Context
from edgelstm.targets.onnx.weight_schemes import PAIR_LIMIT, pair_sums

ort = pytest.importorskip("onnxruntime")
T, B, F, H = 5, 2, 3, 4
TOL = 1e-5
COMPOSITE = CompileOptions(onnx=OnnxOptions(force_composite=True))


def _lstm_graph(
    direction: str = "forward",
    layout: int = 0,
    states: str = "inputs",  # "inputs" | "absent" | "zeros" (shape-built) | "h_only"
    outputs: tuple[str, ...] = ("y", "yh", "yc"),
    opset: int = 17,
    seed: int = 0,
    lens: bool = False,
    peephole: bool = False,
    **attrs,
) -> onnx.ModelProto:
    """Relu -> LSTM -> (Y, Y_h, Y_c as graph outputs through Identity/Tanh): a node with
    real neighbours, not a graph that is only the LSTM."""
    rng = np.random.default_rng(seed)
    d = 2 if direction == "bidirectional" else 1
    shapes = {"W": (d, 4 * H, F), "R": (d, 4 * H, H), "B": (d, 8 * H), "P": (d, 3 * H)}
    inits = [
        numpy_helper.from_array(rng.uniform(-0.6, 0.6, s).astype(np.float32), n)
        for n, s in shapes.items()
        if n != "P" or peephole
    ]
    x_shape = [T, B, F] if layout == 0 else [B, T, F]
    s_shape = [d, B, H] if layout == 0 else [B, d, H]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    nodes = [helper.make_node("Relu", ["x"], ["xr"], name="relu")]
    h0 = c0 = ""
    if states in ("inputs", "h_only"):
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, s_shape))
        h0 = "h0"
        if states == "inputs":
            inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, s_shape))
            c0 = "c0"
    elif states == "zeros":  # torch's legacy pattern: zeros shaped on the run-time batch
        nodes += [
            helper.make_node("Shape", ["x"], ["xs"]),
            helper.make_node("Gather", ["xs", "bidx"], ["b1"], axis=0),
            helper.make_node("Concat", ["dd", "b1", "hh"], ["zshape"], axis=0),
            helper.make_node("ConstantOfShape", ["zshape"], ["z"], name="zeros"),
        ]
        inits += [
            numpy_helper.from_array(np.array([1 - layout], np.int64), "bidx"),
            numpy_helper.from_array(np.array([d], np.int64), "dd"),
            numpy_helper.from_array(np.array([H], np.int64), "hh"),
        ]
        h0 = c0 = "z"
    seq = ""
    if lens:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [B]))
        seq = "lens"
    names = ["y_raw", "yh_raw", "yc_raw"]
    outs = [n if n[:-4] in outputs else "" for n in names]
    lstm_inputs = ["xr", "W", "R", "B", seq, h0, c0, "P" if peephole else ""]
    while not lstm_inputs[-1]:
        lstm_inputs.pop()
    nodes.append(
        helper.make_node(
            "LSTM",
            lstm_inputs,
            outs,
            name="the_lstm",
            hidden_size=H,
            direction=direction,
            **({"layout": layout} if layout else {}),
            **attrs,
        )
    )
    graph_outs = []
    for raw in outs:
        if raw:
            nodes.append(helper.make_node("Tanh", [raw], [raw[:-4]]))
            graph_outs.append(helper.make_tensor_value_info(raw[:-4], TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", inputs, graph_outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _feeds(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in model.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if i.type.tensor_type.elem_type == TensorProto.INT32:
            feeds[i.name] = rng.integers(1, T + 1, dims).astype(np.int32)
        else:
            feeds[i.name] = rng.normal(size=dims).astype(np.float32)
    return feeds


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _time_major_twin(model: onnx.ModelProto) -> onnx.ModelProto:
    """A layout=1 graph as ORT can run it: the same node with layout 0 between transposes."""
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    g = twin.graph
    lstm = next(n for n in g.node if n.op_type == "LSTM")
    del lstm.attribute[:]
    lstm.attribute.extend(
        a
        for a in next(n for n in model.graph.node if n.op_type == "LSTM").attribute
        if a.name != "layout"
    )
    pre = [
        helper.make_node("Transpose", ["xr"], ["xr_t"], perm=[1, 0, 2]),
        *(
            helper.make_node("Transpose", [s], [f"{s}_t"], perm=[1, 0, 2])
            for s in ("h0", "c0")
            if s in lstm.input
        ),
    ]
    lstm.input[:] = [f"{n}_t" if n in ("xr", "h0", "c0") else n for n in lstm.input]
    post = []
    for k, perm in enumerate(([2, 0, 1, 3], [1, 0, 2], [1, 0, 2])):
        if len(lstm.output) > k and lstm.output[k]:
            raw = lstm.output[k]
            lstm.output[k] = raw + "_t"
            post.append(helper.make_node("Transpose", [raw + "_t"], [raw], perm=perm))
    nodes = list(g.node)
    spot = next(k for k, n in enumerate(nodes) if n.op_type == "LSTM")
    del g.node[:]
    g.node.extend([*nodes[:spot], *pre, nodes[spot], *post, *nodes[spot + 1 :]])
    return twin


def _assert_same(model: onnx.ModelProto, options: CompileOptions | None = None) -> RewriteReport:
    new, report = rewrite_onnx(model, options)
    assert len(report.applied) == 1 and not report.refused, report.to_dict()
    assert [i.name for i in new.graph.input] == [i.name for i in model.graph.input]
    assert [o.name for o in new.graph.output] == [o.name for o in model.graph.output]
    attrs = {a.name: a for a in next(n for n in model.graph.node if n.op_type == "LSTM").attribute}
    oracle = _time_major_twin(model) if "layout" in attrs else model
    feeds = _feeds(model)
    want, got = _run(oracle, feeds), _run(new, feeds)
    assert len(want) == len(got)
    for w, g in zip(want, got, strict=True):
        assert w.shape == g.shape and np.abs(w - g).max() <= TOL
    fused = [n for n in new.graph.node if n.op_type == "LSTM"]
    if report.applied[0].detail == "fused LSTM" and len(fused) == 1:  # keeps the node's name
        assert fused[0].name == "the_lstm"
    else:
        assert not any(n.name == "the_lstm" for n in new.graph.node)
    return report


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("states", ["inputs", "absent"])
def test_rewrite_matches_ort_on_the_original(direction, layout, states):
    model = _lstm_graph(direction, layout, states)
    _assert_same(model)
    if layout == 0:  # one fused node in place of the original: no glue added around it
        new, _ = rewrite_onnx(model)
        assert sorted(n.op_type for n in new.graph.node) == sorted(
            n.op_type for n in model.graph.node
        )


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_composite_lowering_matches_too(direction):
    report = _assert_same(_lstm_graph(direction, 0, "inputs", peephole=True), COMPOSITE)
    assert report.applied[0].detail.startswith("composite")


@pytest.mark.parametrize("opset", [9, 13, 14, 20])
def test_other_opsets_keep_the_model_opset(opset):
    model = _lstm_graph("bidirectional", 0, "inputs", opset=opset)
    _assert_same(model)
    new, _ = rewrite_onnx(model)
    assert [(o.domain, o.version) for o in new.opset_import] == [("", opset)]


def test_opset_7_composite_refused_with_the_reason():
    new, report = rewrite_onnx(_lstm_graph(opset=7), COMPOSITE)
    (refused,) = report.refused
    assert "opset 7" in refused.detail and "version_converter" in refused.detail
    assert any(n.name == "the_lstm" for n in new.graph.node)  # kept, not dropped


def test_only_the_outputs_the_node_had():
    for outputs in (("y",), ("yh",), ("yc", "yh")):
        _assert_same(_lstm_graph("bidirectional", 0, "inputs", outputs=outputs))


def test_shape_built_zero_states_are_folded_and_their_glue_pruned():
    model = _lstm_graph("bidirectional", 0, "zeros")
    report = _assert_same(model)
    new, _ = rewrite_onnx(model)
    ops = [n.op_type for n in new.graph.node]
    assert "ConstantOfShape" not in ops and "Shape" not in ops, ops
    assert report.applied[0].info["states"] == "zeros"
    assert {"W", "R", "B"}.isdisjoint(t.name for t in new.graph.initializer)


def test_one_state_given_the_other_zero():
    _assert_same(_lstm_graph("bidirectional", 0, "h_only"))


def test_sequence_lens_wired_when_fused_refused_when_composite():
    model = _lstm_graph("bidirectional", 0, "inputs", lens=True)
    _assert_same(model)
    _, report = rewrite_onnx(model, COMPOSITE)
    assert "sequence_lens" in report.refused[0].detail


def test_check_refuses_with_the_reason_and_keeps_the_node():
    model = _lstm_graph(clip=0.5)
    ctx = Context(model, CompileOptions())
    rule = LstmNodeRule()
    (match,) = rule.match(ctx)
    assert match.where == "the_lstm"
    assert "clip" in rule.check(ctx, match)
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in "ab"]
    relu = helper.make_graph([helper.make_node("Relu", ["a"], ["b"])], "e", vi[:1], vi[1:])
    with pytest.raises(UnsupportedError, match=r"no LSTM node .*Relu"):
        rewrite_onnx(helper.make_model(relu))
    new, report = rewrite_onnx(model)
    assert not report.applied and "clip" in report.refused[0].detail
    assert any(n.name == "the_lstm" for n in new.graph.node)
    assert report_of(new)["refused"][0]["node"] == "the_lstm"


def test_metadata_producer_and_user_model_untouched():
    model = _lstm_graph()
    before = model.SerializeToString()
    new, report = rewrite_onnx(model)
    assert model.SerializeToString() == before
    assert new.producer_name == "edgelstm"
    stored = report_of(new)
    assert stored["rewritten"][0]["node"] == "the_lstm"
    assert stored["rewritten"][0]["how"] == "fused LSTM"
    assert "rewrote 1 LSTM node(s) (fused LSTM)" in report.summary()


def test_lstm_inside_if_branches():
    then_m, else_m = _lstm_graph(seed=1), _lstm_graph(seed=2)
    branches = []
    for k, m in enumerate((then_m, else_m)):
        g = m.graph
        for node in g.node:
            node.name = f"{node.name}_{k}" if node.name else node.name
            node.input[:] = [n if n in ("x", "h0", "c0", "") else f"{n}_{k}" for n in node.input]
            node.output[:] = [f"{n}_{k}" if n else n for n in node.output]
        for t in g.initializer:
            t.name = f"{t.name}_{k}"
        out = helper.make_tensor_value_info(f"y_{k}", TensorProto.FLOAT, None)
        branches.append(helper.make_graph(list(g.node), f"b{k}", [], [out], list(g.initializer)))
    node = helper.make_node("If", ["cond"], ["y"], then_branch=branches[0], else_branch=branches[1])
    inputs = [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])]
    inputs += list(then_m.graph.input)
    graph = helper.make_graph(
        [node], "if", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    new, report = rewrite_onnx(model)
    assert len(report.applied) == 2 and all("If" in r.where for r in report.applied)
    feeds = _feeds(then_m)
    for cond in (True, False):
        f = feeds | {"cond": np.array(cond)}
        assert np.abs(_run(model, f)[0] - _run(new, f)[0]).max() <= TOL


def test_dynamic_quantize_lstm_source_becomes_float(tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dq = tmp_path / "f.onnx", tmp_path / "dq.onnx"
    onnx.save(_lstm_graph("bidirectional"), str(src))
    quantize_dynamic(str(src), str(dq), weight_type=QuantType.QInt8)
    source = onnx.load(str(dq))
    assert any(n.op_type == "DynamicQuantizeLSTM" for n in source.graph.node)
    new, report = rewrite_onnx(source)
    assert "dequantized" in report.applied[0].detail
    assert not any(n.op_type == "DynamicQuantizeLSTM" for n in new.graph.node)
    # Oracle: the int8 weights dequantized by the test, (q - zp) * scale, as a float LSTM.
    init = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer}
    node = next(n for n in source.graph.node if n.op_type == "DynamicQuantizeLSTM")
    floats = onnx.ModelProto()
    floats.CopyFrom(onnx.load(str(src)))
    for what, k, s in (("W", 1, 8), ("R", 2, 10)):  # inputs: W, R, then their scale, zp
        q = init[node.input[k]].astype(np.float64)
        scale = init[node.input[s]].reshape(-1, 1, 1)
        zero = init[node.input[s + 1]].reshape(-1, 1, 1)
        w = np.transpose((q - zero) * scale, (0, 2, 1)).astype(np.float32)
        t = next(t for t in floats.graph.initializer if t.name == what)
        t.CopyFrom(numpy_helper.from_array(w, what))
    feeds = _feeds(floats)
    for w, g in zip(_run(floats, feeds), _run(new, feeds), strict=True):
        assert np.abs(w - g).max() <= TOL


def test_quantize_dynamic_one_model_never_saturating():
    model = _lstm_graph("bidirectional")
    portable = OnnxOptions(dynamic_priority="portable")  # the default may keep ORT's own
    new, report = rewrite_onnx(model, CompileOptions(quantize="dynamic", onnx=portable))
    assert report.quantize == "dynamic"
    ops = {n.op_type for n in new.graph.node}
    assert "DynamicQuantizeLSTM" in ops and "LSTM" not in ops
    # the measured scheme may be uint8 (no int8 pairs at all); int8 weights stay pair-safe
    assert max(pair_sums(new).values(), default=0) <= PAIR_LIMIT
    feeds = _feeds(model)
    for w, g in zip(_run(model, feeds), _run(new, feeds), strict=True):
        assert np.abs(w - g).max() <= 0.05
    with pytest.raises(UnsupportedError, match="static int8"):
        rewrite_onnx(model, CompileOptions(quantize="int8"))


def test_quantize_dynamic_leaves_conv_float():
    """Conv stays float (ORT's dynamic ConvInteger is slower and much less accurate); the
    LSTM is quantized."""
    model = _lstm_graph()
    rng = np.random.default_rng(4)
    g = model.graph
    g.input.append(helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 2, 6, 6]))
    g.output.append(helper.make_tensor_value_info("feat", TensorProto.FLOAT, None))
    g.initializer.append(
        numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "k")
    )
    g.node.append(helper.make_node("Conv", ["img", "k"], ["feat"]))
    new, _ = rewrite_onnx(model, CompileOptions(quantize="dynamic"))
    ops = {n.op_type for n in new.graph.node}
    assert "Conv" in ops and "ConvInteger" not in ops and "DynamicQuantizeLSTM" in ops
    feeds = _feeds(model)
    assert np.abs(_run(model, feeds)[-1] - _run(new, feeds)[-1]).max() <= TOL


def test_edgelstm_own_files_are_not_rewritten():
    from edgelstm import LSTMSpec, LSTMWeights, to_onnx

    own = to_onnx(LSTMWeights.random(LSTMSpec(3, 4), seed=0))
    with pytest.raises(UnsupportedError, match="edgelstm's own ONNX file"):
        rewrite_onnx(own)

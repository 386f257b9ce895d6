"""from_onnx against onnxruntime (models built with onnx.helper), the ONNX backend LSTM
cases regenerated from the onnx package's own generator, and the importer's refusals.

onnx.reference.ReferenceEvaluator ignores clip / input_forget / sequence_lens / activations,
so onnxruntime is the oracle here.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgelstm import (
    EdgeLSTMError,
    ModelFileError,
    UnsupportedError,
    WeightsError,
    reference_model,
)
from edgelstm.importers import from_onnx

ort = pytest.importorskip("onnxruntime")

TOL = 1e-5
T, B, I, H = 5, 2, 3, 4  # noqa: E741 - the ONNX spec's names


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _lstm_params(rng, n_dir: int, n_in: int, *, peephole=False, bias=True, tag=""):
    """Initializers W, R[, B][, P] for one LSTM node; returns (inputs, initializers)."""
    inits = [
        _init(f"W{tag}", rng.uniform(-0.6, 0.6, (n_dir, 4 * H, n_in)).astype(np.float32)),
        _init(f"R{tag}", rng.uniform(-0.6, 0.6, (n_dir, 4 * H, H)).astype(np.float32)),
    ]
    names = [f"W{tag}", f"R{tag}", "", "", "", ""]
    if bias:
        inits.append(_init(f"B{tag}", rng.uniform(-0.5, 0.5, (n_dir, 8 * H)).astype(np.float32)))
        names[2] = f"B{tag}"
    if peephole:
        inits.append(_init(f"P{tag}", rng.uniform(-0.5, 0.5, (n_dir, 3 * H)).astype(np.float32)))
        names.append(f"P{tag}")
    return names, inits


def _model(nodes, inits, inputs, outputs, x_shape=(T, B, I)) -> onnx.ModelProto:
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(x_shape))]
    graph_inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs]
    graph = helper.make_graph(
        nodes,
        "g",
        graph_inputs,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8  # onnxruntime 1.31 reads IR <= 13; onnx 1.23 writes 14
    return model


def _single(
    rng,
    *,
    direction="forward",
    outputs=("Y", "Y_h", "Y_c"),
    peephole=False,
    bias=True,
    states=False,
    seq_lens=None,
    **attrs,
) -> onnx.ModelProto:
    n_dir = 2 if direction == "bidirectional" else 1
    names, inits = _lstm_params(rng, n_dir, I, peephole=peephole, bias=bias)
    inputs = []
    if seq_lens is not None:
        inits.append(_init("lens", np.asarray(seq_lens, dtype=np.int32)))
        names[3] = "lens"
    if states:
        names[4:6] = ["h0", "c0"]
        inputs = ["h0", "c0"]
    while names and names[-1] == "":
        names.pop()
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")]
    node = helper.make_node(
        "LSTM", ["X", *names], outs, hidden_size=H, direction=direction, **attrs
    )
    return _model([node], inits, inputs, [o for o in outs if o])


def _run_ort(model: onnx.ModelProto, feeds: dict) -> dict:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def _max_err(model: onnx.ModelProto, rng, *, states: bool = False) -> float:
    """Import ``model``, run it and onnxruntime on the same data, return max abs error."""
    imported = from_onnx(model)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    feeds, init = {"X": x}, None
    n_dir = len(imported.layers[-1].directions)
    if states:
        h0 = rng.standard_normal((n_dir, B, H)).astype(np.float32)
        c0 = rng.standard_normal((n_dir, B, H)).astype(np.float32)
        feeds |= {"h0": h0, "c0": c0}
        init = [[(h0[d], c0[d]) for d in range(n_dir)]]
    want = _run_ort(model, feeds)
    got = reference_model(imported, x if imported.time_major else x.transpose(1, 0, 2), init)
    errs = []
    outs = imported.provenance["outputs"]
    if "y" in outs:
        y = want[outs["y"]].astype(np.float64)
        if y.ndim == 4:  # raw Y [T, D, B, H]: merge directions into features
            y = y.transpose(0, 2, 1, 3).reshape(T, B, -1)
        out = got.output if imported.time_major else got.output.transpose(1, 0, 2)
        errs.append(np.abs(out - y).max())
    elif "h" in outs:
        errs.append(np.abs(got.output - np.concatenate(list(want[outs["h"]]), -1)).max())
    for key, k in (("h", 0), ("c", 1)):
        if key in outs:
            state = np.stack([s[k] for s in got.states[-1]])
            errs.append(np.abs(state - want[outs[key]]).max())
    return float(max(errs))


SINGLE = {
    "plain": {},
    "no_bias": {"bias": False},
    "peephole": {"peephole": True},
    "bidirectional_peephole": {"direction": "bidirectional", "peephole": True},
    "input_forget": {"input_forget": 1, "peephole": True},
    "input_forget_bidirectional": {"input_forget": 1, "direction": "bidirectional"},
    "relu": {"activations": ["Sigmoid", "Relu", "Relu"]},
    "sigmoid_cell": {"activations": ["Sigmoid", "Sigmoid", "Sigmoid"]},
    "affine_linear": {
        "activations": ["Sigmoid", "Affine", "Affine"],
        "activation_alpha": [1.0, 1.0],
        "activation_beta": [0.0, 0.0],
    },
    "mixed_directions": {
        "direction": "bidirectional",
        "activations": ["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Relu"],
    },
    "reverse_states_only": {"direction": "reverse", "outputs": ("Y_h", "Y_c")},
    "reverse_with_y": {"direction": "reverse", "peephole": True},
    "final_h_only": {"direction": "bidirectional", "outputs": ("Y_h",)},
    "full_sequence_lens": {"seq_lens": [T] * B, "peephole": True},
    "huge_clip_is_no_clip": {"clip": float(np.finfo(np.float32).max)},
}


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_single_node_matches_onnxruntime(name):
    rng = np.random.default_rng(sorted(SINGLE).index(name))
    model = _single(rng, **SINGLE[name])
    assert _max_err(model, rng) <= TOL


def test_weights_from_constant_nodes():
    rng = np.random.default_rng(11)
    model = _single(rng, direction="bidirectional", peephole=True)
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in model.graph.initializer]
    del model.graph.initializer[:]
    for k, node in enumerate(consts):
        model.graph.node.insert(k, node)
    assert _max_err(model, rng) <= TOL


def test_structure_of_imports():
    rng = np.random.default_rng(0)
    cifg = from_onnx(_single(rng, input_forget=1, peephole=True)).layers[0].forward.spec
    assert cifg.cifg and cifg.peephole
    rev = from_onnx(_single(rng, direction="reverse", outputs=("Y_h",)))
    assert rev.layers[0].reverse and not rev.return_sequences and not rev.return_state
    bi = from_onnx(_single(rng, direction="bidirectional"))
    assert bi.layers[0].bidirectional and bi.return_sequences and bi.return_state
    assert bi.time_major
    zero_p = _single(rng, peephole=True)
    for t in zero_p.graph.initializer:
        if t.name == "P":
            t.CopyFrom(_init("P", np.zeros((1, 3 * H), np.float32)))
    assert not from_onnx(zero_p).layers[0].forward.spec.peephole  # all-zero P is no peephole


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_initial_states_as_graph_inputs(direction):
    rng = np.random.default_rng(7)
    model = _single(rng, direction=direction, states=True, peephole=True)
    assert from_onnx(model).provenance["initial_state_inputs"] == ["h0", "c0"]
    assert _max_err(model, rng, states=True) <= TOL


def _stack(rng, *, batch_major_io: bool) -> onnx.ModelProto:
    """bidirectional -> Transpose/Reshape -> forward -> Squeeze -> forward (+ I/O transposes)."""
    p1, i1 = _lstm_params(rng, 2, I, peephole=True, tag="1")
    p2, i2 = _lstm_params(rng, 1, 2 * H, tag="2")
    p3, i3 = _lstm_params(rng, 1, H, tag="3")
    shape, axes = _init("shape", np.array([0, 0, -1], np.int64)), _init("axes", np.array([1]))
    x = "Xt" if batch_major_io else "X"
    nodes = [
        helper.make_node("LSTM", [x, *p1[:3]], ["Y1"], hidden_size=H, direction="bidirectional"),
        helper.make_node("Transpose", ["Y1"], ["Y1t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y1t", "shape"], ["X2"]),
        helper.make_node("LSTM", ["X2", *p2[:3]], ["Y2"], hidden_size=H),
        helper.make_node("Squeeze", ["Y2", "axes"], ["X3"]),
        helper.make_node("LSTM", ["X3", *p3[:3]], ["Y3", "Y_h", "Y_c"], hidden_size=H),
        helper.make_node("Squeeze", ["Y3", "axes"], ["Y" if not batch_major_io else "Ys"]),
    ]
    if batch_major_io:
        nodes.insert(0, helper.make_node("Transpose", ["X"], ["Xt"], perm=[1, 0, 2]))
        nodes.append(helper.make_node("Transpose", ["Ys"], ["Y"], perm=[1, 0, 2]))
    x_shape = (B, T, I) if batch_major_io else (T, B, I)
    return _model(nodes, [*i1, *i2, *i3, shape, axes], [], ["Y", "Y_h", "Y_c"], x_shape)


@pytest.mark.parametrize("batch_major_io", [False, True])
def test_chain_of_lstm_nodes_is_stacked(batch_major_io):
    rng = np.random.default_rng(3)
    model = _stack(rng, batch_major_io=batch_major_io)
    imported = from_onnx(model)
    assert len(imported.layers) == 3 and imported.layers[0].bidirectional
    assert imported.time_major != batch_major_io
    x = rng.standard_normal((B, T, I) if batch_major_io else (T, B, I)).astype(np.float32)
    want = _run_ort(model, {"X": x})
    got = reference_model(imported, x)
    assert np.abs(got.output - want["Y"]).max() <= TOL
    assert np.abs(got.states[-1][0][0] - want["Y_h"][0]).max() <= TOL
    assert np.abs(got.states[-1][0][1] - want["Y_c"][0]).max() <= TOL


def test_batchwise_layout_matches_onnxruntime_on_the_time_major_twin():
    """onnxruntime refuses layout=1, so compare with the same weights in layout 0."""
    rng = np.random.default_rng(5)
    twin = _single(rng, direction="bidirectional", peephole=True)
    batchwise = onnx.ModelProto()
    batchwise.CopyFrom(twin)
    batchwise.graph.node[0].attribute.append(helper.make_attribute("layout", 1))
    imported = from_onnx(batchwise)
    assert not imported.time_major
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    want = _run_ort(twin, {"X": x})["Y"].transpose(2, 0, 1, 3).reshape(B, T, -1)
    got = reference_model(imported, x.transpose(1, 0, 2)).output
    assert np.abs(got - want).max() <= TOL


@pytest.fixture(scope="module")
def backend_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():  # the generator runs every op's exporter, noisily
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases("LSTM")}


BACKEND = [
    "test_lstm_defaults",
    "test_lstm_with_initial_bias",
    "test_lstm_with_peepholes",
    "test_lstm_batchwise",
    "test_lstm_reverse",
    "test_lstm_bidirectional",
]


def test_backend_cases_exist(backend_cases):
    assert sorted(backend_cases) == sorted(BACKEND)


@pytest.mark.parametrize("name", BACKEND)
def test_onnx_backend_case(backend_cases, name):
    """Weights fed as graph inputs in the case become initializers; X stays the input."""
    case = backend_cases[name]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, expected = case.data_sets[0]
    feeds = dict(zip([i.name for i in model.graph.input], inputs, strict=True))
    x = feeds.pop("X")
    keep = [i for i in model.graph.input if i.name == "X"]
    model.graph.initializer.extend(_init(k, v) for k, v in feeds.items())
    del model.graph.input[:]
    model.graph.input.extend(keep)
    imported = from_onnx(model)
    got = reference_model(imported, x)
    batchwise = not imported.time_major
    tol = max(TOL, case.atol)
    for out, value in zip(model.graph.output, expected, strict=True):
        want = value.astype(np.float64)
        if out.name == "Y":  # [B, T, D, H] (batchwise) -> [B, T, D*H]
            assert batchwise
            assert np.abs(got.output - want.reshape(*want.shape[:2], -1)).max() <= tol
            continue
        k = 0 if out.name == "Y_h" else 1
        state = np.stack([s[k] for s in got.states[-1]], axis=1 if batchwise else 0)
        assert np.abs(state - want).max() <= tol
        if out.name == "Y_h" and not imported.return_sequences:
            assert np.abs(got.output - np.concatenate(list(want), -1)).max() <= tol


REFUSED = {
    "clip": ({"clip": 1.0}, "clip"),
    "mismatched_g_h": ({"activations": ["Sigmoid", "Tanh", "Relu"]}, "g=tanh, h=relu"),
    "non_sigmoid_gates": ({"activations": ["HardSigmoid", "Tanh", "Tanh"]}, "only Sigmoid"),
    "bare_affine": ({"activations": ["Sigmoid", "Affine", "Affine"]}, "g=affine"),
    "unsupported_activation": ({"activations": ["Sigmoid", "Elu", "Elu"]}, "g=elu"),
    "partial_sequence_lens": ({"seq_lens": [T, T - 2]}, "sequence_lens"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refusals(name):
    attrs, match = REFUSED[name]
    with pytest.raises(UnsupportedError, match=match):
        from_onnx(_single(np.random.default_rng(0), **attrs))


def _edit(model: onnx.ModelProto, fn) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    fn(copy.graph)
    return copy


def test_graph_refusals():
    rng = np.random.default_rng(1)
    base = _single(rng, outputs=("Y",))

    def weights_as_input(g):
        (w,) = [t for t in g.initializer if t.name == "W"]
        g.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(w.dims)))
        g.initializer.remove(w)

    with pytest.raises(UnsupportedError, match="'W' is a graph input"):
        from_onnx(_edit(base, weights_as_input))

    def relu_after(g):
        g.node[0].output[0] = "Y0"
        g.node.append(helper.make_node("Relu", ["Y0"], ["Y"]))

    with pytest.raises(UnsupportedError, match="Relu"):
        from_onnx(_edit(base, relu_after))

    def bad_glue(g):  # merges batch into features instead of the directions
        g.node[0].output[0] = "Y0"
        g.initializer.append(_init("s", np.array([0, 0, -1], np.int64)))
        g.node.append(helper.make_node("Reshape", ["Y0", "s"], ["Y"]))

    with pytest.raises(UnsupportedError, match="layout"):
        from_onnx(_edit(base, bad_glue))

    def nonzero_state(g):
        g.initializer.append(_init("h0", np.ones((1, B, H), np.float32)))
        g.node[0].input.extend(["", "h0"])  # sequence_lens, initial_h

    with pytest.raises(UnsupportedError, match="non-zero initial_h"):
        from_onnx(_edit(base, nonzero_state))

    def dynamic_lens(g):
        g.input.append(helper.make_tensor_value_info("lens", TensorProto.INT32, [B]))
        g.node[0].input.append("lens")  # sequence_lens

    with pytest.raises(UnsupportedError, match="sequence_lens"):
        from_onnx(_edit(base, dynamic_lens))

    def wrong_hidden(g):
        (attr,) = [a for a in g.node[0].attribute if a.name == "hidden_size"]
        attr.i = H + 1

    with pytest.raises(WeightsError, match="hidden_size=5"):
        from_onnx(_edit(base, wrong_hidden))

    def squeeze_batch(g):  # batch may be 1 at run time, but is not always
        g.node[0].output[0] = "Y0"
        g.initializer.append(_init("ax", np.array([2], np.int64)))
        g.node.append(helper.make_node("Squeeze", ["Y0", "ax"], ["Y"]))

    with pytest.raises(UnsupportedError, match="not a layout-only step"):
        from_onnx(_edit(base, squeeze_batch))

    gru = helper.make_node("GRU", ["X", "W", "R"], ["Y"], hidden_size=H)
    with pytest.raises(UnsupportedError, match="no LSTM node"):
        from_onnx(_edit(base, lambda g: g.node[0].CopyFrom(gru)))


def test_damaged_files(tmp_path):
    data = _single(np.random.default_rng(2), direction="bidirectional").SerializeToString()
    good = tmp_path / "good.onnx"
    good.write_bytes(data)
    assert from_onnx(good).layers[0].bidirectional
    assert from_onnx(data).layers[0].bidirectional
    for cut in range(0, len(data), 7):  # every truncation point is a ModelFileError
        with pytest.raises(ModelFileError):
            from_onnx(data[:cut])
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.onnx"):
        from_onnx(bad)
    for seed in range(50):  # random bytes never escape as anything but our errors
        junk = np.random.default_rng(seed).bytes(37 + 11 * seed)
        with pytest.raises(EdgeLSTMError):
            from_onnx(junk)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        from_onnx(tmp_path / "empty.onnx")
    with pytest.raises(ModelFileError, match="not found"):
        from_onnx(tmp_path / "missing.onnx")


def test_external_data(tmp_path):
    model = _single(np.random.default_rng(4), peephole=True)
    path = tmp_path / "ext.onnx"
    onnx.save(model, path, save_as_external_data=True, location="ext.bin", size_threshold=0)
    assert from_onnx(path).layers[0].forward.spec.peephole
    with pytest.raises(ModelFileError, match="external data"):
        from_onnx(path.read_bytes())
    (tmp_path / "ext.bin").unlink()
    with pytest.raises(ModelFileError, match="external weights"):
        from_onnx(path)


@pytest.mark.parametrize("dynamic_t", [False, True])
def test_batch_of_one_reshape_glue_matches_onnxruntime(dynamic_t):
    """With a batch of 1, [1, T, I] <-> [T, 1, I] is a Reshape (edgelstm and exporters emit
    it instead of a Transpose): it must import as the batch-major layout it is."""
    rng = np.random.default_rng(9)
    names, inits = _lstm_params(rng, 1, I, peephole=True)
    inits += [_init("to_tm", np.array([-1, 1, 0], np.int64)),
              _init("to_bm", np.array([1, -1, 0], np.int64)),
              _init("axis1", np.array([1], np.int64))]  # fmt: skip
    nodes = [
        helper.make_node("Reshape", ["X", "to_tm"], ["x_tm"]),
        helper.make_node("LSTM", ["x_tm", *names], ["y4", "", ""], hidden_size=H),
        helper.make_node("Squeeze", ["y4", "axis1"], ["y3"]),
        helper.make_node("Reshape", ["y3", "to_bm"], ["Y"]),
    ]
    model = _model(nodes, inits, [], ["Y"], x_shape=(1, "T" if dynamic_t else T, I))
    imported = from_onnx(model)
    assert not imported.time_major
    x = rng.standard_normal((1, T, I)).astype(np.float32)
    want = _run_ort(model, {"X": x})["Y"]
    assert np.abs(reference_model(imported, x).output - want).max() <= TOL


def test_reshape_that_mixes_axes_is_refused():
    rng = np.random.default_rng(10)
    names, inits = _lstm_params(rng, 1, I)
    inits.append(_init("flat", np.array([T, 1, I], np.int64)))
    nodes = [  # with a batch of 2, [B, T, I] -> [T, 1, I] is no layout change
        helper.make_node("Reshape", ["X", "flat"], ["x_tm"]),
        helper.make_node("LSTM", ["x_tm", *names], ["Y", "", ""], hidden_size=H),
    ]
    model = _model(nodes, inits, [], ["Y"], x_shape=(B, T, I))
    with pytest.raises(UnsupportedError, match="not a layout-only step"):
        from_onnx(model)

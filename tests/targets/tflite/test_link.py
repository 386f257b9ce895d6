"""The TFLite linker on small hand-made parts (no TensorFlow).

Oracle: the interpreter running the parts one after another — a boundary's requantization
by a one-op QUANTIZE model, i.e. the kernel's own rounding — must give exactly what the
linked file gives. Structure checks (opcodes, subgraph indices, names, metadata) read the
linked flatbuffer back with the schema bindings.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from edgelstm import CompileOptions, Int8Options, LSTMModel, LSTMSpec, LSTMWeights, to_tflite
from edgelstm.errors import ModelFileError, UnsupportedError
from edgelstm.ir.options import UnfusedOptions
from edgelstm.targets.tflite.builder import GraphBuilder, Quantization
from edgelstm.targets.tflite.link import SEGMENTS_NAME, link_chain, link_graph, read_segments
from edgelstm.targets.tflite.link_merge import text
from edgelstm.targets.tflite.schema import BuiltinOperator as Op
from edgelstm.targets.tflite.schema import BuiltinOptions as Opt
from edgelstm.targets.tflite.schema import load_model, schema

Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter
T, F, I, N = 5, 3, 4, 6  # steps, front-end features, LSTM input, LSTM units  # noqa: E741


def _fc(g: GraphBuilder, x: int, fin: int, fout: int, seed: int, *, int8=None, relu=False) -> int:
    """FULLY_CONNECTED over [B, T, fin] (keep_num_dims); ``int8`` = (x_q, w_scale, out_q)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(fout, fin)).astype(np.float32)
    b = rng.normal(size=fout).astype(np.float32)
    dyn = g.tensor_signature(x)[0] == -1
    shape, sig = [1, T, fout], [-1 if dyn else 1, T, fout]
    if int8 is None:
        wt, bt = g.add_constant(f"w{seed}", w), g.add_constant(f"b{seed}", b)
        y = g.add_tensor(f"y{seed}", shape, shape_signature=sig)
    else:
        xq, ws, yq = int8
        wq = np.clip(np.round(w / ws), -127, 127).astype(np.int8)
        bq = np.round(b / (xq.scale[0] * ws)).astype(np.int32)
        wt = g.add_constant(f"w{seed}", wq, quantization=Quantization((ws,), (0,)))
        bt = g.add_constant(f"b{seed}", bq, quantization=Quantization((xq.scale[0] * ws,), (0,)))
        y = g.add_tensor(f"y{seed}", shape, "int8", quantization=yq, shape_signature=sig)
    o = schema.FullyConnectedOptionsT()
    o.keepNumDims = True
    o.fusedActivationFunction = 1 if relu else 0
    g.add_operator(Op.FULLY_CONNECTED, [x, wt, bt], [y], Opt.FullyConnectedOptions, o, version=5)
    return y


def dense_part(fin, fout, seed, *, dyn=False, relu=True, int8=None, name="x") -> bytes:
    g = GraphBuilder("dense part")
    kind, q = ("float32", None) if int8 is None else ("int8", int8[0])
    x = g.add_tensor(
        name, [1, T, fin], kind, quantization=q, shape_signature=[-1 if dyn else 1, T, fin]
    )
    g.add_input(name, x)
    g.add_output("y", _fc(g, x, fin, fout, seed, int8=int8, relu=relu))
    return g.finish()


def convert_model(shape, src: tuple, dst: tuple, op=Op.QUANTIZE) -> bytes:
    """One QUANTIZE/DEQUANTIZE op: (dtype, Quantization|None) -> (dtype, Quantization|None)."""
    g = GraphBuilder("convert")
    x = g.add_tensor("x", shape, src[0], quantization=src[1])
    y = g.add_tensor("y", shape, dst[0], quantization=dst[1])
    options = schema.QuantizeOptionsT() if op == Op.QUANTIZE else schema.DequantizeOptionsT()
    kind = Opt.QuantizeOptions if op == Op.QUANTIZE else Opt.DequantizeOptions
    g.add_operator(op, [x], [y], kind, options, version=2 if op == Op.DEQUANTIZE else 1)
    g.add_input("x", x)
    g.add_output("y", y)
    return g.finish()


def run(data: bytes, x: np.ndarray, interp=None, **kwargs) -> np.ndarray:
    if interp is None:
        interp = Interpreter(model_content=data, **kwargs)
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], x.shape)
        for k, t in enumerate(load_model(data).subgraphs[0].tensors):
            if t.isVariable:  # LSTM states [B, width] follow the batch (as edgelstm's runner)
                interp.resize_tensor_input(k, [x.shape[0], int(t.shape[-1])])
        interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def chained(parts: list[bytes], x: np.ndarray, **kwargs) -> np.ndarray:
    for part in parts:
        x = run(part, x, **kwargs)
    return x


def io_q(data: bytes, side: str) -> Quantization:
    interp = Interpreter(model_content=data)
    details = interp.get_input_details() if side == "in" else interp.get_output_details()
    scale, zero = details[0]["quantization"]
    return Quantization((float(scale),), (int(zero),))


def opnames(data: bytes) -> list[str]:
    m = load_model(data)
    names = {v: k for k, v in vars(Op).items() if not k.startswith("_")}
    codes = m.operatorCodes
    return [
        names[max(codes[o.opcodeIndex].builtinCode, codes[o.opcodeIndex].deprecatedBuiltinCode)]
        for o in m.subgraphs[0].operators
    ]


WEIGHTS = LSTMWeights.random(LSTMSpec(I, N), seed=1)
X = np.random.default_rng(0).normal(size=(1, T, F)).astype(np.float32)


@pytest.fixture(scope="module")
def float_parts() -> list[bytes]:
    lstm = to_tflite(LSTMModel.of(WEIGHTS), CompileOptions(batch=1, seq_len=T))
    return [dense_part(F, I, 3), lstm, dense_part(N, 2, 5, relu=False)]


@pytest.mark.parametrize("resolver", ["AUTO", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"])
def test_float_chain_exact_and_forgets_state(float_parts, resolver):
    """XNNPACK (default) and the builtin kernels alone: a reused interpreter repeats itself."""
    linked = link_chain(float_parts)
    kind = getattr(pytest.importorskip("ai_edge_litert.interpreter").OpResolverType, resolver)
    expected = chained(float_parts, X, experimental_op_resolver_type=kind)
    interp = Interpreter(model_content=linked, experimental_op_resolver_type=kind)
    interp.allocate_tensors()
    for _ in range(3):  # the LSTM part's in-graph state reset still works
        np.testing.assert_array_equal(run(linked, X, interp), expected)
    assert opnames(linked) == ["FULLY_CONNECTED", "ADD", "ADD"] + [
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "FULLY_CONNECTED",
    ]
    m = load_model(linked)
    assert len(m.operatorCodes) == 3  # FULLY_CONNECTED deduplicated across parts
    variables = [text(t.name) for t in m.subgraphs[0].tensors if t.isVariable]
    assert len(variables) == 6 and all(
        m.buffers[t.buffer].data is None for t in m.subgraphs[0].tensors if t.isVariable
    )
    assert len(m.buffers[0].data if m.buffers[0].data is not None else []) == 0


def test_signature_metadata_and_segments(float_parts):
    linked = link_chain(
        float_parts, input_names=["features"], output_names=["logits"], metadata={"k": b"v"}
    )
    interp = Interpreter(model_content=linked)
    assert interp.get_signature_list() == {
        "serving_default": {"inputs": ["features"], "outputs": ["logits"]}
    }
    runner = interp.get_signature_runner()
    np.testing.assert_array_equal(runner(features=X)["logits"], chained(float_parts, X))
    m = load_model(linked)
    names = [text(e.name) for e in m.metadata]
    assert names == ["edgelstm", "k", SEGMENTS_NAME]
    seg = read_segments(linked)
    kinds = [s["kind"] for s in seg["segments"]]
    assert kinds == ["tflite", "edgelstm", "tflite"]
    assert [s["op_count"] for s in seg["segments"]] == [1, 3, 1]
    ranges = [s["tensors"] for s in seg["segments"]]
    assert ranges[0][0] == 0 and ranges[-1][1] == len(m.subgraphs[0].tensors)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert [b["link"] for b in seg["boundaries"]] == ["direct", "direct"]
    names = [text(t.name) for t in m.subgraphs[0].tensors]
    assert len(set(names)) == len(names)
    assert read_segments(float_parts[0]) is None
    assert link_chain(float_parts) == link_chain(float_parts)  # deterministic


def test_name_errors(float_parts):
    with pytest.raises(ValueError, match="input_names has 2 names for 1"):
        link_chain(float_parts, input_names=["a", "b"])
    with pytest.raises(ModelFileError, match="segment 1"):
        link_chain([float_parts[0], b"garbage bytes here"])


def test_dynamic_batch_and_fixed_side():
    dyn_lstm = to_tflite(LSTMModel.of(WEIGHTS), CompileOptions(batch=None, seq_len=T))
    parts = [dense_part(F, I, 3, dyn=True), dyn_lstm]
    x = np.random.default_rng(2).normal(size=(3, T, F)).astype(np.float32)
    np.testing.assert_array_equal(run(link_chain(parts), x), chained(parts, x))
    fixed = to_tflite(LSTMModel.of(WEIGHTS), CompileOptions(batch=1, seq_len=T))
    m = load_model(link_chain([dense_part(F, I, 3, dyn=True), fixed]))
    boundary = m.subgraphs[0].tensors[m.subgraphs[0].operators[0].outputs[0]]
    assert list(boundary.shape) == [1, T, I] and boundary.shapeSignature is None


def test_incompatible_shapes_refused(float_parts):
    with pytest.raises(UnsupportedError, match=r"segment 0 -> segment 1.*\[1, 5, 2\].*\[1, 5, 4\]"):
        link_chain([dense_part(F, 2, 3), float_parts[1]])


def test_middle_part_with_two_outputs_refused(float_parts):
    g = GraphBuilder()
    x = g.add_tensor("x", [1, T, I])
    g.add_input("x", x)
    y = _fc(g, x, I, N, 9)
    g.add_output("a", y)
    g.add_output("b", x)
    with pytest.raises(UnsupportedError, match=r"segment 1 has 1 input.*2 output"):
        link_chain([float_parts[0], g.finish(), float_parts[2]])


def test_dtype_mismatch_refused(float_parts):
    g = GraphBuilder()
    x = g.add_tensor("ids", [1, T, I], "int32")
    g.add_input("ids", x)
    g.add_output("ids", x)
    with pytest.raises(UnsupportedError, match=r"int32.*cannot feed.*float32"):
        link_chain([g.finish(), float_parts[1]])


@pytest.fixture(scope="module")
def int8_parts():
    """int8 FC -> int8 LSTM (int8 I/O) -> int8 FC, every boundary with different scales."""
    xq = Quantization((0.02,), (3,))
    calib = np.random.default_rng(7).normal(size=(16, T, I)).astype(np.float32)
    options = CompileOptions(
        batch=1, seq_len=T, quantize="int8", calibration=calib, int8=Int8Options(io=True)
    )
    lstm = to_tflite(LSTMModel.of(WEIGHTS), options)
    front = dense_part(F, I, 3, int8=(xq, 0.01, Quantization((0.05,), (-7,))))
    back = dense_part(N, 2, 5, relu=False, int8=(Quantization((0.006,), (1,)), 0.02, xq))
    return [front, lstm, back]


def _requantize(shape, src: bytes, dst: bytes) -> bytes:
    return convert_model(shape, ("int8", io_q(src, "out")), ("int8", io_q(dst, "in")))


def test_int8_boundaries_requantize_bit_exact(int8_parts):
    front, lstm, back = int8_parts
    linked = link_chain(int8_parts)
    assert opnames(linked).count("QUANTIZE") == 2
    bounds = read_segments(linked)["boundaries"]
    assert [b["link"] for b in bounds] == ["QUANTIZE", "QUANTIZE"]
    assert bounds[0]["from"]["scale"] == [np.float32(0.05)]
    assert bounds[0]["to"]["scale"] == [io_q(lstm, "in").scale[0]]
    oracle = [
        front,
        _requantize([1, T, I], front, lstm),
        lstm,
        _requantize([1, T, N], lstm, back),
        back,
    ]
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = rng.integers(-128, 128, size=(1, T, F)).astype(np.int8)
        np.testing.assert_array_equal(run(linked, x), chained(oracle, x))


def test_int8_runs_on_tflite_micro(int8_parts):
    """TFLM: the linked file equals the parts chained on TFLM (its requantize included),
    and LiteRT within 1 LSB (the int8 LSTM kernels differ by that much, FIELD_NOTES)."""
    runtime = pytest.importorskip("tflite_micro").runtime

    def tflm(data: bytes, x: np.ndarray) -> np.ndarray:
        interp = runtime.Interpreter.from_bytes(data, arena_size=64 * 1024)
        interp.set_input(x, 0)
        interp.invoke()
        return interp.get_output(0)

    front, lstm, back = int8_parts
    oracle = [
        front,
        _requantize([1, T, I], front, lstm),
        lstm,
        _requantize([1, T, N], lstm, back),
        back,
    ]
    linked = link_chain(int8_parts)
    x = np.random.default_rng(4).integers(-128, 128, size=(1, T, F)).astype(np.int8)
    expected = x
    for part in oracle:
        expected = tflm(part, expected)
    got = tflm(linked, x)
    np.testing.assert_array_equal(got, expected)
    assert np.abs(got.astype(int) - run(linked, x)).max() <= 1


def test_float_into_int8_and_back(int8_parts, float_parts):
    """float -> int8 part: QUANTIZE; int8 part -> float: DEQUANTIZE."""
    lstm = int8_parts[1]
    parts = [float_parts[0], lstm, float_parts[2]]
    linked = link_chain(parts)
    assert [b["link"] for b in read_segments(linked)["boundaries"]] == ["QUANTIZE", "DEQUANTIZE"]
    oracle = [
        float_parts[0],
        convert_model([1, T, I], ("float32", None), ("int8", io_q(lstm, "in"))),
        lstm,
        convert_model([1, T, N], ("int8", io_q(lstm, "out")), ("float32", None), Op.DEQUANTIZE),
        float_parts[2],
    ]
    np.testing.assert_array_equal(run(linked, X), chained(oracle, X))


def test_equal_int8_scales_connect_directly(int8_parts):
    lstm = int8_parts[1]
    q_in = io_q(lstm, "in")
    front = dense_part(F, I, 3, int8=(Quantization((0.02,), (3,)), 0.01, q_in))
    linked = link_chain([front, lstm])
    assert "QUANTIZE" not in opnames(linked)
    x = np.random.default_rng(5).integers(-128, 128, size=(1, T, F)).astype(np.int8)
    np.testing.assert_array_equal(run(linked, x), chained([front, lstm], x))


def test_while_subgraphs_remapped():
    """Two unfused (WHILE) LSTM parts: the second part's cond/body indices move by two."""
    options = CompileOptions(batch=1, seq_len=T, unfused=UnfusedOptions(schedule="while"))
    from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

    def first_output_only(m):  # the unfused file also outputs its final (h, c)
        m.subgraphs[0].outputs = m.subgraphs[0].outputs[:1]
        m.signatureDefs[0].outputs = m.signatureDefs[0].outputs[:1]

    first = _repack(to_tflite_unfused(LSTMModel.of(WEIGHTS), options), first_output_only)
    second = to_tflite_unfused(LSTMModel.of(LSTMWeights.random(LSTMSpec(N, 5), seed=2)), options)
    parts = [dense_part(F, I, 3), first, second]
    linked = link_chain(parts)
    m = load_model(linked)
    whiles = [
        o.builtinOptions
        for o in m.subgraphs[0].operators
        if isinstance(o.builtinOptions, schema.WhileOptionsT)
    ]
    n_first = len(load_model(first).subgraphs) - 1
    assert len(whiles) >= 2
    assert max(w.bodySubgraphIndex for w in whiles) > n_first
    assert len(m.subgraphs) == 1 + n_first + len(load_model(second).subgraphs) - 1
    np.testing.assert_array_equal(run(linked, X), chained(parts, X))
    assert read_segments(linked)["segments"][2]["subgraphs"] == [1 + n_first, len(m.subgraphs)]


def _repack(data: bytes, edit) -> bytes:
    import flatbuffers

    m = load_model(data)
    edit(m)
    fb = flatbuffers.Builder(1 << 12)
    fb.Finish(m.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


def test_opcodes_deduplicated_across_code_fields(float_parts):
    """An old file's code only in deprecated_builtin_code, a code > 127 only in builtin_code."""

    def old_style(m):
        for code in m.operatorCodes:
            code.builtinCode, code.version = 0, 7

    def add_gelu(m):
        gelu = schema.OperatorCodeT()
        gelu.builtinCode, gelu.deprecatedBuiltinCode, gelu.version = Op.GELU, 127, 1
        m.operatorCodes.append(gelu)
        op = schema.OperatorT()
        op.opcodeIndex = len(m.operatorCodes) - 1
        sub = m.subgraphs[0]
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = "gelu", [1, T, 2], 0, 0
        sub.tensors.append(t)
        op.inputs, op.outputs = [int(sub.outputs[0])], [len(sub.tensors) - 1]
        op.builtinOptionsType, op.builtinOptions = Opt.GeluOptions, schema.GeluOptionsT()
        sub.operators.append(op)
        sub.outputs = [len(sub.tensors) - 1]

    front = _repack(float_parts[0], old_style)
    back = _repack(float_parts[2], add_gelu)
    linked = link_chain([front, float_parts[1], back])
    m = load_model(linked)
    codes = {(c.builtinCode, c.deprecatedBuiltinCode): c.version for c in m.operatorCodes}
    assert codes[(Op.FULLY_CONNECTED, Op.FULLY_CONNECTED)] == 7  # max of versions 7 and 5
    assert codes[(Op.GELU, 127)] == 1
    assert sum(1 for c in m.operatorCodes if c.builtinCode == Op.FULLY_CONNECTED) == 1
    assert opnames(linked)[-1] == "GELU"
    np.testing.assert_array_equal(run(linked, X), chained([front, float_parts[1], back], X))


def test_metadata_collisions_and_dropped_entries(float_parts):
    def tf_like(m):
        for name, data in (("min_runtime_version", b"1.5.0"), ("CONVERSION_METADATA", b"x")):
            buf = schema.BufferT()
            buf.data = np.frombuffer(data, np.uint8)
            m.buffers.append(buf)
            e = schema.MetadataT()
            e.name, e.buffer = name, len(m.buffers) - 1
            m.metadata = [*(m.metadata or []), e]

    front, back = _repack(float_parts[0], tf_like), _repack(float_parts[2], tf_like)
    lstm2 = to_tflite(
        LSTMModel.of(LSTMWeights.random(LSTMSpec(N, N), seed=4)), CompileOptions(batch=1, seq_len=T)
    )
    linked = link_chain([front, float_parts[1], lstm2, back], metadata={"edgelstm.seg1": b"{}"})
    m = load_model(linked)
    entries = {text(e.name): bytes(m.buffers[e.buffer].data) for e in m.metadata}
    assert "min_runtime_version" not in entries
    assert {"CONVERSION_METADATA.seg0", "CONVERSION_METADATA.seg3", "edgelstm.seg2"} <= set(entries)
    assert entries["edgelstm.seg1"] == b"{}"  # the caller's entry wins its name
    assert json.loads(entries["edgelstm.seg2"])["format"] == "edgelstm-tflite"
    assert read_segments(linked)["segments"][2]["name_prefix"] == "seg2/"
    parts = [front, float_parts[1], lstm2, back]
    np.testing.assert_array_equal(run(linked, X), chained(parts, X))


def test_invalid_part_refused(float_parts):
    def dangling(m):
        op = m.subgraphs[0].operators[0]
        op.inputs = [999, *list(op.inputs)[1:]]

    with pytest.raises(ModelFileError, match=r"segment 2: invalid TFLite model.*999"):
        link_chain([*float_parts[:2], _repack(float_parts[2], dangling)])


def test_shared_resource_variable_refused(float_parts):
    def var_handle(m):
        sub = m.subgraphs[0]
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = "handle", [], 20, 0  # RESOURCE
        sub.tensors.append(t)
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode = Op.VAR_HANDLE, 127
        m.operatorCodes.append(code)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(m.operatorCodes) - 1, [], [len(sub.tensors) - 1]
        op.builtinOptionsType = Opt.VarHandleOptions
        op.builtinOptions = schema.VarHandleOptionsT()
        op.builtinOptions.sharedName = "counter"
        sub.operators.insert(0, op)

    front, back = _repack(float_parts[0], var_handle), _repack(float_parts[2], var_handle)
    with pytest.raises(UnsupportedError, match="segments 0 and 2 both use resource variable"):
        link_chain([front, float_parts[1], back])


def test_single_part_relinked(float_parts):
    linked = link_chain(float_parts[1:2])
    np.testing.assert_array_equal(
        run(linked, np.ones((1, T, I), np.float32)),
        run(float_parts[1], np.ones((1, T, I), np.float32)),
    )
    assert [text(e.name) for e in load_model(linked).metadata] == ["edgelstm", SEGMENTS_NAME]


def _run_all(data: bytes, xs: list[np.ndarray]) -> list[np.ndarray]:
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    for d, x in zip(interp.get_input_details(), xs, strict=True):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def test_link_graph_dag(float_parts):
    """A front end with two outputs: one through the LSTM, one straight to the tail."""
    g = GraphBuilder("two outputs")
    x = g.add_tensor("x", [1, T, F])
    g.add_input("x", x)
    g.add_output("features", _fc(g, x, F, I, 3, relu=True))
    g.add_output("skip", _fc(g, x, F, N, 4))
    front = g.finish()
    g = GraphBuilder("tail")
    a, b = g.add_tensor("a", [1, T, N]), g.add_tensor("b", [1, T, N])
    total = g.add_tensor("sum", [1, T, N])
    g.add_operator(Op.ADD, [a, b], [total], Opt.AddOptions, schema.AddOptionsT())
    g.add_input("a", a)
    g.add_input("b", b)
    g.add_output("sum", total)
    tail = g.finish()
    lstm = float_parts[1]
    linked = link_graph(
        [front, lstm, tail],
        inputs=[(0, 0)],
        edges={(1, 0): (0, 0), (2, 0): (1, 0), (2, 1): (0, 1)},
        outputs=[(2, 0), (0, 1)],
    )
    features, skip = _run_all(front, [X])
    expected = _run_all(tail, [run(lstm, features), skip])[0]
    got = _run_all(linked, [X])
    np.testing.assert_array_equal(got[0], expected)
    np.testing.assert_array_equal(got[1], skip)
    runner = Interpreter(model_content=linked).get_signature_runner()
    by_name = runner(x=X)
    np.testing.assert_array_equal(by_name["sum"], expected)
    np.testing.assert_array_equal(by_name["skip"], skip)
    assert [b["consumer"] for b in read_segments(linked)["boundaries"]] == [[1, 0], [2, 0], [2, 1]]
    with pytest.raises(ValueError, match=r"not fed \[\(2, 1\)\]"):
        link_graph(
            [front, lstm, tail],
            inputs=[(0, 0)],
            edges={(1, 0): (0, 0), (2, 0): (1, 0)},
            outputs=[(2, 0)],
        )
    with pytest.raises(ValueError, match="earlier to later"):
        link_graph([front, lstm], inputs=[(0, 0)], edges={(1, 0): (1, 0)}, outputs=[(1, 0)])


@pytest.mark.parametrize("kind", ["int16", "uint8"])
def test_int16_and_uint8_boundaries(kind):
    """float -> {kind} (scale a) then {kind} (scale b) -> float: one requantizing QUANTIZE."""
    shape = [1, T, F]
    qa, qb = (
        Quantization((0.01,), (0 if kind == "int16" else 120,)),
        Quantization((0.013,), (0 if kind == "int16" else 131,)),
    )
    first = convert_model(shape, ("float32", None), (kind, qa))
    second = convert_model(shape, (kind, qb), ("float32", None), Op.DEQUANTIZE)
    linked = link_chain([first, second])
    m = load_model(linked)
    quantize = [c for c in m.operatorCodes if c.builtinCode == Op.QUANTIZE]
    assert len(quantize) == 1 and quantize[0].version == (2 if kind == "int16" else 1)
    oracle = [first, convert_model(shape, (kind, qa), (kind, qb)), second]
    x = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    np.testing.assert_array_equal(run(linked, x), chained(oracle, x))


def test_subgraph_fields_cover_control_flow():
    from edgelstm.targets.tflite.link_merge import subgraph_fields

    fields = subgraph_fields()
    assert fields[schema.WhileOptionsT] == ("condSubgraphIndex", "bodySubgraphIndex")
    assert fields[schema.IfOptionsT] == ("thenSubgraphIndex", "elseSubgraphIndex")
    assert fields[schema.CallOnceOptionsT] == ("initSubgraphIndex",)
    assert fields[schema.StableHLOCompositeOptionsT] == ("decompositionSubgraphIndex",)


def test_two_inputs_one_direct_one_requantized():
    """A part whose first input connects directly and whose second needs a QUANTIZE."""
    shape = [1, T, F]
    qa, qb_out, qb_in, qo = (
        Quantization((s,), (z,)) for s, z in [(0.02, 1), (0.03, -4), (0.025, 2), (0.05, 0)]
    )
    g = GraphBuilder("front")
    x = g.add_tensor("x", shape)
    g.add_input("x", x)
    for name, q in (("a", qa), ("b", qb_out)):
        y = g.add_tensor(name, shape, "int8", quantization=q)
        g.add_operator(Op.QUANTIZE, [x], [y], Opt.QuantizeOptions, schema.QuantizeOptionsT())
        g.add_output(name, y)
    front = g.finish()
    g = GraphBuilder("tail")
    a = g.add_tensor("in_a", shape, "int8", quantization=qa)
    b = g.add_tensor("in_b", shape, "int8", quantization=qb_in)
    total = g.add_tensor("sum", shape, "int8", quantization=qo)
    g.add_operator(Op.ADD, [a, b], [total], Opt.AddOptions, schema.AddOptionsT(), version=2)
    g.add_input("in_a", a)
    g.add_input("in_b", b)
    g.add_output("sum", total)
    tail = g.finish()
    linked = link_graph(
        [front, tail], inputs=[(0, 0)], edges={(1, 0): (0, 0), (1, 1): (0, 1)}, outputs=[(1, 0)]
    )
    links = [b["link"] for b in read_segments(linked)["boundaries"]]
    assert links == ["direct", "QUANTIZE"]
    x = np.random.default_rng(8).normal(size=shape).astype(np.float32)
    a_val, b_val = _run_all(front, [x])
    b_req = run(convert_model(shape, ("int8", qb_out), ("int8", qb_in)), b_val)
    np.testing.assert_array_equal(_run_all(linked, [x])[0], _run_all(tail, [a_val, b_req])[0])


def test_stateful_part_carries_state_across_invokes(float_parts):
    """A streaming (stateful) LSTM part keeps carrying its state inside the linked file."""
    lstm = to_tflite(LSTMModel.of(WEIGHTS, stateful=True), CompileOptions(batch=1, seq_len=T))
    parts = [float_parts[0], lstm]
    linked = link_chain(parts)
    interps = [Interpreter(model_content=d) for d in [linked, *parts]]
    for interp in interps:
        interp.allocate_tensors()
    rng = np.random.default_rng(9)
    for _ in range(3):
        x = rng.normal(size=(1, T, F)).astype(np.float32)
        got = run(linked, x, interps[0])
        np.testing.assert_array_equal(got, run(lstm, run(parts[0], x, interps[1]), interps[2]))
    fresh = Interpreter(model_content=linked)
    fresh.allocate_tensors()
    assert not np.array_equal(run(linked, x, fresh), got)  # the state did carry over

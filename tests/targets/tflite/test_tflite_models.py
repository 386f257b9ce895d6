"""Whole models as TFLite graphs: stacked, bidirectional, go_backwards, heads, last step,
return_state, layouts, dynamic shapes, streaming, initial states, file structure, determinism.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from _tflite_helpers import compare, random_states, seeded

from edgelstm import DenseHead, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.options import CompileOptions
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite import save_tflite, to_tflite
from edgelstm.targets.tflite.reader import read_metadata
from edgelstm.targets.tflite.schema import BuiltinOperator, TensorType, load_model

TOL = 1e-5


def _w(spec: LSTMSpec, seed: int) -> LSTMWeights:
    return LSTMWeights.random(spec, seed)


def _model(kind: str, **flags) -> LSTMModel:
    rng = seeded(kind)
    a = LSTMSpec(4, 6, 3, peephole=True, projection=True, cell_clip=0.8)
    b = LSTMSpec(3, 5, cifg=True, layer_norm=True)
    if kind == "stacked":
        layers = (LSTMLayer(_w(a, 1)), LSTMLayer(_w(LSTMSpec(3, 5, cifg=True), 2)))
    elif kind == "bidirectional":
        layers = (LSTMLayer(_w(a, 1), _w(a, 2)),)
    elif kind == "bidi_stacked":
        layers = (
            LSTMLayer(_w(a, 1), _w(a, 2)),
            LSTMLayer(_w(LSTMSpec(6, 5), 3), _w(LSTMSpec(6, 4, peephole=True), 4)),
        )
    elif kind == "go_backwards":
        layers = (LSTMLayer(_w(a, 1), go_backwards=True), LSTMLayer(_w(b, 2)))
    elif kind == "reverse":  # ONNX direction="reverse": outputs re-aligned to input time
        layers = (LSTMLayer(_w(a, 1), reverse=True), LSTMLayer(_w(b, 2), reverse=True))
    else:
        raise AssertionError(kind)
    head = None
    if flags.pop("head", None):
        units = 3
        feats = layers[-1].n_output
        head = DenseHead(
            rng.normal(0, 0.5, (units, feats)), rng.normal(0, 0.1, units), flags.pop("act")
        )
    return LSTMModel(layers, head=head, **flags)


KINDS = ("stacked", "bidirectional", "bidi_stacked", "go_backwards", "reverse")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("time_major", [False, True])
def test_model_structures_match_reference(kind, return_sequences, time_major):
    model = _model(
        kind, return_sequences=return_sequences, time_major=time_major, return_state=True
    )
    rng = seeded(kind, return_sequences, time_major)
    batch, steps = 3, 6
    x = rng.normal(size=(steps, batch, 4) if time_major else (batch, steps, 4))
    states = random_states(model, batch, rng)
    assert compare(model, x.astype(np.float32), CompileOptions(batch=None), states) <= TOL


@pytest.mark.parametrize("kind", ["stacked", "bidirectional"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("act", ["linear", "softmax"])
def test_dense_head(kind, return_sequences, act):
    model = _model(kind, head=True, act=act, return_sequences=return_sequences)
    x = seeded(kind, act).normal(size=(2, 5, 4)).astype(np.float32)
    assert compare(model, x, CompileOptions(batch=2, seq_len=5)) <= TOL
    ops = _ops(to_tflite(model, CompileOptions(batch=2)))
    assert BuiltinOperator.FULLY_CONNECTED in ops
    assert (BuiltinOperator.SOFTMAX in ops) == (act == "softmax")


def _ops(data: bytes) -> list[int]:
    m = load_model(data)
    return [m.operatorCodes[op.opcodeIndex].builtinCode for op in m.subgraphs[0].operators]


def test_bidirectional_graph_uses_reverse_and_concat():
    ops = _ops(to_tflite(_model("bidirectional")))
    assert ops.count(BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM) == 2
    assert ops.count(BuiltinOperator.REVERSE_V2) == 2
    assert ops.count(BuiltinOperator.CONCATENATION) == 1


def test_file_structure(tmp_path):
    model = _model("stacked", return_state=True)
    path = tmp_path / "m.tflite"
    save_tflite(model, path, CompileOptions(batch=2, seq_len=None))
    data = path.read_bytes()
    assert data[4:8] == b"TFL3"
    m = load_model(data)
    assert m.version == 3
    assert m.buffers[0].data is None or len(m.buffers[0].data) == 0
    g = m.subgraphs[0]
    lstm = [op for op in g.operators if m.operatorCodes[op.opcodeIndex].builtinCode == 44]
    assert len(lstm) == 2
    for op in lstm:
        # Always the 24-input form (TFLite Micro refuses 20), the layer-norm inputs absent.
        assert len(op.inputs) == 24 and list(op.inputs[20:]) == [-1] * 4
        for idx in (op.inputs[18], op.inputs[19]):
            t = g.tensors[idx]
            assert t.isVariable and t.buffer == 0 and t.type == TensorType.FLOAT32
            assert t.shapeSignature is None and t.shape[0] == 2  # fixed batch
        assert m.operatorCodes[op.opcodeIndex].version == 1
    inp = g.tensors[g.inputs[0]]
    assert inp.name == b"input" and list(inp.shapeSignature) == [2, -1, 4]
    sig = m.signatureDefs[0]
    assert sig.signatureKey == b"serving_default"
    assert [o.name for o in sig.outputs] == [b"output", b"state_h", b"state_c"]
    meta = read_metadata(data)
    assert meta["options"]["batch"] == 2 and meta["model"]["return_state"] is True
    assert meta["model"]["layers"][0]["directions"][0]["weights_digest"] == (
        model.layers[0].forward.digest()
    )
    json.dumps(meta)


def test_layer_norm_op_has_24_inputs():
    data = to_tflite(_w(LSTMSpec(3, 4, layer_norm=True), 0))
    m = load_model(data)
    (op,) = [
        o for o in m.subgraphs[0].operators if m.operatorCodes[o.opcodeIndex].builtinCode == 44
    ]
    assert len(op.inputs) == 24


def test_deterministic_bytes():
    model = _model("bidi_stacked", return_state=True, provenance={"forget_bias": 1.0})
    for quantize in ("none", "dynamic"):
        options = CompileOptions(batch=None, quantize=quantize)
        assert to_tflite(model, options) == to_tflite(model, options)


def test_dynamic_batch_and_length_resize():
    model = _model("bidirectional", return_state=True)
    runner = LiteRTRunner(to_tflite(model, CompileOptions(batch=None, seq_len=None)))
    rng = seeded("resize")
    for batch, steps in ((1, 3), (4, 9), (2, 1), (4, 2)):
        x = rng.normal(size=(batch, steps, 4)).astype(np.float32)
        states = random_states(model, batch, rng)
        outs = runner.run(x, states)
        ref = reference_model(model, x, states)
        assert np.max(np.abs(outs[0] - ref.output)) <= TOL


def test_interpreter_resize_tensor_input_directly():
    from ai_edge_litert.interpreter import Interpreter

    w = _w(LSTMSpec(4, 6), 3)
    it = Interpreter(model_content=to_tflite(w, CompileOptions(batch=1, seq_len=None)))
    inp = it.get_input_details()[0]
    assert list(inp["shape_signature"]) == [1, -1, 4]
    x = seeded("direct").normal(size=(1, 11, 4)).astype(np.float32)
    it.resize_tensor_input(inp["index"], [1, 11, 4], strict=True)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    assert np.max(np.abs(got - reference_model(w, x).output)) <= TOL


def test_fixed_shapes_are_not_resizable():
    runner = LiteRTRunner(to_tflite(_w(LSTMSpec(4, 6), 3), CompileOptions(batch=1, seq_len=5)))
    assert runner.run(np.zeros((1, 5, 4)))[0].shape == (1, 5, 6)
    from edgelstm.errors import InputDataError

    with pytest.raises(InputDataError):
        runner.run(np.zeros((1, 6, 4)))


@pytest.mark.parametrize("time_major", [False, True])
def test_streaming_chunks_equal_one_invoke(time_major):
    model = LSTMModel(
        (
            LSTMLayer(_w(LSTMSpec(4, 6, 3, projection=True, peephole=True), 1)),
            LSTMLayer(_w(LSTMSpec(3, 5, layer_norm=True), 2)),
        ),
        time_major=time_major,
        stateful=True,
    )
    runner = LiteRTRunner(to_tflite(model, CompileOptions(batch=2)))
    rng = seeded("stream", time_major)
    x = rng.normal(size=(2, 13, 4)).astype(np.float32)
    if time_major:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    axis = 0 if time_major else 1
    whole = runner.run(x)[0]
    runner.reset()
    bounds = (0, 1, 5, 6, 13)
    chunks = [
        runner.invoke_chunk(np.take(x, range(a, b), axis=axis))[0]
        for a, b in itertools.pairwise(bounds)
    ]
    assert np.max(np.abs(np.concatenate(chunks, axis=axis) - whole)) <= 1e-6
    # without a reset the next chunk continues; after reset it restarts
    runner.reset()
    first = runner.invoke_chunk(np.take(x, range(0, 4), axis=axis))[0]
    assert np.max(np.abs(first - np.take(whole, range(0, 4), axis=axis))) <= 1e-6
    # reset_all_variables on the raw interpreter restarts too
    runner.interpreter.reset_all_variables()
    again = runner.invoke_chunk(np.take(x, range(0, 4), axis=axis))[0]
    assert np.array_equal(first, again)


def test_initial_state_via_set_tensor_on_the_initial_variables():
    """A non-stateful file resets h and c before the op on every invoke (ADD of the two
    variables ``{state}/initial`` and ``{state}/zero``): an initial state is set on
    ``initial``; after the invoke the state variables hold the final state."""
    w = _w(LSTMSpec(3, 5, 4, projection=True), 7)
    data = to_tflite(w, CompileOptions(batch=2, seq_len=6))
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    idx = {d["name"]: d["index"] for d in it.get_tensor_details()}
    rng = seeded("set_tensor")
    h0 = rng.normal(size=(2, 4)).astype(np.float32)
    c0 = rng.normal(size=(2, 5)).astype(np.float32)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    it.reset_all_variables()
    it.set_tensor(idx["layer0/forward/output_state/initial"], h0)
    it.set_tensor(idx["layer0/forward/cell_state/initial"], c0)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    ref = reference_model(w, x, [[(h0, c0)]])
    assert np.max(np.abs(got - ref.output)) <= TOL
    # the state variables hold the final state after the invoke
    h, c = ref.states[0][0]
    assert np.max(np.abs(it.get_tensor(idx["layer0/forward/cell_state"]) - c)) <= TOL
    assert np.max(np.abs(it.get_tensor(idx["layer0/forward/output_state"]) - h)) <= TOL


def test_runner_accepts_path_and_flat_states(tmp_path):
    model = _model("bidirectional", return_state=True)
    path = tmp_path / "b.tflite"
    save_tflite(model, path, CompileOptions(batch=1))
    runner = LiteRTRunner(path)
    assert runner.output_names == [
        "output",
        "state_h_forward",
        "state_c_forward",
        "state_h_backward",
        "state_c_backward",
    ]
    rng = seeded("flat")
    x = rng.normal(size=(1, 4, 4)).astype(np.float32)
    nested = random_states(model, 1, rng)
    flat = [pair for layer in nested for pair in layer]
    a, b = runner.run(x, nested), runner.run(x, flat)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert len(runner.state()) == 2


@pytest.mark.parametrize("activation", ["linear", "sigmoid"])
def test_refused_activations(activation, tmp_path):
    from edgelstm.errors import UnsupportedError

    good = _w(LSTMSpec(3, 4), 1)
    bad = _w(LSTMSpec(3, 4, activation=activation), 2)
    model = LSTMModel((LSTMLayer(good, bad),))
    with pytest.raises(UnsupportedError) as info:
        save_tflite(model, tmp_path / "x.tflite")
    assert info.value.target == "tflite"
    assert activation in info.value.reason and "layer 0" in info.value.reason
    assert not list(tmp_path.iterdir())


def test_int8_is_delegated_to_the_int8_emitter(monkeypatch):
    import edgelstm.targets.tflite.int8

    calls = []
    monkeypatch.setattr(
        edgelstm.targets.tflite.int8,
        "to_tflite_int8",
        lambda m, o: calls.append((m, o)) or b"int8",
    )
    weights = _w(LSTMSpec(3, 4), 1)
    options = CompileOptions(quantize="int8")
    assert to_tflite(weights, options) == b"int8"
    assert calls[0][1] is options and calls[0][0].layers[0].forward is weights

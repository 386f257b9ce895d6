"""Whole models through the unfused lowering: stacking, bidirectional (one shared input GEMM),
go_backwards, last step, dense head, layouts, dynamic shapes, the state interface and
streaming, and that the graph is one XNNPACK can take (no variable tensors, delegated)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _tflite_helpers import random_states, seeded
from test_unfused_features import TOL, unfused_error

from edgelstm import (
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    SpecError,
    UnsupportedError,
    reference_model,
)
from edgelstm.ir.model import DenseHead, LSTMLayer
from edgelstm.ir.options import CompileOptions, UnfusedOptions
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite.metadata import decode_metadata
from edgelstm.targets.tflite.schema import BuiltinOperator, load_model
from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

SCHEDULES = [
    {"schedule": "unrolled"},
    {"schedule": "while", "chunk": 1},
    {"schedule": "while", "chunk": 2, "segment": 2},
]


def _w(rng, n_input, n_cell, **kw) -> LSTMWeights:
    spec = LSTMSpec(n_input=n_input, n_cell=n_cell, **kw)
    return LSTMWeights.random(spec, seed=int(rng.integers(1 << 30)), scale=0.8)


def _models():
    rng = seeded("unfused-models")
    fw = _w(rng, 4, 6, peephole=True)
    bw = _w(rng, 4, 5, cifg=True, activation="relu", projection=True, n_output=3)
    head = DenseHead(rng.normal(size=(2, 8)), rng.normal(size=2), "softmax")
    return {
        "bidirectional": LSTMModel(layers=(LSTMLayer(fw, bw),), return_state=True),
        "go_backwards": LSTMModel(layers=(LSTMLayer(fw, go_backwards=True),), return_state=True),
        "reverse_stack": LSTMModel(
            layers=(LSTMLayer(bw, reverse=True), LSTMLayer(_w(rng, 3, 4), reverse=True)),
            return_sequences=False,
            return_state=True,
        ),
        "stacked_head": LSTMModel(
            layers=(LSTMLayer(_w(rng, 4, 6), _w(rng, 4, 6)), LSTMLayer(_w(rng, 12, 8))),
            head=head,
        ),
        "last_step_bidi": LSTMModel(
            layers=(LSTMLayer(fw, bw),), return_sequences=False, return_state=True
        ),
        "last_step_go_backwards_head": LSTMModel(
            layers=(LSTMLayer(_w(rng, 4, 6), go_backwards=True), LSTMLayer(_w(rng, 6, 8))),
            return_sequences=False,
            head=head,
        ),
        "time_major_bidi": LSTMModel(layers=(LSTMLayer(fw, bw),), time_major=True),
        "stacked_unidirectional": LSTMModel(
            layers=(LSTMLayer(_w(rng, 4, 6, layer_norm=True)), LSTMLayer(_w(rng, 6, 8))),
            head=head,
        ),
    }


MODELS = _models()


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "-".join(map(str, s.values())))
def test_model_matches_reference(name, schedule):
    model = MODELS[name]
    rng = seeded("unfused-model-input", name)
    shape = (6, 2, model.n_input) if model.time_major else (2, 6, model.n_input)
    x = rng.normal(size=shape).astype(np.float32)
    states = random_states(model, 2, rng)
    assert unfused_error(model, x, CompileOptions(batch=2, seq_len=6), states, **schedule) <= TOL


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dynamic_batch_and_length(name):
    model = MODELS[name]
    rng = seeded("unfused-dynamic", name)
    runner = LiteRTRunner(to_tflite_unfused(model, CompileOptions(batch=None, seq_len=None)))
    for batch, steps in ((3, 7), (1, 2)):
        shape = (steps, batch, model.n_input) if model.time_major else (batch, steps, model.n_input)
        x = rng.normal(size=shape).astype(np.float32)
        got = runner.run(x)[0]
        np.testing.assert_allclose(got, reference_model(model, x).output, atol=TOL, rtol=0)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: "-".join(map(str, s.values())))
def test_streaming_in_chunks_equals_one_pass(schedule):
    """A unidirectional stack fed in chunks (states carried by the runner) == one pass."""
    model = MODELS["stacked_unidirectional"]
    rng = seeded("unfused-stream")
    x = rng.normal(size=(1, 12, 4)).astype(np.float32)
    options = CompileOptions(seq_len=4, unfused=UnfusedOptions(**schedule, state_inputs=True))
    runner = LiteRTRunner(to_tflite_unfused(model, options))
    chunks = [runner.run(x[:, :4])[0]] + [runner.invoke_chunk(x[:, k : k + 4])[0] for k in (4, 8)]
    full = reference_model(model, x)
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), full.output, atol=TOL, rtol=0)
    for (h, c), (rh, rc) in zip(
        runner.state(), [s for lay in full.states for s in lay], strict=True
    ):
        np.testing.assert_allclose(h, rh, atol=TOL, rtol=0)
        np.testing.assert_allclose(c, rc, atol=TOL, rtol=0)
    runner.reset()
    np.testing.assert_allclose(runner.invoke_chunk(x[:, :4])[0], chunks[0], atol=0, rtol=0)


def test_state_interface_and_metadata():
    model = MODELS["bidirectional"]
    streaming = UnfusedOptions(state_inputs=True)
    data = to_tflite_unfused(model, CompileOptions(batch=1, seq_len=5, unfused=streaming))
    m = load_model(data)
    main = m.subgraphs[0]
    sig = m.signatureDefs[0]
    inputs = [t.name.decode() for t in sig.inputs]
    outputs = [t.name.decode() for t in sig.outputs]
    assert inputs == [
        "input",
        "layer0/forward/initial_h",
        "layer0/forward/initial_c",
        "layer0/backward/initial_h",
        "layer0/backward/initial_c",
    ]
    assert outputs == [
        "output",
        "state_h_forward",
        "state_c_forward",
        "state_h_backward",
        "state_c_backward",
    ]
    assert not any(t.isVariable for sg in m.subgraphs for t in sg.tensors)
    meta = decode_metadata(bytes(m.buffers[m.metadata[0].buffer].data))
    assert meta["lowering"]["kind"] == "unfused"
    assert [e["final_h"] for e in meta["state_io"]] == ["state_h_forward", "state_h_backward"]
    assert len(main.inputs) == 5
    json.dumps(meta)


def test_bidirectional_layer_is_one_input_gemm_and_one_loop():
    options = CompileOptions(seq_len=20, unfused=UnfusedOptions("while"))
    data = to_tflite_unfused(MODELS["bidirectional"], options)
    m = load_model(data)
    codes = [m.operatorCodes[op.opcodeIndex].builtinCode for op in m.subgraphs[0].operators]
    assert codes.count(BuiltinOperator.FULLY_CONNECTED) == 1
    assert codes.count(BuiltinOperator.WHILE) >= 1
    assert len(m.subgraphs) == 3  # main, one cond, one body shared by both directions


def test_recurrence_is_delegated_to_xnnpack():
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(n_input=8, n_cell=16), seed=1))
    data = to_tflite_unfused(model, CompileOptions(seq_len=8, unfused=UnfusedOptions("unrolled")))
    runner = LiteRTRunner(data)
    ops = [o["op_name"] for o in runner.interpreter._get_ops_details()]
    assert "DELEGATE" in ops


def test_deterministic_bytes():
    model = MODELS["stacked_head"]
    options = CompileOptions(seq_len=6, quantize="dynamic")
    assert to_tflite_unfused(model, options) == to_tflite_unfused(model, options)


def test_refusals():
    model = MODELS["bidirectional"]
    cases = [
        (None, UnfusedOptions("unrolled"), "fixed sequence length"),
        (6, UnfusedOptions("while", chunk=4), "divide"),
        (None, UnfusedOptions("while", chunk=2), "dynamic sequence length"),
        (6, UnfusedOptions("while", chunk=2, segment=3), "segment"),
    ]
    for steps, schedule, message in cases:
        with pytest.raises(UnsupportedError, match=message):
            to_tflite_unfused(model, CompileOptions(seq_len=steps, unfused=schedule))
    with pytest.raises(SpecError, match="schedule"):
        UnfusedOptions("sometimes")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="chunk"):
        UnfusedOptions("while", chunk=0)

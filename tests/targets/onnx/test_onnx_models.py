"""ONNX emitter, whole models: stacked, bidirectional, go_backwards, head, return_sequences,
layouts, initial states, dynamic batch, sequence_lens, metadata and determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _onnx_helpers import assert_matches, emit_checked, max_err, op_types, run

from edgelstm import (
    DenseHead,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    UnsupportedError,
    reference_model,
    save_onnx,
    to_onnx,
)
from edgelstm.ir.options import CompileOptions, OnnxOptions
from edgelstm.targets.onnx import OPSET, names
from edgelstm.targets.onnx.emit import plan

FUSED = LSTMSpec(4, 5, peephole=True)
COMPOSITE = LSTMSpec(4, 6, 3, projection=True, cell_clip=1.0)


def _w(spec: LSTMSpec, seed: int, **changes) -> LSTMWeights:
    from dataclasses import replace

    return LSTMWeights.random(replace(spec, **changes), seed=seed)


def _states(model: LSTMModel, batch: int, rng) -> list:
    return [
        [
            (rng.normal(size=(batch, w.spec.n_output)), rng.normal(size=(batch, w.spec.n_cell)))
            for w in layer.directions
        ]
        for layer in model.layers
    ]


def _head(features: int, units: int, activation: str, seed: int) -> DenseHead:
    rng = np.random.default_rng(seed)
    return DenseHead(rng.normal(size=(units, features)), rng.normal(size=units), activation)


MODELS = {
    "stacked-fused-composite": lambda: LSTMModel(
        (LSTMLayer(_w(FUSED, 1)), LSTMLayer(_w(COMPOSITE, 2, n_input=5)))
    ),
    "bidi-fused": lambda: LSTMModel(
        (LSTMLayer(_w(FUSED, 3), _w(FUSED, 4, activation="linear", cifg=True)),)
    ),
    "bidi-fused-unequal-sizes": lambda: LSTMModel(
        (LSTMLayer(_w(FUSED, 5), _w(FUSED, 6, n_cell=3, n_output=3, activation="relu")),)
    ),
    "bidi-mixed": lambda: LSTMModel((LSTMLayer(_w(FUSED, 7), _w(COMPOSITE, 8)),)),
    "bidi-composite-stacked-head": lambda: LSTMModel(
        (
            LSTMLayer(_w(COMPOSITE, 9), _w(COMPOSITE, 10, layer_norm=True)),
            LSTMLayer(_w(FUSED, 11, n_input=6), _w(FUSED, 12, n_input=6)),
        ),
        head=_head(10, 3, "softmax", 0),
    ),
    "go_backwards-fused": lambda: LSTMModel(
        (LSTMLayer(_w(FUSED, 13), go_backwards=True), LSTMLayer(_w(FUSED, 14, n_input=5)))
    ),
    "go_backwards-fused-mixed": lambda: LSTMModel(  # not all fused: Slice reversal
        (LSTMLayer(_w(FUSED, 16), go_backwards=True), LSTMLayer(_w(COMPOSITE, 17, n_input=5)))
    ),
    "reverse-fused-then-composite": lambda: LSTMModel(
        (
            LSTMLayer(_w(FUSED, 18), reverse=True),
            LSTMLayer(_w(COMPOSITE, 19, n_input=5), reverse=True),
        )
    ),
    "go_backwards-composite": lambda: LSTMModel(
        (LSTMLayer(_w(COMPOSITE, 15), go_backwards=True),), head=_head(3, 2, "linear", 1)
    ),
}


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_matches_reference(name: str, return_sequences: bool) -> None:
    base = MODELS[name]()
    model = LSTMModel(base.layers, head=base.head, return_sequences=return_sequences)
    rng = np.random.default_rng(len(name) + return_sequences)
    proto = emit_checked(model, CompileOptions(batch=None))
    x = rng.normal(size=(3, 6, 4))
    assert_matches(run(proto, x), reference_model(model, x), model)
    streaming = emit_checked(model, CompileOptions(batch=None, onnx=OnnxOptions(state_inputs=True)))
    states = _states(model, 3, rng)
    assert_matches(run(streaming, x, states), reference_model(model, x, states), model)
    assert_matches(run(streaming, x), reference_model(model, x), model)  # runner feeds zeros


def test_op_types_follow_the_plan() -> None:
    proto = emit_checked(MODELS["bidi-fused"]())
    assert op_types(proto).count("LSTM") == 1  # one bidirectional node
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    attrs = {a.name: a for a in lstm.attribute}
    assert attrs["direction"].s == b"bidirectional"
    assert [s.decode() for s in attrs["activations"].strings] == [
        "Sigmoid",
        "Tanh",
        "Tanh",
        "Sigmoid",
        "Affine",
        "Affine",
    ]
    proto = emit_checked(MODELS["bidi-fused-unequal-sizes"]())
    assert op_types(proto).count("LSTM") == 2
    proto = emit_checked(MODELS["bidi-mixed"]())
    assert op_types(proto).count("LSTM") == 1 and op_types(proto).count("Scan") == 1
    choices = plan(MODELS["bidi-mixed"]())
    assert choices[0].fused and choices[0].reason.startswith("fused LSTM")
    assert not choices[1].fused and "projection" in choices[1].reason


@pytest.mark.parametrize("recurrence", ["scan", "loop"])
def test_loop_recurrence_bidi_and_go_backwards(recurrence: str) -> None:
    model = LSTMModel(
        (
            LSTMLayer(_w(COMPOSITE, 20), _w(COMPOSITE, 21)),
            LSTMLayer(_w(COMPOSITE, 22, n_input=6), go_backwards=True),
        )
    )
    proto = emit_checked(model, CompileOptions(batch=2, onnx=OnnxOptions(recurrence=recurrence)))
    assert op_types(proto).count(recurrence.capitalize()) == 3
    x = np.random.default_rng(0).normal(size=(2, 5, 4))
    assert_matches(run(proto, x), reference_model(model, x), model)


@pytest.mark.parametrize("model_major", [False, True])
@pytest.mark.parametrize("override", [None, False, True])
def test_time_major_layouts(model_major: bool, override: bool | None) -> None:
    base = MODELS["bidi-mixed"]()
    model = LSTMModel(base.layers, time_major=model_major)
    proto = emit_checked(model, CompileOptions(batch=2, seq_len=5, time_major=override))
    time_major = model_major if override is None else override
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ([5, 2, 4] if time_major else [2, 5, 4])
    x = np.random.default_rng(1).normal(size=(2, 5, 4))
    ref = reference_model(LSTMModel(base.layers), x)
    y = run(proto, x.transpose(1, 0, 2) if time_major else x)[0]
    assert max_err(y.transpose(1, 0, 2) if time_major else y, ref.output) <= 1e-5


def test_io_contract_stateless_and_streaming() -> None:
    model = MODELS["stacked-fused-composite"]()
    outputs = ["y", "layer0.h", "layer0.c", "layer1.h", "layer1.c"]
    stateless = emit_checked(model, CompileOptions(batch=None))
    assert [i.name for i in stateless.graph.input] == ["x"]
    assert [o.name for o in stateless.graph.output] == outputs
    lstm = next(n for n in stateless.graph.node if n.op_type == "LSTM")
    assert list(lstm.input[4:]) in ([], ["", "", ""], ["", "", "", lstm.input[7]])  # zeros
    proto = emit_checked(model, CompileOptions(batch=None, onnx=OnnxOptions(state_inputs=True)))
    inputs = [i.name for i in proto.graph.input]
    assert inputs == ["x", "layer0.h0", "layer0.c0", "layer1.h0", "layer1.c0"]
    assert [o.name for o in proto.graph.output] == outputs
    assert not {i.name for i in proto.graph.initializer} & set(inputs)  # required, no default
    stateful = emit_checked(LSTMModel(model.layers, stateful=True), CompileOptions(batch=None))
    assert [i.name for i in stateful.graph.input] == inputs  # stateful implies streaming
    x = np.random.default_rng(2).normal(size=(4, 3, 4))
    rng = np.random.default_rng(3)
    states = _states(model, 4, rng)
    states[1] = [None]  # feed only layer 0: layer 1 starts from zeros
    ref = reference_model(model, x, [states[0], [None]])
    assert_matches(run(proto, x, states), ref, model)


def _ragged_reference(model: LSTMModel, x: np.ndarray, lens: list[int], states=None):
    """Per sample: the reference on the valid prefix (ORT writes zeros after it)."""
    outs, finals = [], []
    for b, n in enumerate(lens):
        st = None
        if states is not None:
            st = [[(h[b : b + 1], c[b : b + 1]) for h, c in layer] for layer in states]
        ref = reference_model(model, x[b : b + 1, :n], st)
        y = ref.output
        if model.return_sequences:
            y = np.concatenate([y, np.zeros((1, x.shape[1] - n, y.shape[2]))], axis=1)
        outs.append(y)
        finals.append(ref.states)
    return np.concatenate(outs), finals


@pytest.mark.parametrize("name", ["bidi-fused", "go_backwards-fused", "stacked-fused"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_sequence_lens(name: str, return_sequences: bool) -> None:
    if name == "stacked-fused":
        layers = (LSTMLayer(_w(FUSED, 30)), LSTMLayer(_w(FUSED, 31, n_input=5, cifg=True)))
        head = None
    else:
        layers, head = MODELS[name]().layers, None
    if not return_sequences:
        head = _head(layers[-1].n_output, 2, "softmax", 2)
    model = LSTMModel(layers, head=head, return_sequences=return_sequences)
    onnx_options = OnnxOptions(state_inputs=True, sequence_lens=True)
    proto = emit_checked(model, CompileOptions(batch=None, onnx=onnx_options))
    assert [i.name for i in proto.graph.input][-1] == names.SEQUENCE_LENS
    assert names.SEQUENCE_LENS not in {i.name for i in proto.graph.initializer}
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 6, 4))
    lens = [6, 3, 1]
    states = _states(model, 3, rng)
    out = run(proto, x, states, np.array(lens))
    y, finals = _ragged_reference(model, x, lens, states)
    if return_sequences and model.head is None:
        assert max_err(out[0], y) <= 1e-5
    elif not return_sequences:
        assert max_err(out[0], y.reshape(out[0].shape)) <= 1e-5
    k = 1
    for li, layer in enumerate(model.layers):
        for d in range(len(layer.directions)):
            h = np.concatenate([f[li][d][0] for f in finals])
            c = np.concatenate([f[li][d][1] for f in finals])
            assert max_err(out[k], h) <= 1e-5 and max_err(out[k + 1], c) <= 1e-5
            k += 2
    # sequence_lens not fed: the runner feeds full length
    full = run(proto, x, states)
    assert_matches(full, reference_model(model, x, states), model)


def test_sequence_lens_only_when_asked_and_all_fused() -> None:
    proto = emit_checked(MODELS["bidi-fused"]())
    assert names.SEQUENCE_LENS not in [i.name for i in proto.graph.input]
    with pytest.raises(UnsupportedError, match="sequence_lens needs every direction"):
        to_onnx(MODELS["bidi-mixed"](), CompileOptions(onnx=OnnxOptions(sequence_lens=True)))


def test_metadata_and_opset() -> None:
    base = MODELS["bidi-composite-stacked-head"]()
    model = LSTMModel(base.layers, head=base.head, provenance={"forget_bias": 1.0, "src": "t"})
    proto = emit_checked(model, CompileOptions(source="unit.npz"))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    assert proto.ir_version == 8
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["edgelstm.source"] == "unit.npz"
    assert meta["edgelstm.folded_forget_bias"] == "1.0"
    assert json.loads(meta["edgelstm.provenance"]) == {"forget_bias": 1.0, "src": "t"}
    digests = json.loads(meta["edgelstm.weights_digest"])
    assert digests == [[w.digest() for w in layer.directions] for layer in model.layers]
    spec = json.loads(meta["edgelstm.spec"])
    assert spec[0]["backward"]["layer_norm"] is True
    emit = json.loads(meta["edgelstm.emit"])
    assert [e["how"].split(" ")[0] for e in emit] == ["composite:"] * 2 + ["fused"] * 2


def test_deterministic_bytes(tmp_path) -> None:
    model = MODELS["bidi-mixed"]()
    a = to_onnx(model).SerializeToString()
    b = to_onnx(MODELS["bidi-mixed"]()).SerializeToString()
    assert a == b
    save_onnx(model, tmp_path / "a.onnx")
    save_onnx(model, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes() == a


def test_static_int8_is_refused_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "m.onnx"
    with pytest.raises(UnsupportedError, match="no integer LSTM kernel"):
        save_onnx(MODELS["bidi-fused"](), out, CompileOptions(quantize="int8"))
    assert not out.exists()

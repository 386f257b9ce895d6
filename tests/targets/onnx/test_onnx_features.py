"""ONNX emitter, one direction: every feature combination vs the float64 reference in ORT.

The covering set is the full product of CIFG x peephole x projection (none / plain / bias,
each with and without proj_clip) x layer norm x cell_clip, with the activation cycling
through all six, plus every activation on a plain and on a composite cell. Shapes, batch,
length and initial states are drawn per case. Each case also checks the op types: the
fused LSTM node exactly when the ONNX op can express the cell, else one Scan.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _onnx_helpers import assert_matches, emit_checked, op_types, run

from edgelstm import ACTIVATIONS, LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.options import CompileOptions, OnnxOptions
from edgelstm.targets.onnx.params import fused_blocker

PROJECTIONS = [
    (False, False, 0.0),
    (True, False, 0.0),
    (True, False, 0.4),
    (True, True, 0.0),
    (True, True, 0.4),
]
PRODUCT = list(
    itertools.product([False, True], [False, True], PROJECTIONS, [False, True], [0.0, 0.7])
)
CASES = [
    (cifg, peep, proj, ln, cc, ACTIVATIONS[k % len(ACTIVATIONS)])
    for k, (cifg, peep, proj, ln, cc) in enumerate(PRODUCT)
]
CASES += [(False, False, PROJECTIONS[0], False, 0.0, a) for a in ACTIVATIONS]
CASES += [(True, True, PROJECTIONS[4], True, 1.5, a) for a in ACTIVATIONS]


def _case_id(case) -> str:
    cifg, peep, (proj, pbias, pclip), ln, cc, act = case
    parts = [
        name
        for name, on in (
            ("cifg", cifg),
            ("peep", peep),
            ("proj", proj),
            ("pbias", pbias),
            (f"pclip{pclip}", pclip),
            ("ln", ln),
            (f"cclip{cc}", cc),
        )
        if on
    ]
    return "-".join([*parts, act]) or act


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_feature_matches_reference(case) -> None:
    cifg, peep, (proj, pbias, pclip), ln, cc, act = case
    seed = CASES.index(case)
    rng = np.random.default_rng(seed)
    n_cell = int(rng.integers(1, 7))
    spec = LSTMSpec(
        n_input=int(rng.integers(1, 6)),
        n_cell=n_cell,
        n_output=int(rng.integers(1, 5)) if proj else None,
        cifg=cifg,
        peephole=peep,
        projection=proj,
        projection_bias=pbias,
        layer_norm=ln,
        cell_clip=cc,
        proj_clip=pclip,
        activation=act,
    )
    weights = LSTMWeights.random(spec, seed=seed, scale=0.8)
    model = LSTMModel.of(weights)
    batch, steps = int(rng.integers(1, 4)), int(rng.integers(1, 7))
    dynamic = bool(seed % 2)
    streaming = bool(seed % 3)  # initial states fed: the streaming form (required inputs)
    options = CompileOptions(
        batch=None if dynamic else batch, onnx=OnnxOptions(state_inputs=streaming)
    )
    proto = emit_checked(model, options)

    ops = op_types(proto)
    if fused_blocker(spec) is None:
        assert ops.count("LSTM") == 1 and "Scan" not in ops and "Loop" not in ops
    else:
        assert ops.count("Scan") == 1 and "LSTM" not in ops

    x = rng.normal(size=(batch, steps, spec.n_input)) * 1.5
    states = None
    if streaming:
        states = [[(rng.normal(size=(batch, spec.n_output)), rng.normal(size=(batch, n_cell)))]]
    outputs = run(proto, x, states)
    assert_matches(outputs, reference_model(model, x, states), model)


@pytest.mark.parametrize("recurrence", ["scan", "loop"])
def test_forced_composite_matches_fused(recurrence: str) -> None:
    """The composite of a plain cell (as benchmarked) computes the same as the fused op."""
    rng = np.random.default_rng(7)
    spec = LSTMSpec(4, 6, peephole=True, cifg=True)
    model = LSTMModel.of(LSTMWeights.random(spec, seed=3))
    x = rng.normal(size=(2, 5, 4))
    options = CompileOptions(onnx=OnnxOptions(force_composite=True, recurrence=recurrence))
    proto = emit_checked(model, options)
    ops = op_types(proto)
    assert "LSTM" not in ops and ops.count(recurrence.capitalize()) == 1
    # the keyword shorthands of to_onnx build the same model
    assert emit_checked(model, force_composite=True, recurrence=recurrence) == proto
    assert_matches(run(proto, x[:1]), reference_model(model, x[:1]), model)


def test_peephole_with_folded_forget_bias_is_one_fused_node() -> None:
    spec = LSTMSpec(3, 5, peephole=True)
    w = LSTMWeights.random(spec, seed=1)
    tensors = dict(w.tensors)
    tensors["forget_gate_bias"] = tensors["forget_gate_bias"] + 0.5  # forget_bias folded
    model = LSTMModel.of(LSTMWeights(spec, tensors), provenance={"forget_bias": 0.5})
    proto = emit_checked(model)
    ops = op_types(proto)
    assert ops.count("LSTM") == 1
    assert not {"Scan", "Loop"} & set(ops)
    lstm = next(n for n in proto.graph.node if n.op_type == "LSTM")
    attrs = {a.name for a in lstm.attribute}
    assert "clip" not in attrs and "input_forget" not in attrs and "layout" not in attrs
    assert lstm.input[7], "peephole input P must be wired"
    x = np.random.default_rng(0).normal(size=(1, 6, 3))
    assert_matches(run(proto, x), reference_model(model, x), model)


def test_cell_clip_is_never_the_onnx_clip_attribute() -> None:
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(3, 4, cell_clip=0.2), seed=2))
    proto = emit_checked(model)
    assert "LSTM" not in op_types(proto)
    for node in proto.graph.node:
        assert all(a.name != "clip" for a in node.attribute)
    x = np.random.default_rng(1).normal(size=(1, 8, 3)) * 3
    assert_matches(run(proto, x), reference_model(model, x), model)


def test_ort_input_forget_couples_forget_to_input() -> None:
    """Why CIFG is not mapped to ``input_forget=1``: ORT computes f = 1 - i, while the
    canonical CIFG is i = 1 - f. (The emitter uses i = sigmoid(-z_f) instead.)"""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgelstm.runtime.ort import OrtRunner

    rng = np.random.default_rng(0)
    steps, hidden, n_in = 4, 3, 2
    w = rng.normal(size=(1, 4 * hidden, n_in)).astype(np.float32)
    r = rng.normal(size=(1, 4 * hidden, hidden)).astype(np.float32)
    node = helper.make_node("LSTM", ["x", "W", "R"], ["Y"], hidden_size=hidden, input_forget=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, n_in])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [steps, 1, 1, hidden])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rng.normal(size=(steps, 1, n_in)).astype(np.float32)
    y = OrtRunner(model.SerializeToString()).run(x)[0][:, 0, 0]

    def numpy_lstm(coupling: str) -> np.ndarray:
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        wi, wo, wf, wc = np.split(w[0], 4)
        ri, ro, rf, rc = np.split(r[0], 4)
        h, c, out = np.zeros(hidden), np.zeros(hidden), []
        for t in range(steps):
            i, f = sig(wi @ x[t, 0] + ri @ h), sig(wf @ x[t, 0] + rf @ h)
            i, f = (i, 1 - i) if coupling == "f=1-i" else (1 - f, f)
            c = f * c + i * np.tanh(wc @ x[t, 0] + rc @ h)
            h = sig(wo @ x[t, 0] + ro @ h) * np.tanh(c)
            out.append(h)
        return np.array(out)

    assert np.abs(y - numpy_lstm("f=1-i")).max() < 1e-5
    assert np.abs(y - numpy_lstm("i=1-f")).max() > 1e-2
    onnx.checker.check_model(model, full_check=True)

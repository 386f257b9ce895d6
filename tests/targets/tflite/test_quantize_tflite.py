"""Full-integer .tflite files: tensor types as the kernel requires, accuracy on LiteRT for every
supported feature combination, both I/O interfaces, streaming int8 state, file size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgelstm import (
    CalibrationError,
    DenseHead,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    reference,
    reference_model,
)
from edgelstm.ir.options import CompileOptions, Int8Options
from edgelstm.ir.roles import ROLES
from edgelstm.measure.int8_error import compile_int8, error_stats, evaluate_int8
from edgelstm.targets.tflite import to_tflite

pytest.importorskip("ai_edge_litert")

from _paths import MODELS
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

TT = schema.TensorType
KIND_TYPE = {
    "weight": TT.INT8,
    "recurrent": TT.INT8,
    "projection": TT.INT8,
    "peephole": TT.INT16,
    "ln": TT.INT16,
    "bias": TT.INT32,
}
RMSE_LSB_BOUND = 1.5
"""Held-out RMSE bound in output LSBs (measured 0.38-1.24 over the combinations below)."""
MAX_LSB_BOUND = 32
"""Held-out max error bound: a held-out value beyond the calibrated output range saturates
for a step (measured up to 20 LSB with 48 calibration sequences)."""


def _data(seed: int, n_input: int = 8, steps: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Calibration and held-out sequences drawn from the same distribution."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.5, 1.5, (48, steps, n_input)), rng.uniform(
        -1.5, 1.5, (16, steps, n_input)
    )


def _lstm_op(data: bytes):
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    codes = [c.builtinCode for c in model.operatorCodes]
    ops = [codes[op.opcodeIndex] for op in graph.operators]
    lstm = next(
        op
        for op in graph.operators
        if codes[op.opcodeIndex] == schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    )
    return graph, lstm, ops


def _q(tensor) -> tuple[float, int]:
    return float(tensor.quantization.scale[0]), int(tensor.quantization.zeroPoint[0])


# -- file structure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        LSTMSpec(8, 16, peephole=True, projection=True, projection_bias=True, layer_norm=True),
        LSTMSpec(8, 16, 8, cifg=True, projection=True, cell_clip=1.0, proj_clip=0.5),
        LSTMSpec(8, 16),
    ],
    ids=lambda s: s.describe(),
)
def test_every_op_tensor_is_what_the_kernel_expects(spec):
    w = LSTMWeights.random(spec, seed=1)
    xc, _ = _data(0)
    data, plan = compile_int8(w, xc)
    graph, op, ops = _lstm_op(data)
    t = graph.tensors
    assert (
        ops[0] == schema.BuiltinOperator.QUANTIZE and ops[-1] == schema.BuiltinOperator.DEQUANTIZE
    )
    assert len(op.inputs) == 24  # always the 24-input form: TFLite Micro refuses 20
    for role in ROLES[: len(op.inputs)]:
        index = op.inputs[role.index]
        if not role.present(spec) and role.kind not in ("input", "state"):
            assert index == -1, role.name
            continue
        tensor = t[index]
        if role.kind == "input":
            assert tensor.type == TT.INT8
        elif role.kind == "state":
            assert tensor.isVariable and tensor.buffer == 0
            want = TT.INT8 if role.name == "output_state" else TT.INT16
            assert tensor.type == want, role.name
        else:
            assert tensor.type == KIND_TYPE[role.kind], role.name
            assert len(tensor.quantization.scale) == 1  # per tensor
            assert tensor.quantization.zeroPoint[0] == 0, role.name
    out = t[op.outputs[0]]
    h, c = t[op.inputs[18]], t[op.inputs[19]]
    assert out.type == TT.INT8 and _q(h) == _q(out)
    scale, zp = _q(c)
    k = np.log2(scale)
    assert zp == 0 and k == int(k) and -15 <= k <= -9
    inter = [t[i] for i in op.intermediates]
    assert len(inter) == 5
    for g in inter[:4]:
        if spec.layer_norm:
            assert g.type == TT.INT16 and _q(g)[1] == 0
        else:
            assert g.type == TT.FLOAT32 and list(g.shape) == [0]
    assert inter[4].type == TT.INT8
    if spec.projection:
        assert _q(inter[4])[1] == 0
    else:
        assert _q(inter[4]) == _q(out)
    assert _q(t[op.inputs[0]]) == (plan.input.scale, plan.input.zero_point)


def test_int8_io_interface():
    w = LSTMWeights.random(LSTMSpec(8, 16), seed=2)
    xc, xt = _data(1)
    opts = CompileOptions(
        batch=16, seq_len=25, quantize="int8", calibration=xc, int8=Int8Options(io=True)
    )
    it = Interpreter(model_content=to_tflite(w, opts))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    from edgelstm.quant import QuantParams

    q = QuantParams(s_in, z_in, "int8").quantize(xt)  # TFLite's QUANTIZE rounding
    it.set_tensor(inp["index"], q)
    it.invoke()
    y_int8_io = (it.get_tensor(out["index"]).astype(np.float64) - z_out) * s_out
    data, _ = compile_int8(w, xc)
    from edgelstm.measure.int8_error import run_tflite

    # Same integers inside; DEQUANTIZE computes in float32.
    np.testing.assert_allclose(run_tflite(data, xt), y_int8_io, rtol=0, atol=1e-6)


def test_missing_calibration_is_refused():
    w = LSTMWeights.random(LSTMSpec(8, 16), seed=2)
    with pytest.raises(CalibrationError, match="needs calibration"):
        to_tflite(w, CompileOptions(quantize="int8"))


# -- accuracy per feature combination ------------------------------------------------------------

COMBINATIONS = list(
    itertools.product((False, True), (False, True), ("none", "proj", "proj+bias"), (False, True))
)


def _combo_spec(cifg: bool, peephole: bool, proj: str, ln: bool, clips: bool) -> LSTMSpec:
    projection = proj != "none"
    return LSTMSpec(
        8,
        16,
        16 if peephole or not projection else 8,  # peephole needs n_output == n_cell
        cifg=cifg,
        peephole=peephole,
        projection=projection,
        projection_bias=proj == "proj+bias",
        layer_norm=ln,
        cell_clip=1.0 if clips else 0.0,
        proj_clip=0.4 if clips and projection else 0.0,
    )


@pytest.mark.parametrize("clips", [False, True], ids=["noclip", "clips"])
@pytest.mark.parametrize(
    ("cifg", "peephole", "proj", "ln"),
    COMBINATIONS,
    ids=[
        "-".join(f for f, on in zip(("cifg", "peep", p, "ln"), c, strict=True) if on) or "plain"
        for c in COMBINATIONS
        for p in [c[2] if c[2] != "none" else ""]
    ],
)
def test_accuracy_vs_reference(cifg, peephole, proj, ln, clips):
    spec = _combo_spec(cifg, peephole, proj, ln, clips)
    w = LSTMWeights.random(spec, seed=7, scale=0.7)
    xc, xt = _data(11)
    stats, _, _ = evaluate_int8(w, xc, xt)
    print(f"{spec.describe():<70} {stats}")
    assert stats.rmse_lsb <= RMSE_LSB_BOUND, stats
    assert stats.max_lsb <= MAX_LSB_BOUND, stats


def test_stacked_bidirectional_head_and_states():
    rng = np.random.default_rng(5)
    fw = LSTMWeights.random(LSTMSpec(8, 16), seed=1, scale=0.6)
    bw = LSTMWeights.random(LSTMSpec(8, 16, cifg=True), seed=2, scale=0.6)
    top = LSTMWeights.random(LSTMSpec(32, 16, peephole=True), seed=3, scale=0.4)
    head = DenseHead(rng.normal(size=(5, 16)) * 0.5, rng.normal(size=5) * 0.1, "softmax")
    model = LSTMModel(
        (LSTMLayer(fw, bw), LSTMLayer(top)), head=head, return_sequences=False, return_state=True
    )
    xc, xt = _data(3)
    data, plan = compile_int8(model, xc)
    from edgelstm.runtime import LiteRTRunner

    y, h8, c16 = LiteRTRunner(data).run(xt.astype(np.float32))
    ref = reference_model(model, xt)
    assert error_stats(y, ref.output, 1 / 256).max_abs < 0.02  # softmax probabilities
    h_ref, c_ref = ref.states[-1][0]
    top = plan.direction(1)
    assert h8.dtype == np.int8 and c16.dtype == np.int16  # the state variables themselves
    h, c = top.output.dequantize(h8), top.cell_state.dequantize(c16)
    assert error_stats(h, h_ref, top.output.scale).rmse_lsb < 2
    assert np.sqrt(np.mean((c - c_ref) ** 2)) < 0.02


def test_bidirectional_with_proj_clip_shares_output_params():
    fw = LSTMWeights.random(LSTMSpec(8, 16, 8, projection=True, proj_clip=0.4), seed=7, scale=0.7)
    bw = LSTMWeights.random(LSTMSpec(8, 16, 8, projection=True), seed=8, scale=0.7)
    xc, xt = _data(4)
    stats, plan, _ = evaluate_int8(LSTMModel((LSTMLayer(fw, bw),)), xc, xt)
    assert plan.direction(0, 0).output == plan.direction(0, 1).output  # CONCATENATION copies
    assert stats.rmse_lsb <= RMSE_LSB_BOUND, stats


@pytest.mark.parametrize("flag", ["go_backwards", "reverse"])
def test_reversed_layers(flag):
    """go_backwards keeps processing order, reverse re-aligns to input time: both in int8,
    also through the peephole+projection padding rewrite (which rebuilds the layers)."""
    spec = LSTMSpec(8, 16, 8, peephole=True, projection=True)
    first = LSTMWeights.random(spec, seed=11, scale=0.6)
    second = LSTMWeights.random(LSTMSpec(8, 12), seed=12, scale=0.6)
    model = LSTMModel((LSTMLayer(first, **{flag: True}), LSTMLayer(second, **{flag: True})))
    xc, xt = _data(6)
    stats, plan, _ = evaluate_int8(model, xc, xt)
    assert getattr(plan.model.layers[0], flag)
    assert stats.rmse_lsb <= RMSE_LSB_BOUND, stats
    assert stats.max_lsb <= MAX_LSB_BOUND, stats


# -- peephole with projection: the exact padding rewrite ---------------------------------------


def test_peephole_projection_runs_padded():
    spec = LSTMSpec(8, 16, 8, peephole=True, projection=True, projection_bias=True, proj_clip=0.4)
    w = LSTMWeights.random(spec, seed=7, scale=0.7)
    xc, xt = _data(5)
    stats, plan, data = evaluate_int8(w, xc, xt)
    assert plan.model.layers[0].forward.spec.n_output == 16  # padded
    ops = _lstm_op(data)[2]
    assert schema.BuiltinOperator.GATHER in ops  # drops the zero features at the output
    assert stats.rmse_lsb <= RMSE_LSB_BOUND, stats
    assert stats.max_lsb <= MAX_LSB_BOUND, stats


def test_trained_japanese_vowels_models_keep_their_accuracy():
    """The repo's trained classifiers (one peephole+projection 64->32, one CIFG+LN), int8."""

    from edgelstm import from_npz
    from edgelstm.measure.int8_error import run_tflite

    root = MODELS
    data = np.load(root / "japanese_vowels.npz")
    x_train, x_test, y_test = data["x_train"], data["x_test"], data["y_test"]
    for name in ("japanese_vowels_lstm.npz", "japanese_vowels_cifg_ln_lstm.npz"):
        model = from_npz(root / name)
        tfl, _ = compile_int8(model, x_train)
        probs = run_tflite(tfl, x_test)
        ref = reference_model(model, x_test).output
        assert np.sqrt(np.mean((probs - ref) ** 2)) < 0.01, name  # class probabilities
        acc_int8 = (probs.argmax(-1) == y_test).mean()
        acc_float = (ref.argmax(-1) == y_test).mean()
        assert acc_int8 >= acc_float - 0.005, (name, acc_int8, acc_float)


# -- streaming int8 state --------------------------------------------------------------------------


def _stream_model():
    spec = LSTMSpec(8, 16, 8, projection=True, projection_bias=True, layer_norm=True, cell_clip=2)
    return LSTMWeights.random(spec, seed=4, scale=0.7)


def test_chunks_equal_one_invoke_and_initial_state():
    w = _stream_model()
    xc, xt = _data(2, steps=40)
    data, plan = compile_int8(w, xc)
    from edgelstm.runtime import LiteRTRunner

    runner = LiteRTRunner(data)
    whole = runner.run(xt[:2].astype(np.float32))[0]
    runner.reset()
    parts = [
        runner.invoke_chunk(xt[:2, k : k + 10].astype(np.float32))[0] for k in range(0, 40, 10)
    ]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)  # int8 state carries
    h8, c16 = runner.state()[0]
    p = plan.direction()
    assert h8.dtype == np.int8 and c16.dtype == np.int16
    # An initial state set in the integer domain continues exactly like the reference would.
    h0, c0 = p.output.dequantize(h8), p.cell_state.dequantize(c16)
    it = runner.interpreter
    it.reset_all_variables()
    (hi, ci) = runner.states[0]  # the file resets them: set the initial variables instead
    it.set_tensor(runner.resets[hi][0], h8)
    it.set_tensor(runner.resets[ci][0], c16)
    nxt = xt[:2, :10].astype(np.float32)
    it.set_tensor(runner._input["index"], nxt)
    it.invoke()
    y = it.get_tensor(runner._outputs[0]["index"])
    ref, _ = reference(w, nxt, initial_state=(h0, c0))
    assert error_stats(y, ref, p.output.scale).rmse_lsb < RMSE_LSB_BOUND


@pytest.mark.slow
def test_long_stream_does_not_drift():
    """T = 10 000 in chunks of 500: the error stays at the per-step level, no accumulation."""
    w = _stream_model()
    rng = np.random.default_rng(9)
    xc = rng.uniform(-1.5, 1.5, (48, 50, 8))
    x = rng.uniform(-1.5, 1.5, (1, 10_000, 8))
    data, plan = compile_int8(w, xc)
    from edgelstm.runtime import LiteRTRunner

    runner = LiteRTRunner(data)
    runner.reset()
    y = np.concatenate(
        [
            runner.invoke_chunk(x[:, k : k + 500].astype(np.float32))[0]
            for k in range(0, 10_000, 500)
        ],
        axis=1,
    )
    ref, _ = reference(w, x)
    lsb = plan.output.scale
    first = error_stats(y[:, :1000], ref[:, :1000], lsb)
    last = error_stats(y[:, -1000:], ref[:, -1000:], lsb)
    overall = error_stats(y, ref, lsb)
    print(f"first {first}\nlast  {last}\nall   {overall}")
    assert overall.rmse_lsb <= RMSE_LSB_BOUND
    assert last.rmse_lsb <= 1.5 * first.rmse_lsb + 0.1
    assert overall.max_lsb <= MAX_LSB_BOUND


# -- size ---------------------------------------------------------------------------------------


def test_int8_file_is_small():
    w = LSTMWeights.random(LSTMSpec(128, 256), seed=0)
    rng = np.random.default_rng(0)
    xc = rng.normal(size=(2, 5, 128))
    float_size = len(to_tflite(w, CompileOptions()))
    int8_size = len(to_tflite(w, CompileOptions(quantize="int8", calibration=xc)))
    assert int8_size <= 0.3 * float_size, (int8_size, float_size)


def test_float_io_softmax_head_keeps_small_probabilities():
    """With float I/O the head's softmax runs in float on dequantized int8 logits: no
    probability collapses to exactly 0 (an int8 softmax has an LSB of 1/256)."""
    rng = np.random.default_rng(21)
    lstm = LSTMWeights.random(LSTMSpec(8, 16), seed=21, scale=0.6)
    head = DenseHead(rng.normal(size=(60, 16)) * 2.0, rng.normal(size=60), "softmax")
    model = LSTMModel((LSTMLayer(lstm),), head=head)
    xc, xt = _data(7)
    data, _ = compile_int8(model, xc)
    from edgelstm.runtime import LiteRTRunner

    probs = LiteRTRunner(data).run(xt.astype(np.float32))[0]
    ref = reference_model(model, xt).output
    assert probs.dtype == np.float32
    assert ref.min() < 1 / 512  # the case an int8 softmax would round to 0
    assert probs.min() > 0
    small = ref < 1 / 256
    rel = np.abs(np.log(probs[small]) - np.log(ref[small]))
    assert np.median(rel) < 0.25, np.median(rel)
    int8_io = to_tflite(
        model,
        CompileOptions(quantize="int8", calibration=xc, batch=None, int8=Int8Options(io=True)),
    )
    ops = _lstm_op(int8_io)[2]
    assert schema.BuiltinOperator.SOFTMAX in ops  # int8 I/O keeps the integer softmax

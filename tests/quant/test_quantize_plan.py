"""The int8 plan follows the integer kernel's rules, checked against the kernel itself.

Oracle: ai-edge-litert's UNIDIRECTIONAL_SEQUENCE_LSTM (8x8_16) and the float64 reference. The
plan's file reproduces the reference within a few output LSB; the same file with one rule
broken (another dtype, a weight zero point, another bias scale, a cell scale outside 2^-15 ..
2^-9, an asymmetric projection hidden) is refused by the interpreter or misses by tens of LSB.
The clip codes are read back from the kernel's output and int16 cell state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import MappingProxyType

import numpy as np
import pytest

from edgelstm import (
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    ModelFileError,
    UnsupportedError,
    reference_model,
)
from edgelstm.ir.roles import GATES, name_of
from edgelstm.quant import DEFAULT_ESTIMATORS, Int8Plan, QuantParams, quantize_model
from edgelstm.quant.plan import resolve_estimators
from edgelstm.quant.qparams import asymmetric_int8
from edgelstm.quant.tensor import QuantTensor, quantize_bias, quantize_symmetric

pytest.importorskip("ai_edge_litert")

from edgelstm.measure.int8_error import compile_int8, error_stats, run_tflite
from edgelstm.runtime import LiteRTRunner

GOOD_RMSE_LSB = 1.0
"""The plan's own file: held-out RMSE in output LSB (measured 0.31-0.52 here)."""
BROKEN_RMSE_LSB = 5.0
"""A file with one rule broken misses by more than this (measured 13-76 LSB)."""

Edit = Callable[[Int8Plan, LSTMWeights], Int8Plan]


def _weights(spec: LSTMSpec, seed: int = 1, bias: float = 1.0) -> LSTMWeights:
    """Random weights; ``bias`` scales the gate biases (large biases expose their scale)."""
    w = LSTMWeights.random(spec, seed=seed)
    tensors = dict(w.tensors)
    for g in GATES:
        if name_of("bias", g) in tensors:
            tensors[name_of("bias", g)] = (tensors[name_of("bias", g)] * bias).astype(np.float32)
    return LSTMWeights(spec, tensors)


def _run(w: LSTMWeights, edit: Edit | None = None, seed: int = 0) -> float:
    """Held-out RMSE (output LSB) of the plan's file for ``w``, with ``edit`` applied."""
    rng = np.random.default_rng(seed)
    cal = rng.uniform(-1.5, 1.5, (32, 12, w.spec.n_input))
    x = rng.uniform(-1.5, 1.5, (8, 12, w.spec.n_input))
    plan = quantize_model(w, cal)
    direction = plan.layers[0][0]
    if edit is not None:
        plan = dataclasses.replace(plan, layers=((edit(direction, w),),))
    data, _ = compile_int8(w, cal, plan=plan)
    y = run_tflite(data, x)
    return error_stats(y, reference_model(w, x).output, direction.output.scale).rmse_lsb


def _retensor(edit: Callable[[str, QuantTensor, LSTMWeights], QuantTensor | None]) -> Edit:
    """An :data:`Edit` replacing the tensors for which ``edit`` returns a new one."""

    def apply(plan: Int8Plan, w: LSTMWeights) -> Int8Plan:
        tensors = dict(plan.tensors)
        for name, t in plan.tensors.items():
            tensors[name] = edit(name, t, w) or t
        return dataclasses.replace(plan, tensors=MappingProxyType(tensors))

    return apply


@pytest.mark.parametrize(
    ("spec", "prefix", "dtype", "match"),
    [
        (LSTMSpec(4, 8, peephole=True), "cell_to_", "int8", "cell_to_input_weights->type"),
        (LSTMSpec(4, 8), "input_to_", "int16", "weights->type"),
        (LSTMSpec(4, 8, layer_norm=True), "input_layer_norm", "int8", "layer_norm"),
    ],
    ids=["peephole-int8", "weights-int16", "ln-int8"],
)
def test_kernel_takes_the_plans_dtypes_only(spec, prefix, dtype, match):
    """int8 weights, int16 peepholes and layer-norm coefficients: the interpreter refuses the
    others (its Prepare checks each type), and runs the plan's within an LSB."""
    w = _weights(spec)
    assert _run(w) <= GOOD_RMSE_LSB

    def other(name: str, t: QuantTensor, w: LSTMWeights) -> QuantTensor | None:
        return quantize_symmetric(w[name], dtype) if name.startswith(prefix) else None

    with pytest.raises(ModelFileError, match=match):
        _run(w, _retensor(other))


def test_kernel_ignores_weight_zero_points():
    """The kernel multiplies raw weight codes: a zero point in the file is not subtracted."""
    w = _weights(LSTMSpec(4, 8))

    def shifted(name: str, t: QuantTensor, w: LSTMWeights) -> QuantTensor | None:
        if not name.startswith("recurrent_to_"):
            return None
        params = QuantParams(t.params.scale * 2, 40, "int8")  # ~the same reals, zero point 40
        return QuantTensor((t.data.astype(np.int32) // 2 + 40).astype(np.int8), params)

    assert _run(w) <= GOOD_RMSE_LSB
    assert _run(w, _retensor(shifted)) > BROKEN_RMSE_LSB


@pytest.mark.parametrize(
    ("spec", "suffix"),
    [
        (LSTMSpec(4, 8), "_gate_bias"),  # s_input * s_input_to_gate (folded into W x)
        (LSTMSpec(4, 8, layer_norm=True), "_gate_bias"),  # s_lncoef * 2^-10 (after LN)
        (LSTMSpec(4, 8, 3, projection=True, projection_bias=True), "projection_bias"),
    ],
    ids=["gate", "gate-ln", "projection"],
)
def test_kernel_reads_biases_at_the_plans_scale(spec, suffix):
    """The kernel derives each bias's scale from other tensors' scales, whatever the file says:
    bias codes at the plan's scale reproduce the reference, codes at twice it (with the file
    saying so) do not."""
    w = _weights(spec, bias=4.0)
    if spec.projection_bias:
        tensors = dict(w.tensors)
        tensors["projection_bias"] = np.full(3, 0.5, np.float32)
        w = LSTMWeights(spec, tensors)

    def doubled(name: str, t: QuantTensor, w: LSTMWeights) -> QuantTensor | None:
        if not name.endswith(suffix):
            return None
        scale = t.params.scale * 2
        return QuantTensor(quantize_bias(w[name], scale), QuantParams(scale, 0, "int32"))

    assert _run(w) <= GOOD_RMSE_LSB
    assert _run(w, _retensor(doubled)) > BROKEN_RMSE_LSB


@pytest.mark.parametrize("k", [-17, -16, -15, -9, -8, -7])
def test_cell_scale_must_be_2_to_the_minus_15_to_9(k):
    """ApplyTanh(15 + k) has 0..6 integer bits: outside, tanh writes nothing and the output
    is wrong; any k inside that covers the cell (here |c| < 1) is accurate."""
    w = _weights(LSTMSpec(4, 8))

    def cell(plan: Int8Plan, w: LSTMWeights) -> Int8Plan:
        return dataclasses.replace(plan, cell_state=QuantParams(2.0**k, 0, "int16"))

    rmse = _run(w, cell)
    if -15 <= k <= -9:
        assert rmse <= GOOD_RMSE_LSB
    else:
        assert rmse > BROKEN_RMSE_LSB


def test_asymmetric_projection_hidden_saturates():
    """The kernel subtracts the hidden zero point where it should add it (b/246629213): with
    a mostly positive o*tanh(c) the converter's asymmetric hidden misses by tens of LSB, the
    plan's zero point 0 does not."""
    spec = LSTMSpec(4, 16, 8, projection=True, projection_bias=True)
    w = LSTMWeights.random(spec, seed=0, scale=0.25)
    tensors = dict(w.tensors)
    tensors["cell_gate_bias"] = tensors["cell_gate_bias"] + 1.0  # c > 0: o*tanh(c) > 0
    w = LSTMWeights(spec, tensors)
    rng = np.random.default_rng(0)
    cal, x = rng.uniform(-1.5, 1.5, (32, 12, 4)), rng.uniform(-1.5, 1.5, (8, 12, 4))
    ref = reference_model(w, x).output
    errors = {}
    for hidden in ("zero", "asymmetric"):
        data, plan = compile_int8(w, cal, hidden=hidden)
        errors[hidden] = error_stats(run_tflite(data, x), ref, plan.output.scale).rmse_lsb
        if hidden == "asymmetric":
            assert plan.direction().intermediate("hidden").zero_point != 0
    assert errors["zero"] <= GOOD_RMSE_LSB < 20 < errors["asymmetric"]


def test_clip_codes_are_the_kernels():
    """Driven into both clips, the kernel's int8 output stops at the plan's proj_clip code,
    which dequantizes to proj_clip exactly, and its int16 cell state at the plan's
    cell_clip code."""
    spec = LSTMSpec(
        4, 8, 3, peephole=True, projection=True, projection_bias=True, layer_norm=True,
        cell_clip=0.75, proj_clip=0.3,
    )  # fmt: skip
    w = LSTMWeights.random(spec, seed=2)
    tensors = dict(w.tensors)
    for g in ("input", "forget", "cell"):
        tensors[name_of("bias", g)] = np.full(8, 3.0, np.float32)  # c grows into the clip
    tensors["projection_weights"] = tensors["projection_weights"] * 4
    w = LSTMWeights(spec, tensors)
    rng = np.random.default_rng(0)
    cal, x = rng.uniform(-1.5, 1.5, (32, 12, 4)), rng.uniform(-1.5, 1.5, (8, 12, 4))
    data, plan = compile_int8(w, cal)
    direction = plan.direction()
    runner = LiteRTRunner(data)
    y = runner.run(x.astype(np.float32))[0]
    ((_h_index, c_index),) = runner.states
    cell_codes = runner.interpreter.get_tensor(c_index).astype(np.int64)
    assert np.abs(cell_codes).max() == direction.quantized_cell_clip
    assert direction.output.zero_point == 0  # CwiseClipping compares raw codes
    codes = np.round(y / direction.output.scale)
    assert np.abs(codes).max() == direction.quantized_proj_clip == 127
    assert np.abs(y).max() == pytest.approx(spec.proj_clip, rel=1e-6)
    ref = reference_model(w, x).output
    assert error_stats(y, ref, direction.output.scale).rmse_lsb <= 2 * GOOD_RMSE_LSB


def test_qparam_helpers():
    p = asymmetric_int8(-0.5, 1.5)
    assert p.quantize(np.array([0.0]))[0] == p.zero_point  # zero is exact
    assert asymmetric_int8(0.2, 0.9).real_range[0] <= 0  # range extended to contain 0
    with pytest.raises(ValueError, match="scale"):
        QuantParams(0.0, 0, "int8")


def test_estimator_choice():
    assert resolve_estimators(None) == dict(DEFAULT_ESTIMATORS)
    assert set(resolve_estimators("mse").values()) == {"mse"}
    assert resolve_estimators({"input": "minmax"})["output"] == DEFAULT_ESTIMATORS["output"]
    with pytest.raises(ValueError, match="unknown"):
        resolve_estimators({"gates": "minmax"})
    with pytest.raises(ValueError, match="unknown"):
        resolve_estimators("best")


def test_stacked_layers_chain_params(rng):
    a = LSTMWeights.random(LSTMSpec(3, 4), seed=1)
    b = LSTMWeights.random(LSTMSpec(3, 4), seed=2)
    c = LSTMWeights.random(LSTMSpec(8, 4), seed=3)
    plan = quantize_model(LSTMModel((LSTMLayer(a, b), LSTMLayer(c))), rng.normal(size=(4, 6, 3)))
    fw, bw = plan.layers[0]
    assert fw.output == bw.output  # the concatenation is a byte copy
    assert plan.direction(1).input == fw.output


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (LSTMSpec(4, 12, layer_norm=True), "power-of-two"),
        (LSTMSpec(4, 8, activation="relu"), "always applies tanh"),
    ],
)
def test_refusals(spec, match, rng):
    w = LSTMWeights.random(spec)
    with pytest.raises(UnsupportedError, match=match) as info:
        quantize_model(w, rng.normal(size=(2, 3, 4)))
    assert info.value.target == "tflite int8"
    assert "dynamic" in info.value.reason  # points to hybrid


def test_raw_peephole_projection_direction_is_refused():
    """Planned directly (no padding rewrite), the kernel's peephole bug case is refused."""
    from edgelstm.quant import check_spec

    with pytest.raises(UnsupportedError, match="first n_output cells"):
        check_spec(LSTMSpec(4, 8, 4, peephole=True, projection=True))


def test_padding_rewrite_is_exact(rng):
    from edgelstm import reference_model
    from edgelstm.quant.pad import pad_for_int8

    spec = LSTMSpec(4, 8, 3, peephole=True, projection=True, projection_bias=True)
    fw, bw = LSTMWeights.random(spec, seed=1), LSTMWeights.random(spec, seed=2)
    top = LSTMWeights.random(LSTMSpec(6, 8, 5, peephole=True, projection=True), seed=3)
    model = LSTMModel((LSTMLayer(fw, bw), LSTMLayer(top)))
    padded = pad_for_int8(model)
    assert [w.spec.n_output for layer in padded.model.layers for w in layer.directions] == [8] * 3
    x = rng.normal(size=(2, 7, 4))
    want = reference_model(model, x).output
    got = reference_model(padded.model, x).output[..., padded.output_columns]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    with pytest.raises(UnsupportedError, match="return_state"):
        pad_for_int8(LSTMModel((LSTMLayer(fw),), return_state=True))


def test_refusal_names_the_layer(rng):
    ok = LSTMWeights.random(LSTMSpec(4, 8))
    bad = LSTMWeights.random(LSTMSpec(8, 8, activation="relu"))
    with pytest.raises(UnsupportedError, match="layer 1"):
        quantize_model(LSTMModel((LSTMLayer(ok), LSTMLayer(bad))), rng.normal(size=(2, 3, 4)))

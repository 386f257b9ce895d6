"""The int8 plan follows the integer kernel's rules (scales, dtypes, zero points, clips)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, UnsupportedError
from edgelstm.quant import DEFAULT_ESTIMATORS, calibrate, plan_direction, quantize_model
from edgelstm.quant.plan import resolve_estimators
from edgelstm.quant.qparams import (
    QuantParams,
    asymmetric_int8,
    cell_scale_exponent,
    kernel_clip_int8,
)

DTYPE_OF_KIND = {
    "weight": "int8",
    "recurrent": "int8",
    "projection": "int8",
    "peephole": "int16",
    "ln": "int16",
    "bias": "int32",
}


def _plan(spec: LSTMSpec, seed: int = 0, **kw):
    rng = np.random.default_rng(seed)
    w = LSTMWeights.random(spec, seed=seed)
    return plan_direction(
        calibrate(w, rng.normal(size=(16, 12, spec.n_input))).direction(), **kw
    ), w


ALL = LSTMSpec(
    4,
    8,
    8,
    peephole=True,
    projection=True,
    projection_bias=True,
    layer_norm=True,
    cell_clip=0.75,
    proj_clip=0.3,
)


@pytest.mark.parametrize(
    "spec",
    [
        ALL,
        LSTMSpec(4, 8),
        LSTMSpec(4, 8, 3, cifg=True, projection=True),
        LSTMSpec(4, 16, cifg=True, peephole=True, layer_norm=True),
    ],
    ids=lambda s: s.describe(),
)
def test_tensor_dtypes_and_scales(spec):
    from edgelstm.ir.roles import BY_NAME

    plan, _ = _plan(spec)
    for name, t in plan.tensors.items():
        role = BY_NAME[name]
        assert t.dtype == DTYPE_OF_KIND[role.kind], name
        assert t.params.zero_point == 0, name
        assert t.data.shape == role.shape(spec)
        if role.kind in ("weight", "recurrent", "projection"):
            assert np.abs(t.data).max() == 127  # symmetric, full range
    s_in = plan.input.scale
    for g in ("input", "forget", "cell", "output"):
        bias = plan.tensors.get(f"{g}_gate_bias")
        if bias is None:
            continue
        if spec.layer_norm:
            want = plan.tensors[f"{g}_layer_norm_coefficients"].params.scale * 2**-10
        else:
            want = s_in * plan.tensors[f"input_to_{g}_weights"].params.scale
        assert bias.params.scale == pytest.approx(want, rel=1e-6)
    if spec.projection_bias:
        want = plan.tensors["projection_weights"].params.scale * plan.intermediates[4].scale
        assert plan.tensors["projection_bias"].params.scale == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("spec", [ALL, LSTMSpec(4, 8), LSTMSpec(4, 8, 3, projection=True)])
def test_activation_params(spec):
    plan, _ = _plan(spec)
    assert plan.input.dtype == plan.output.dtype == "int8"
    cell = plan.cell_state
    assert cell.dtype == "int16" and cell.zero_point == 0
    k = math.log2(cell.scale)
    assert k == int(k) and -15 <= k <= -9
    assert len(plan.intermediates) == 5
    gates = plan.intermediates[:4]
    if spec.layer_norm:
        assert all(p.dtype == "int16" and p.zero_point == 0 for p in gates)
    else:
        assert all(p is None for p in gates)  # FLOAT32 placeholders
    hidden = plan.intermediates[4]
    if spec.projection:
        assert hidden.dtype == "int8" and hidden.zero_point == 0  # the kernel saturates otherwise
    else:
        assert hidden == plan.output  # written straight into the state


def test_clips_are_exact_codes():
    plan, _ = _plan(ALL)
    assert plan.output.zero_point == 0  # CwiseClipping compares raw codes
    assert plan.quantized_proj_clip == 127
    assert plan.output.scale * 127 == pytest.approx(ALL.proj_clip, rel=1e-6)
    assert plan.quantized_cell_clip == int(ALL.cell_clip / plan.cell_state.scale)
    assert plan.cell_state.scale * 2**15 >= ALL.cell_clip


def test_asymmetric_hidden_is_only_an_option():
    spec = LSTMSpec(4, 8, 3, projection=True)
    plan, _ = _plan(spec, hidden="asymmetric")
    assert plan.intermediates[4].zero_point != 0


def test_qparam_helpers():
    p = asymmetric_int8(-0.5, 1.5)
    assert p.quantize(np.array([0.0]))[0] == p.zero_point  # zero is exact
    assert asymmetric_int8(0.2, 0.9).real_range[0] <= 0  # range extended to contain 0
    assert cell_scale_exponent(0.9) == -15 and cell_scale_exponent(1.5) == -14
    assert cell_scale_exponent(1000.0) == -9
    assert kernel_clip_int8(0.3, 0.3 / 127) in (126, 127)
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

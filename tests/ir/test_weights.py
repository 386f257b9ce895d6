"""LSTMWeights validation against the role table, and the gate-order conversions."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import LSTMSpec, LSTMWeights, WeightsError
from edgelstm.ir import gate_orders as gates
from edgelstm.ir.roles import INTERMEDIATES, ROLES, WEIGHT_ROLES, intermediate, name_of, role

FULL = LSTMSpec(3, 4, 2, peephole=True, projection=True, projection_bias=True, layer_norm=True)


def test_role_table_matches_the_op_layout():
    assert [r.index for r in ROLES] == list(range(24))
    assert role("input_to_input_weights").index == 1
    assert role("recurrent_to_output_weights").index == 8
    assert role("cell_to_output_weights").index == 11
    assert role("projection_weights").index == 16
    assert role("output_state").index == 18
    assert role("output_layer_norm_coefficients").index == 23
    assert len(WEIGHT_ROLES) == 21


def test_per_gate_names_and_intermediates_come_from_the_table():
    assert name_of("weight", "forget") == "input_to_forget_weights"
    assert name_of("recurrent", "cell") == "recurrent_to_cell_weights"
    assert name_of("peephole", "output") == "cell_to_output_weights"
    assert name_of("bias", "input") == "input_gate_bias"
    assert name_of("ln", "cell") == "cell_layer_norm_coefficients"
    with pytest.raises(KeyError, match="peephole"):
        name_of("peephole", "cell")  # the cell gate has no peephole
    assert [i.name for i in INTERMEDIATES] == [
        "input_gate",
        "forget_gate",
        "cell_gate",
        "output_gate",
        "hidden",
    ]
    assert intermediate("hidden").index == 4 and intermediate("hidden").gate is None
    assert intermediate("forget_gate").tensor_name == "intermediate_1"


def test_cifg_drops_exactly_the_input_gate_tensors():
    spec = LSTMSpec(3, 4, cifg=True, peephole=True, layer_norm=True)
    missing = {r.name for r in WEIGHT_ROLES if not r.present(spec)}
    assert missing == {
        "input_to_input_weights",
        "recurrent_to_input_weights",
        "cell_to_input_weights",
        "input_gate_bias",
        "input_layer_norm_coefficients",
        "projection_weights",
        "projection_bias",
    }


def test_random_weights_have_table_shapes():
    w = LSTMWeights.random(FULL, seed=3)
    for r in WEIGHT_ROLES:
        assert w[r.name].shape == r.shape(FULL)
        assert w[r.name].dtype == np.float32
    assert not w["forget_gate_bias"].flags.writeable


def _tensors(spec=FULL):
    return dict(LSTMWeights.random(spec).tensors)


def test_wrong_shape_names_tensor_expected_and_found():
    t = _tensors()
    t["recurrent_to_cell_weights"] = np.zeros((4, 3), np.float32)
    with pytest.raises(
        WeightsError, match=r"recurrent_to_cell_weights: expected shape \[4, 2\], found \[4, 3\]"
    ):
        LSTMWeights(FULL, t)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_weight_is_refused(bad):
    t = _tensors()
    arr = np.array(t["forget_gate_bias"])
    arr[1] = bad
    t["forget_gate_bias"] = arr
    with pytest.raises(WeightsError, match="forget_gate_bias: expected finite"):
        LSTMWeights(FULL, t)


def test_missing_required_role():
    t = _tensors()
    del t["cell_gate_bias"]
    with pytest.raises(WeightsError, match="cell_gate_bias: required"):
        LSTMWeights(FULL, t)


@pytest.mark.parametrize(
    "drop",
    [
        ["input_to_input_weights"],  # half-present CIFG set
        ["cell_to_forget_weights"],  # half-present peephole set
        ["projection_weights"],  # projection bias without weights
    ],
)
def test_half_present_feature_sets_are_refused(drop):
    t = _tensors()
    for name in drop:
        del t[name]
    with pytest.raises(WeightsError):
        LSTMWeights.from_tensors(t)


def test_extra_tensor_for_disabled_feature_is_refused():
    spec = LSTMSpec(3, 4)
    t = _tensors(spec)
    t["cell_to_forget_weights"] = np.zeros(4, np.float32)
    with pytest.raises(WeightsError, match="cell_to_forget_weights: expected absent"):
        LSTMWeights(spec, t)


def test_unknown_role_and_non_numeric():
    t = _tensors()
    t["forget_bias"] = np.ones(4)
    with pytest.raises(WeightsError, match="unknown tensor role"):
        LSTMWeights(FULL, t)
    t = _tensors()
    t["cell_gate_bias"] = np.array(["a", "b", "c", "d"])
    with pytest.raises(WeightsError, match="cell_gate_bias: expected a real numeric"):
        LSTMWeights(FULL, t)


def test_from_tensors_infers_spec():
    spec = LSTMSpec(5, 6, 3, cifg=True, peephole=True, projection=True, cell_clip=2.0)
    w = LSTMWeights.random(spec)
    assert LSTMWeights.from_tensors(w.tensors, cell_clip=2.0).spec == spec


@pytest.mark.parametrize("order", ["tf", "keras", "torch", "onnx"])
def test_gate_stack_unstack_round_trip(order):
    spec = LSTMSpec(3, 4)
    w = LSTMWeights.random(spec, seed=7)
    for axis in (0, 1):
        kernel, recurrent, bias = gates.stack(order, w.tensors, gate_axis=axis)
        back = gates.unstack(order, kernel, recurrent, bias, gate_axis=axis)
        assert LSTMWeights(spec, back).allclose(w)


def test_gate_orders_place_blocks_where_each_framework_expects():
    spec = LSTMSpec(1, 1)
    tensors = {f"{g}_gate_bias": np.array([k], np.float32) for k, g in enumerate(gates.GATES)}
    tensors.update({f"input_to_{g}_weights": np.zeros((1, 1)) for g in gates.GATES})
    tensors.update({f"recurrent_to_{g}_weights": np.zeros((1, 1)) for g in gates.GATES})
    w = LSTMWeights(spec, tensors)  # bias value = canonical index (i=0, f=1, c=2, o=3)
    assert gates.stack("tf", w.tensors)[2].tolist() == [0, 2, 1, 3]  # i, j, f, o
    assert gates.stack("keras", w.tensors)[2].tolist() == [0, 1, 2, 3]  # i, f, c, o
    assert gates.stack("onnx", w.tensors)[2].tolist() == [0, 3, 1, 2]  # i, o, f, c
    peep = {
        "cell_to_input_weights": [0.0],
        "cell_to_forget_weights": [1.0],
        "cell_to_output_weights": [3.0],
    }
    assert gates.stack_peephole("onnx", peep).tolist() == [0, 3, 1]  # i, o, f


def test_digest_changes_with_any_weight():
    w = LSTMWeights.random(FULL, seed=1)
    t = dict(w.tensors)
    arr = np.array(t["projection_bias"])
    arr[0] = np.nextafter(arr[0], np.float32(10))
    t["projection_bias"] = arr
    assert LSTMWeights(FULL, t).digest() != w.digest()
    assert LSTMWeights.random(FULL, seed=1).digest() == w.digest()

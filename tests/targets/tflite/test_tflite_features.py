"""Float fused-LSTM files vs the float64 reference, for every feature combination.

CIFG x peephole x projection (none / weights / weights+bias) x layer norm x clips: 48 cases,
each with random sizes, batch, length, layout (batch-/time-major), fixed or dynamic shapes and
a random initial state, on ai-edge-litert; activations on a covering set; a subset again on
tf.lite.Interpreter.
"""

from __future__ import annotations

import pytest
from _tflite_helpers import COMBOS, compare, feature_case, seeded

TOL = 1e-5


def _case(cifg, peephole, projection, layer_norm, clip, activation="tanh", key=()):
    rng = seeded(cifg, peephole, projection, layer_norm, clip, activation, *key)
    return feature_case(rng, cifg, peephole, projection, layer_norm, clip, activation)


@pytest.mark.parametrize(("cifg", "peephole", "projection", "layer_norm", "clip"), COMBOS)
def test_feature_combination_matches_reference(cifg, peephole, projection, layer_norm, clip):
    model, x, options, states = _case(cifg, peephole, projection, layer_norm, clip)
    assert compare(model, x, options, states) <= TOL


@pytest.mark.parametrize("activation", ["tanh", "relu", "relu6", "relu_n1_to_1"])
@pytest.mark.parametrize(
    ("cifg", "peephole", "projection", "layer_norm", "clip"),
    [
        (False, False, "none", False, 0),
        (True, True, "weights+bias", False, 1),
        (False, True, "weights", True, 1),
    ],
)
def test_activations_match_reference(activation, cifg, peephole, projection, layer_norm, clip):
    model, x, options, states = _case(cifg, peephole, projection, layer_norm, clip, activation)
    assert compare(model, x, options, states) <= TOL


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("combo", COMBOS[::7], ids=lambda c: "-".join(map(str, c)))
def test_feature_subset_on_tf_lite_interpreter(combo):
    pytest.importorskip("tensorflow")
    model, x, options, states = _case(*combo)
    assert compare(model, x, options, states, backend="tf") <= TOL

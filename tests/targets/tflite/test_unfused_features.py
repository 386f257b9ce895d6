"""Float unfused-lowering files vs the float64 reference, for every feature combination.

The same matrix as the fused op (tests/test_tflite_features.py): CIFG x peephole x
projection (none / weights / weights+bias) x layer norm x clips, each case with random sizes,
batch, length, layout, fixed or dynamic shapes, a random initial state and a random schedule
(fully unrolled, or WHILE with a random number of steps per trip and output segments); then
every activation (including sigmoid and linear, which the fused op cannot express) and the
schedules against each other.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from _tflite_helpers import COMBOS, compare, feature_case, random_states, seeded

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.ir.options import CompileOptions, UnfusedOptions
from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

TOL = 1e-5


def unfused_error(model, x, options, states=None, **schedule) -> float:
    """Max abs error of the unfused file (output and any returned states) vs the reference;
    initial ``states`` need the streaming form (state inputs)."""
    unfused = UnfusedOptions(**schedule, state_inputs=states is not None)
    scheduled = replace(options, unfused=unfused)
    return compare(model, x, scheduled, states, build=to_tflite_unfused)


def random_schedule(rng: np.random.Generator, steps: int | None) -> dict:
    if steps is None or rng.integers(3) == 0:
        return {"schedule": "while" if steps is None else "auto"}
    if rng.integers(2):
        return {"schedule": "unrolled"}
    chunk = int(rng.choice([k for k in range(1, steps + 1) if steps % k == 0]))
    segments = [s for s in range(chunk, steps + 1, chunk) if steps % s == 0]
    return {"schedule": "while", "chunk": chunk, "segment": int(rng.choice(segments))}


def _case(cifg, peephole, projection, layer_norm, clip, activation="tanh", key=()):
    rng = seeded("unfused", cifg, peephole, projection, layer_norm, clip, activation, *key)
    case = feature_case(rng, cifg, peephole, projection, layer_norm, clip, activation)
    return (*case, random_schedule(rng, case[2].seq_len))


@pytest.mark.parametrize(("cifg", "peephole", "projection", "layer_norm", "clip"), COMBOS)
def test_feature_combination_matches_reference(cifg, peephole, projection, layer_norm, clip):
    model, x, options, states, schedule = _case(cifg, peephole, projection, layer_norm, clip)
    assert unfused_error(model, x, options, states, **schedule) <= TOL, schedule


@pytest.mark.parametrize(
    "activation", ["tanh", "relu", "relu6", "relu_n1_to_1", "sigmoid", "linear"]
)
@pytest.mark.parametrize(
    "features", [(False, False, "none", False, 0), (True, True, "weights+bias", True, 1)]
)
def test_activations(activation, features):
    model, x, options, states, schedule = _case(*features, activation=activation)
    assert unfused_error(model, x, options, states, **schedule) <= TOL


@pytest.mark.parametrize(
    "schedule",
    [
        {"schedule": "unrolled"},
        {"schedule": "while", "chunk": 1},
        {"schedule": "while", "chunk": 2, "segment": 2},
        {"schedule": "while", "chunk": 3, "segment": 6},
        {"schedule": "while", "chunk": 6},
    ],
)
def test_schedules_agree(schedule):
    rng = seeded("schedules")
    spec = LSTMSpec(n_input=3, n_cell=5, peephole=True, layer_norm=True, cell_clip=0.8)
    model = LSTMModel.of(LSTMWeights.random(spec, seed=3), return_state=True)
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    states = random_states(model, 2, rng)
    options = CompileOptions(batch=2, seq_len=6)
    assert unfused_error(model, x, options, states, **schedule) <= TOL

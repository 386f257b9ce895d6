"""The integer-kernel replay (:mod:`edgelstm.quant.kernel_sim`) against LiteRT running the file.

LiteRT is the oracle: every int8 output code of every LSTM op must be reproduced exactly, for
each kernel feature (asymmetric input, projection, peephole + cell clip, CIFG + layer norm,
proj clip, stacked bidirectional), on random and on saturating inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.measure.explain_file import explain_int8
from edgelstm.quant.fixedpoint import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    sigmoid_table,
    tanh_table,
)
from edgelstm.quant.model_plan import quantize_model

SPECS = {
    "plain": LSTMSpec(n_input=5, n_cell=12),
    "projection": LSTMSpec(n_input=5, n_cell=16, n_output=8, projection=True),
    "peephole_clip": LSTMSpec(n_input=5, n_cell=8, peephole=True, cell_clip=1.5),
    "cifg_layer_norm": LSTMSpec(n_input=5, n_cell=16, cifg=True, layer_norm=True),
    "proj_clip_bias": LSTMSpec(
        n_input=5, n_cell=8, n_output=8, projection=True, projection_bias=True, proj_clip=0.3
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_replay_is_bit_exact_against_litert(name, rng):
    w = LSTMWeights.random(SPECS[name], seed=3, scale=1.5)  # large weights: gates saturate
    cal = rng.uniform(0, 2, (16, 9, 5))  # non-negative: asymmetric input params
    x = rng.uniform(-1, 3, (6, 9, 5))  # wider than calibrated: the input saturates too
    report = explain_int8(w, x, calibration=cal, ablate=False)
    assert report.runtime_mismatch == 0.0, (name, report.runtime_max_code_diff)


def test_replay_of_an_asymmetric_hidden_with_projection(rng):
    """The converter's asymmetric projection hidden: the replay reproduces LiteRT, and shows
    why it saturates (the kernel stores it mirrored, see kernel_sim.HIDDEN_ZP_SIGN)."""
    spec = LSTMSpec(n_input=5, n_cell=16, n_output=8, projection=True)
    w = LSTMWeights.random(spec, seed=1)
    cal = rng.uniform(0, 2, (16, 9, 5))
    plan = quantize_model(w, cal, hidden="asymmetric")
    assert plan.direction().intermediate("hidden").zero_point != 0
    report = explain_int8(w, rng.uniform(0, 2, (6, 9, 5)), plan=plan, ablate=False)
    assert report.runtime_mismatch == 0.0, report.runtime_max_code_diff
    hidden = next(t for t in report.tensors if t.tensor == "hidden")
    assert hidden.max_lsb > 10  # the mirrored range clips the hidden


def test_replay_stacked_bidirectional(rng):
    spec = LSTMSpec(n_input=4, n_cell=6)
    layers = [
        LSTMLayer(LSTMWeights.random(spec, seed=1), LSTMWeights.random(spec, seed=2)),
        LSTMLayer(LSTMWeights.random(LSTMSpec(n_input=12, n_cell=5), seed=3)),
    ]
    model = LSTMModel(layers, return_sequences=True)
    report = explain_int8(model, rng.normal(size=(3, 7, 4)), ablate=False)
    assert report.runtime_mismatch == 0.0


def test_activation_tables_follow_the_functions():
    a = np.arange(-32768, 32768)
    assert np.abs(sigmoid_table() / 32768 - 1 / (1 + np.exp(-a / 4096))).max() < 3e-4
    for bits in range(7):
        exact = np.tanh(a / 2.0 ** (15 - bits))
        assert np.abs(tanh_table(bits) / 32768 - exact).max() < 5e-4, bits


@pytest.mark.parametrize("scale", [0.3, 2.0**-12 * 0.77, 1.7e-5, 3.5])
def test_quantized_multiplier_matches_the_real_scale(scale):
    m, shift = quantize_multiplier(scale)
    assert abs(m * 2.0 ** (shift - 31) - scale) <= scale * 2**-30
    x = np.array([0, 1, -1, 1000, -1000, 123457, -98765])
    got = multiply_by_quantized_multiplier(x, m, shift)
    assert np.all(np.abs(got - x * scale) <= 1.0)

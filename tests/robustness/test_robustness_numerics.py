"""Numerics under stress: long sequences, big batches and saturating inputs, float runtimes.

Documented bounds (with zero initial state, o = sigmoid(...) in (0, 1)):

* |c| <= cell_clip when cell_clip > 0; with CIFG (i = 1 - f, a convex mix) |c| <= max|g|,
  g = act(...), i.e. 1 for tanh / sigmoid / relu_n1_to_1 and 6 for relu6.
* without projection |h| = |o * act(c)| <= max|act(c)|: 1 for tanh / sigmoid /
  relu_n1_to_1, 6 for relu6, cell_clip for relu with a cell clip;
  with projection |h| <= proj_clip when proj_clip > 0.
* float32 layer norm squares its input: the runtimes (TFLite and onnxruntime alike) are
  exact while |pre-activation| < ~1e18 (x**2 < 3.4e38); beyond that their variance overflows
  (output wrong at 1e30, NaN at 3.4e38). With relu (unbounded) a pre-activation that
  overflows float32 (|W x| > 3.4e38) can give inf * 0 = NaN in onnxruntime. With bounded
  activations and no layer norm any finite input works, up to float32 max.
* Accuracy over 10 000 steps stays ~4e-7 for Glorot-scale weights; with much larger weights
  some cells (relu, clipped) are chaotic, float32 and float64 trajectories separate and only
  the bounds above hold.

Full-int8 models with saturating inputs are the int8 tests' subject (tests/test_quantize_*).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.options import CompileOptions

F32_MAX = float(np.finfo(np.float32).max)
REL_TOL = 1e-4
G_MAX = {"tanh": 1.0, "sigmoid": 1.0, "relu_n1_to_1": 1.0, "relu6": 6.0}


def h_bound(spec: LSTMSpec) -> float:
    if spec.projection:
        return spec.proj_clip or np.inf
    if spec.activation in G_MAX:
        return G_MAX[spec.activation]
    return spec.cell_clip or np.inf


def c_bound(spec: LSTMSpec, steps: int) -> float:
    if spec.cell_clip:
        return spec.cell_clip
    g = G_MAX.get(spec.activation, np.inf)
    return g if spec.cifg else g * steps


def _run(model: LSTMModel, x: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
    """(output y, final c of the only direction) from the real interpreter, dynamic shapes."""
    options = CompileOptions(batch=None)
    if target == "onnx":
        from edgelstm.runtime.ort import OrtRunner
        from edgelstm.targets.onnx import to_onnx

        y, _, c = OrtRunner(to_onnx(model, options).SerializeToString()).run(x)
    else:
        from edgelstm.runtime.litert import LiteRTRunner
        from edgelstm.targets.tflite import to_tflite

        y, _, c = LiteRTRunner(to_tflite(model, options)).run(x)
    return y, c


def _check(model: LSTMModel, x: np.ndarray, target: str, steps: int, ref=None) -> float:
    spec = model.layers[0].forward.spec
    y, c = _run(model, x, target)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(c)), target
    assert np.max(np.abs(y)) <= h_bound(spec) * (1 + 1e-6), (target, np.max(np.abs(y)))
    assert np.max(np.abs(c)) <= c_bound(spec, steps) * (1 + 1e-6), (target, np.max(np.abs(c)))
    ref = ref if ref is not None else reference_model(model, x)
    ((_, c_ref),) = ref.states[0]
    err = max(float(np.max(np.abs(y - ref.output))), float(np.max(np.abs(c - c_ref))))
    scale = max(1.0, float(np.max(np.abs(ref.output))), float(np.max(np.abs(c_ref))))
    assert err <= REL_TOL * scale, (target, spec.describe(), err)
    return err


STRESS_SPECS = {
    "peephole-projection-clips": LSTMSpec(
        8, 16, 8, peephole=True, projection=True, cell_clip=3.0, proj_clip=0.5
    ),
    "cifg-layernorm-peephole": LSTMSpec(8, 16, cifg=True, layer_norm=True, peephole=True),
    "relu-cell-clip": LSTMSpec(8, 16, activation="relu", cell_clip=5.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STRESS_SPECS))
def test_ten_thousand_steps_batch_64(name) -> None:
    """T = 10 000, B = 64: finite, within bounds, no drift vs float64 (1e-4; ~4e-7 seen)."""
    spec = STRESS_SPECS[name]
    model = LSTMModel.of(LSTMWeights.random(spec, seed=11), return_state=True)
    x = np.random.default_rng(5).normal(size=(64, 10_000, spec.n_input)).astype(np.float32)
    ref = reference_model(model, x)
    for target in ("onnx", "tflite"):
        _check(model, x, target, steps=10_000, ref=ref)


SATURATION_SPECS = {
    "plain": (LSTMSpec(4, 6), F32_MAX),
    "peephole-projection-clips": (
        LSTMSpec(4, 6, 3, peephole=True, projection=True, cell_clip=2.0, proj_clip=0.5),
        F32_MAX,
    ),
    "cifg-relu6": (LSTMSpec(4, 6, cifg=True, activation="relu6"), F32_MAX),
    "relu-clip": (LSTMSpec(4, 6, activation="relu", cell_clip=3.0), 1e30),
    "relu_n1_to_1": (LSTMSpec(4, 6, activation="relu_n1_to_1"), F32_MAX),
    "layer-norm": (LSTMSpec(4, 6, layer_norm=True), 1e15),
    "cifg-layer-norm-peephole": (LSTMSpec(4, 6, cifg=True, layer_norm=True, peephole=True), 1e15),
}


@pytest.mark.parametrize("target", ["onnx", "tflite"])
@pytest.mark.parametrize("name", sorted(SATURATION_SPECS))
def test_saturating_inputs(name, target) -> None:
    """|x| from 1e3 up to float32 max (1e15 with layer norm, see the module docstring)."""
    spec, limit = SATURATION_SPECS[name]
    model = LSTMModel.of(LSTMWeights.random(spec, seed=2), return_state=True)
    rng = np.random.default_rng(3)
    for scale in (1e3, 1e6, 1e12, 1e15, 1e18, 1e30, F32_MAX):
        if scale > limit:
            break
        x = np.clip(rng.normal(size=(3, 20, spec.n_input)) * scale, -F32_MAX, F32_MAX)
        x[0, ::2] = np.sign(x[0, ::2]) * min(scale, F32_MAX)  # exactly at the scale, too
        _check(model, x.astype(np.float32), target, steps=20)


def test_bounds_hold_in_the_reference_too() -> None:
    """The bounds are properties of the cell, not of a runtime: check the float64 oracle."""
    rng = np.random.default_rng(0)
    for spec, _ in SATURATION_SPECS.values():
        model = LSTMModel.of(LSTMWeights.random(spec, seed=4, scale=3.0))
        x = rng.normal(size=(4, 200, spec.n_input)) * 50
        ref = reference_model(dataclasses.replace(model, return_state=True), x)
        ((_, c),) = ref.states[0]
        assert np.max(np.abs(ref.output)) <= h_bound(spec) + 1e-12
        assert np.max(np.abs(c)) <= c_bound(spec, 200) + 1e-12

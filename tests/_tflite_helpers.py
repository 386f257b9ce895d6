"""Shared helpers of the tests/test_tflite_*.py files."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable

import numpy as np

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.options import CompileOptions
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite import to_tflite


def seeded(*key: object) -> np.random.Generator:
    """A generator seeded from a readable key (stable across runs and processes)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def random_states(model: LSTMModel, batch: int, rng: np.random.Generator, scale: float = 0.5):
    """Random (h, c) initial states in reference_model's [layer][direction] layout."""
    return [
        [
            (
                rng.uniform(-scale, scale, (batch, w.spec.n_output)).astype(np.float32),
                rng.uniform(-scale, scale, (batch, w.spec.n_cell)).astype(np.float32),
            )
            for w in layer.directions
        ]
        for layer in model.layers
    ]


PROJECTIONS = ("none", "weights", "weights+bias")
COMBOS = list(itertools.product((False, True), (False, True), PROJECTIONS, (False, True), (0, 1)))
"""The feature matrix: cifg x peephole x projection x layer_norm x clips."""


def feature_case(rng, cifg, peephole, projection, layer_norm, clip, activation="tanh"):
    """A random one-layer model with these features, its input (random size, batch, length,
    layout), fixed-or-dynamic options and random initial states."""
    n_cell = int(rng.integers(2, 10))
    proj = projection != "none"
    spec = LSTMSpec(
        n_input=int(rng.integers(1, 7)),
        n_cell=n_cell,
        n_output=int(rng.integers(1, 9)) if proj else None,
        cifg=cifg,
        peephole=peephole,
        projection=proj,
        projection_bias=projection == "weights+bias",
        layer_norm=layer_norm,
        cell_clip=float(rng.uniform(0.2, 1.0)) if clip else 0.0,
        proj_clip=float(rng.uniform(0.1, 0.4)) if clip and proj else 0.0,
        activation=activation,
    )
    weights = LSTMWeights.random(spec, seed=int(rng.integers(1 << 30)), scale=0.9)
    batch, steps = int(rng.integers(1, 4)), int(rng.integers(1, 9))
    time_major = bool(rng.integers(2))
    model = LSTMModel.of(weights, time_major=time_major, return_state=True)
    shape = (steps, batch, spec.n_input) if time_major else (batch, steps, spec.n_input)
    x = rng.normal(0, 1.5, shape).astype(np.float32)
    options = CompileOptions(
        batch=batch if rng.integers(2) else None, seq_len=steps if rng.integers(2) else None
    )
    return model, x, options, random_states(model, batch, rng)


def compare(
    model: LSTMModel,
    x: np.ndarray,
    options: CompileOptions | None = None,
    initial_states=None,
    backend: str = "litert",
    build: Callable[[LSTMModel, CompileOptions | None], bytes] = to_tflite,
) -> float:
    """Max abs error of the compiled model (output and any states) vs reference_model.

    ``build`` compiles the model (the fused emitter by default; the unfused lowering too)."""
    runner = LiteRTRunner(build(model, options), backend=backend)
    outs = runner.run(x, initial_states)
    ref = reference_model(model, x, initial_states)
    expected = [ref.output]
    if model.return_state:
        for h, c in ref.states[-1]:
            expected += [h, c]
    assert len(outs) == len(expected), runner.output_names
    errs = []
    for got, want in zip(outs, expected, strict=True):
        assert got.shape == want.shape, (got.shape, want.shape)
        errs.append(float(np.max(np.abs(got - want))) if want.size else 0.0)
    return max(errs)

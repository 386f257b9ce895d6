"""The fast calibration pass (#17.5) against independent oracles: the float64 reference for the
fused float32 gate products and the moments, numpy's own key stream for the streaming sample."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from edgelstm import LSTMSpec, LSTMWeights, reference
from edgelstm.quant import calibrate, rounding
from edgelstm.quant.estimators import UPDATE_CHUNK, Observer

reference_module = importlib.import_module("edgelstm.reference")  # the package shadows it

SPECS = [
    LSTMSpec(3, 8),
    LSTMSpec(3, 16, cifg=True, peephole=True, layer_norm=True, cell_clip=0.5),
    LSTMSpec(3, 8, 4, projection=True, projection_bias=True, proj_clip=0.3),
]


class _Partials:
    """Records each gate's partial sums (the float64 oracle's, per gate products)."""

    def __init__(self) -> None:
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}

    def gate(self, gate, partials, value):
        for p in partials:
            self.lo[gate] = min(self.lo.get(gate, np.inf), float(p.min()))
            self.hi[gate] = max(self.hi.get(gate, -np.inf), float(p.max()))

    def cell(self, c): ...

    def hidden(self, m): ...

    def sequence(self, x, y): ...


@pytest.mark.parametrize("chunk_bytes", [1, 1 << 24])
@pytest.mark.parametrize("spec", SPECS)
def test_float32_pass_is_the_oracle_within_rounding(spec, chunk_bytes, rng, monkeypatch):
    """float32 runs all gates as one product per step, the input product a few steps at a
    time (one step when ``chunk_bytes`` is tiny); float64 (the oracle) per gate, all steps."""
    monkeypatch.setattr(reference_module, "XW_CHUNK_BYTES", chunk_bytes)
    w = LSTMWeights.random(spec, seed=4)
    x = rng.normal(size=(5, 11, 3))
    y64, (_, c64) = reference(w, x)
    y32, (_, c32) = reference(w, x, dtype=np.float32)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, atol=2e-6)
    np.testing.assert_allclose(c32, c64, atol=2e-6)
    oracle = _Partials()
    reference(w, x, observer=oracle)
    if spec.layer_norm:  # the gate accumulators' ranges come from the fused partial sums
        stats = calibrate(w, x.astype(np.float32), batch_size=2).direction()
        for g in oracle.lo:
            obs = stats.observers[f"gate.{g}"]
            assert obs.lo == pytest.approx(oracle.lo[g], abs=1e-5)
            assert obs.hi == pytest.approx(oracle.hi[g], abs=1e-5)


def test_observer_sample_is_the_bottom_k_of_the_key_stream(rng):
    """Merging candidates lazily keeps exactly the values with the ``cap`` smallest keys of
    the seeded stream, ordered by key, whatever the chunking and when it is read."""
    obs = Observer(cap=500, seed=7)
    sizes = [3, 400, 200, 5000, 1, UPDATE_CHUNK + 10, 9000]
    data = rng.standard_t(3, size=sum(sizes)).astype(np.float32)
    seen = 0
    for n in sizes:
        obs.update(data[seen : seen + n])
        seen += n
        keys = np.random.default_rng(7).random(seen)
        expected = data[:seen][np.argsort(keys)[: obs.cap]].astype(np.float64)
        np.testing.assert_array_equal(obs.sample, expected)
    assert (obs.lo, obs.hi, obs.count) == (data.min(), data.max(), data.size)


def test_moments_are_the_gate_inputs_second_moments(rng):
    """``E[u u^T]`` for ``u = [x_t; h_{t-1}; 1]`` against the float64 reference's own h."""
    spec = LSTMSpec(3, 8, 4, projection=True)
    w = LSTMWeights.random(spec, seed=2)
    x = rng.normal(size=(7, 6, 3)).astype(np.float32)
    moments = calibrate(w, x, batch_size=3).direction().moments
    assert moments is not None
    y = reference(w, x)[0]
    prev = np.concatenate([np.zeros_like(y[:, :1]), y[:, :-1]], axis=1)
    u = np.concatenate([x, prev, np.ones((7, 6, 1))], axis=-1).reshape(-1, 3 + 4 + 1)
    np.testing.assert_allclose(moments.gate_hessian(), u.T @ u / len(u), atol=2e-6)


def test_rounding_reuses_a_factorisation_only_for_the_same_hessian(rng):
    """The gates of a direction share one H: its factorisation is reused, never another's."""
    w = rng.normal(size=(6, 5))
    scales = np.full(5, 0.5)  # coarse: the compensation moves codes
    u1 = rng.normal(size=(50, 5))
    u2 = u1 @ rng.normal(size=(5, 5))  # correlated columns: a different compensation
    hessians = [u1.T @ u1 / 50, u2.T @ u2 / 50]

    def fresh(h, exact):
        rounding._LAST_FACTOR.clear()
        return rounding.compensated_rounding(w, scales, h, exact_columns=exact)

    expected = {(k, e): fresh(h, e) for k, h in enumerate(hessians) for e in (0, 1)}
    assert not np.array_equal(expected[0, 0], expected[1, 0])
    for k, e in [(0, 0), (0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]:
        got = rounding.compensated_rounding(w, scales, hessians[k].copy(), exact_columns=e)
        np.testing.assert_array_equal(got, expected[k, e])

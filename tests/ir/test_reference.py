"""The float64 reference against an independent scalar oracle and its own invariants.

TF's LSTMCell is the oracle for the TF-expressible features (tests/test_reference_vs_tf.py);
CIFG and layer norm exist only in TFLite, so here a deliberately naive per-element loop,
written from the kernel's definition with ``math``, checks every feature combination.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edgelstm import (
    DenseHead,
    InputDataError,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    SpecError,
    reference,
    reference_model,
)

ACTS = {
    "tanh": math.tanh,
    "relu": lambda v: max(v, 0.0),
    "relu6": lambda v: min(max(v, 0.0), 6.0),
    "relu_n1_to_1": lambda v: min(max(v, -1.0), 1.0),
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "linear": lambda v: v,
}


def _scalar_oracle(w: LSTMWeights, x, h0, c0):
    """One batch row, plain Python floats, one element at a time."""
    s = w.spec
    t = {k: v.astype(float).tolist() for k, v in w.tensors.items()}
    sig = ACTS["sigmoid"]
    act = ACTS[s.activation]
    h, c = list(h0), list(c0)
    outs = []
    for xt in x:

        def raw(g, cell, xt=xt, h=h):
            z = []
            for n in range(s.n_cell):
                v = sum(t[f"input_to_{g}_weights"][n][k] * xt[k] for k in range(s.n_input))
                v += sum(t[f"recurrent_to_{g}_weights"][n][k] * h[k] for k in range(s.n_output))
                if s.peephole and g != "cell":
                    v += t[f"cell_to_{g}_weights"][n] * cell[n]
                z.append(v)
            if s.layer_norm:
                mu = sum(z) / len(z)
                var = sum((v - mu) ** 2 for v in z) / len(z)
                z = [
                    (v - mu) / math.sqrt(var + 1e-8) * t[f"{g}_layer_norm_coefficients"][n]
                    for n, v in enumerate(z)
                ]
            return [v + t[f"{g}_gate_bias"][n] for n, v in enumerate(z)]

        f = [sig(v) for v in raw("forget", c)]
        i = [1 - v for v in f] if s.cifg else [sig(v) for v in raw("input", c)]
        g = [act(v) for v in raw("cell", c)]
        c = [f[n] * c[n] + i[n] * g[n] for n in range(s.n_cell)]
        if s.cell_clip:
            c = [min(max(v, -s.cell_clip), s.cell_clip) for v in c]
        o = [sig(v) for v in raw("output", c)]
        m = [o[n] * act(c[n]) for n in range(s.n_cell)]
        if s.projection:
            m = [
                sum(t["projection_weights"][p][n] * m[n] for n in range(s.n_cell))
                + (t["projection_bias"][p] if s.projection_bias else 0.0)
                for p in range(s.n_output)
            ]
            if s.proj_clip:
                m = [min(max(v, -s.proj_clip), s.proj_clip) for v in m]
        h = m
        outs.append(h)
    return np.array(outs), np.array(h), np.array(c)


FEATURES = [  # cifg, peephole, projection, projection_bias, layer_norm
    f for f in itertools.product([False, True], repeat=5) if f[2] or not f[3]
]


@pytest.mark.parametrize(("cifg", "peephole", "projection", "proj_bias", "layer_norm"), FEATURES)
def test_every_feature_combination_matches_scalar_oracle(
    cifg, peephole, projection, proj_bias, layer_norm
):
    rng = np.random.default_rng(hash((cifg, peephole, projection, proj_bias, layer_norm)) % 2**32)
    n_in, n_cell = int(rng.integers(1, 5)), int(rng.integers(2, 6))
    n_out = int(rng.integers(1, 5)) if projection else n_cell
    spec = LSTMSpec(
        n_in,
        n_cell,
        n_out,
        cifg=cifg,
        peephole=peephole,
        projection=projection,
        projection_bias=proj_bias,
        layer_norm=layer_norm,
        cell_clip=0.4,
        proj_clip=0.3 if projection else 0.0,
        activation=str(rng.choice(["tanh", "relu", "relu6", "relu_n1_to_1", "sigmoid", "linear"])),
    )
    w = LSTMWeights.random(spec, seed=int(rng.integers(1 << 30)), scale=1.0)
    batch, steps = 2, 5
    x = rng.normal(size=(batch, steps, n_in)) * 2
    h0, c0 = rng.normal(size=(batch, n_out)), rng.normal(size=(batch, n_cell))
    y, (h, c) = reference(w, x, (h0, c0))
    clipped = False
    for b in range(batch):
        ys, hs, cs = _scalar_oracle(w, x[b], h0[b], c0[b])
        np.testing.assert_allclose(y[b], ys, rtol=0, atol=1e-12)
        np.testing.assert_allclose(h[b], hs, rtol=0, atol=1e-12)
        np.testing.assert_allclose(c[b], cs, rtol=0, atol=1e-12)
        clipped |= bool(np.any(np.isclose(np.abs(cs), 0.4)))
    assert y.shape == (batch, steps, n_out)
    assert clipped, "cell_clip never engaged: the test would not see a wrong clip"


def test_chunked_equals_whole_and_time_major():
    spec = LSTMSpec(3, 6, 4, peephole=True, projection=True, layer_norm=True, cell_clip=1.0)
    w = LSTMWeights.random(spec, seed=5)
    x = np.random.default_rng(0).normal(size=(3, 11, 3))
    y, state = reference(w, x)
    y1, s1 = reference(w, x[:, :4])
    y2, s2 = reference(w, x[:, 4:], s1)
    np.testing.assert_array_equal(np.concatenate([y1, y2], axis=1), y)
    np.testing.assert_array_equal(s2[1], state[1])
    yt, _ = reference(w, x.transpose(1, 0, 2), time_major=True)
    np.testing.assert_array_equal(yt.transpose(1, 0, 2), y)


def test_zero_peephole_equals_no_peephole_and_identity_projection():
    base = LSTMWeights.random(LSTMSpec(3, 4), seed=9)
    x = np.random.default_rng(1).normal(size=(2, 6, 3))
    y0, _ = reference(base, x)
    t = dict(base.tensors) | {
        f"cell_to_{g}_weights": np.zeros(4) for g in ("input", "forget", "output")
    }
    np.testing.assert_array_equal(
        reference(LSTMWeights(LSTMSpec(3, 4, peephole=True), t), x)[0], y0
    )
    t = dict(base.tensors) | {"projection_weights": np.eye(4)}
    np.testing.assert_allclose(
        reference(LSTMWeights(LSTMSpec(3, 4, 4, projection=True), t), x)[0], y0, atol=1e-15
    )


def test_model_bidirectional_backwards_and_head():
    fw = LSTMWeights.random(LSTMSpec(3, 4), seed=1)
    bw = LSTMWeights.random(LSTMSpec(3, 5), seed=2)
    x = np.random.default_rng(2).normal(size=(2, 7, 3))
    out = reference_model(LSTMModel((LSTMLayer(fw, bw),)), x).output
    np.testing.assert_array_equal(out[..., :4], reference(fw, x)[0])
    np.testing.assert_array_equal(out[..., 4:], reference(bw, x[:, ::-1])[0][:, ::-1])
    gb = reference_model(LSTMModel((LSTMLayer(fw, go_backwards=True),)), x).output
    np.testing.assert_array_equal(gb, reference(fw, x[:, ::-1])[0])
    head = DenseHead(np.random.default_rng(3).normal(size=(3, 9)), np.zeros(3), "softmax")
    last = reference_model(
        LSTMModel((LSTMLayer(fw, bw),), head=head, return_sequences=False), x
    ).output
    assert last.shape == (2, 3)
    np.testing.assert_allclose(last.sum(axis=-1), 1.0)
    feats = np.concatenate([out[:, -1, :4], out[:, 0, 4:]], axis=-1) @ head.kernel.T
    np.testing.assert_allclose(last, np.exp(feats) / np.exp(feats).sum(-1, keepdims=True))


@pytest.mark.parametrize(
    ("x", "state", "match"),
    [
        (np.zeros((2, 3, 5)), None, r"expected shape \[B, T, I\] with I = 3"),
        (np.zeros((2, 3, 3, 1)), None, "expected shape"),
        (np.full((1, 2, 3), np.nan), None, "finite"),
        (
            np.zeros((2, 3, 3)),
            (np.zeros((2, 4)), np.zeros((1, 4))),
            r"initial state c: expected shape \[2, 4\]",
        ),
    ],
)
def test_bad_inputs(x, state, match):
    w = LSTMWeights.random(LSTMSpec(3, 4))
    with pytest.raises(InputDataError, match=match):
        reference(w, x, state)


def test_reverse_layer_realigns_and_differs_from_go_backwards():
    w = LSTMWeights.random(LSTMSpec(3, 4, peephole=True), seed=4)
    x = np.random.default_rng(5).normal(size=(2, 6, 3))
    processed = reference(w, x[:, ::-1])[0]
    rev = reference_model(LSTMModel((LSTMLayer(w, reverse=True),)), x).output
    back = reference_model(LSTMModel((LSTMLayer(w, go_backwards=True),)), x).output
    np.testing.assert_array_equal(rev, processed[:, ::-1])
    np.testing.assert_array_equal(back, processed)
    last = reference_model(LSTMModel((LSTMLayer(w, reverse=True),), return_sequences=False), x)
    np.testing.assert_array_equal(last.output, processed[:, -1])  # final h = input step 0
    with pytest.raises(SpecError, match="exclude each other"):
        LSTMLayer(w, go_backwards=True, reverse=True)
    with pytest.raises(SpecError, match="bidirectional"):
        LSTMLayer(w, w, reverse=True)

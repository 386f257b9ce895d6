"""Acceptance: the float64 reference reproduces TF's own v1 ``LSTMCell`` within 1e-5.

Every combination of peepholes x projection x cell_clip x proj_clip x forget_bias x activation
is run eagerly step by step through ``cell(x_t, state)`` from a random initial state, and
compared with ``reference`` on the imported weights. Clip values are small enough to bite:
each case checks that removing a clip changes the result, so the clip test can fail.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgelstm.importers import from_tf_cell
from edgelstm.reference import reference

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
tf = pytest.importorskip("tensorflow")

TOL = 1e-5
N_INPUT, N_CELL, N_PROJ = 3, 5, 4
CELL_CLIP, PROJ_CLIP = 0.4, 0.15


def _cases() -> list[tuple]:
    cases = []
    for peep, proj, cclip, fb, act in itertools.product(
        (False, True), (None, N_PROJ), (None, CELL_CLIP), (1.0, -0.7), ("tanh", "relu")
    ):
        for pclip in (None, PROJ_CLIP) if proj else (None,):
            cases.append((peep, proj, cclip, pclip, fb, act))
    return cases


CASES = _cases()


def _run_tf_cell(cell, x: np.ndarray, h0: np.ndarray, c0: np.ndarray):
    """TF's own forward pass: one eager ``cell`` call per step (state is (c, m))."""
    state = tf.compat.v1.nn.rnn_cell.LSTMStateTuple(tf.constant(c0), tf.constant(h0))
    outs = []
    for t in range(x.shape[1]):
        y, state = cell(tf.constant(x[:, t]), state)
        outs.append(y.numpy())
    return np.stack(outs, axis=1), state.h.numpy(), state.c.numpy()


def make_cell(rng: np.random.Generator, peep, proj, cclip, pclip, fb, act, n_input=N_INPUT):
    """A built eager LSTMCell with random weights (distinct per peephole gate, random bias)."""
    activation = {"tanh": tf.math.tanh, "relu": tf.nn.relu}[act]
    cell = tf.compat.v1.nn.rnn_cell.LSTMCell(
        N_CELL,
        use_peepholes=peep,
        cell_clip=cclip,
        num_proj=proj,
        proj_clip=pclip,
        forget_bias=fb,
        activation=activation,
    )
    cell.build((None, n_input))
    for var in cell.weights:
        var.assign(rng.uniform(-0.9, 0.9, var.shape).astype(np.float32))
    return cell


@pytest.mark.parametrize(
    ("peep", "proj", "cclip", "pclip", "fb", "act"),
    CASES,
    ids=[
        f"peep{int(p)}-proj{q or 0}-cc{c or 0}-pc{d or 0}-fb{f}-{a}" for p, q, c, d, f, a in CASES
    ],
)
def test_reference_matches_tf_lstm_cell(peep, proj, cclip, pclip, fb, act):
    seed = CASES.index((peep, proj, cclip, pclip, fb, act))
    rng = np.random.default_rng(1000 + seed)
    cell = make_cell(rng, peep, proj, cclip, pclip, fb, act)
    batch, steps = int(rng.integers(1, 5)), int(rng.integers(2, 7))
    n_out = proj or N_CELL
    x = rng.normal(size=(batch, steps, N_INPUT)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (batch, n_out)).astype(np.float32)
    c0 = rng.uniform(-1.5, 1.5, (batch, N_CELL)).astype(np.float32)

    y_tf, h_tf, c_tf = _run_tf_cell(cell, x, h0, c0)
    weights = from_tf_cell(cell).layers[0].forward
    y, (h, c) = reference(weights, x, (h0, c0))

    assert y.shape == y_tf.shape == (batch, steps, n_out)
    err = max(np.abs(y - y_tf).max(), np.abs(h - h_tf).max(), np.abs(c - c_tf).max())
    assert err <= TOL, f"max abs error {err:.3g}"
    # The clips must actually have clipped, or this test could not detect a wrong clip.
    for field, value in (("cell_clip", cclip), ("proj_clip", pclip)):
        if value is not None:
            y_free, _ = reference(weights.replace(**{field: 0.0}), x, (h0, c0))
            assert np.abs(y_free - y).max() > 1e-3, f"{field}={value} never clipped"


def test_case_matrix_is_complete():
    """2 peephole x (1 + 2 proj_clip) x 2 cell_clip x 2 forget_bias x 2 activation = 48."""
    assert len(CASES) == len(set(CASES)) == 48

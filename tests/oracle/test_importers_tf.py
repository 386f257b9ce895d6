"""TF v1 LSTMCell importer: eager cells, graph cells with a session, TF1 checkpoints, dicts.

Each import is checked against TF's own forward pass (<= 1e-5 max abs), and each refusal for
the error type and the field it names.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgelstm.errors import ModelFileError, UnsupportedError, WeightsError
from edgelstm.importers import from_tf_cell, from_tf_checkpoint
from edgelstm.reference import reference

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
tf = pytest.importorskip("tensorflow")

TOL = 1e-5
LSTMCell = tf.compat.v1.nn.rnn_cell.LSTMCell
StateTuple = tf.compat.v1.nn.rnn_cell.LSTMStateTuple

PLAIN = {}
FULL = {
    "use_peepholes": True,
    "num_proj": 3,
    "cell_clip": 0.5,
    "proj_clip": 0.3,
    "forget_bias": 0.25,
    "activation": "relu",
}


def _randomize(variables, rng, assign) -> None:
    for var in variables:
        assign(var, rng.uniform(-0.8, 0.8, var.shape).astype(np.float32))


def _eager_cell(rng, n_input=3, units=4, cls=LSTMCell, **options):
    cell = cls(units, **options)
    cell.build((None, n_input))
    _randomize(cell.weights, rng, lambda v, a: v.assign(a))
    return cell


def _eager_run(cell, x, h0, c0):
    state = StateTuple(tf.constant(c0), tf.constant(h0))
    outs = []
    for t in range(x.shape[1]):
        y, state = cell(tf.constant(x[:, t]), state)
        outs.append(y.numpy())
    return np.stack(outs, axis=1), state.h.numpy(), state.c.numpy()


def _inputs(rng, n_input, n_out, n_cell):
    batch, steps = int(rng.integers(1, 4)), int(rng.integers(1, 6))
    x = rng.normal(size=(batch, steps, n_input)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (batch, n_out)).astype(np.float32)
    c0 = rng.uniform(-1, 1, (batch, n_cell)).astype(np.float32)
    return x, h0, c0


def _max_err(weights, x, h0, c0, y_tf, h_tf, c_tf) -> float:
    y, (h, c) = reference(weights, x, (h0, c0))
    return float(max(np.abs(y - y_tf).max(), np.abs(h - h_tf).max(), np.abs(c - c_tf).max()))


@pytest.mark.parametrize(
    "activation", ["tanh", "relu", "relu6", "sigmoid", "linear", tf.nn.relu6, tf.identity]
)
def test_eager_cell_activations(rng, activation):
    cell = _eager_cell(rng, activation=activation, forget_bias=0.5)
    model = from_tf_cell(cell)
    x, h0, c0 = _inputs(rng, 3, 4, 4)
    assert _max_err(model.layers[0].forward, x, h0, c0, *_eager_run(cell, x, h0, c0)) <= TOL


def test_eager_cell_spec_and_provenance(rng):
    cell = _eager_cell(rng, **FULL)
    model = from_tf_cell(cell)
    spec = model.layers[0].forward.spec
    assert (spec.n_input, spec.n_cell, spec.n_output) == (3, 4, 3)
    assert spec.peephole and spec.projection and not spec.projection_bias and not spec.cifg
    assert (spec.cell_clip, spec.proj_clip, spec.activation) == (0.5, 0.3, "relu")
    assert dict(model.provenance) == {"source": "tf.LSTMCell", "forget_bias_folded": 0.25}
    bias = cell._bias.numpy()
    forward = model.layers[0].forward
    np.testing.assert_allclose(forward["forget_gate_bias"], bias[8:12] + 0.25, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(forward["cell_to_input_weights"], cell._w_i_diag.numpy())
    np.testing.assert_array_equal(forward["projection_weights"], cell._proj_kernel.numpy().T)


def test_basic_lstm_cell(rng):
    cell = _eager_cell(rng, cls=tf.compat.v1.nn.rnn_cell.BasicLSTMCell, forget_bias=2.0)
    model = from_tf_cell(cell)
    assert model.provenance["source"] == "tf.BasicLSTMCell"
    x, h0, c0 = _inputs(rng, 3, 4, 4)
    assert _max_err(model.layers[0].forward, x, h0, c0, *_eager_run(cell, x, h0, c0)) <= TOL


@pytest.mark.parametrize("options", [PLAIN, FULL], ids=["plain", "full"])
def test_graph_cell_and_checkpoint(rng, tmp_path, options):
    """dynamic_rnn in a v1 graph; import from the session and from the saved checkpoint."""
    n_input, units = 3, 4
    n_out = options.get("num_proj") or units
    x, h0, c0 = _inputs(rng, n_input, n_out, units)
    with tf.Graph().as_default():
        cell = LSTMCell(units, **options)
        xs = tf.compat.v1.placeholder(tf.float32, (None, None, n_input))
        init = StateTuple(tf.constant(c0), tf.constant(h0))
        ys, state = tf.compat.v1.nn.dynamic_rnn(cell, xs, initial_state=init)
        sess = tf.compat.v1.Session()  # not entered: it must not be the default session
        sess.run(tf.compat.v1.global_variables_initializer())
        _randomize(tf.compat.v1.global_variables(), rng, lambda v, a: v.load(a, sess))
        y_tf, (c_tf, h_tf) = sess.run([ys, state], {xs: x})
        from_session = from_tf_cell(cell, session=sess)
        with pytest.raises(UnsupportedError, match="session"):
            from_tf_cell(cell)
        with sess.as_default():
            from_default = from_tf_cell(cell)
        prefix = str(tmp_path / "model.ckpt")
        tf.compat.v1.train.Saver().save(sess, prefix)
    with pytest.raises(UnsupportedError, match="session"):
        from_tf_cell(cell)  # eager again, but the variables are the graph's
    assert (
        from_tf_cell(cell, session=sess).layers[0].forward.allclose(from_session.layers[0].forward)
    )
    sess.close()
    from_ckpt = from_tf_checkpoint(prefix, **options)
    from_dir = from_tf_checkpoint(tmp_path, prefix="rnn/lstm_cell/", **options)
    weights = from_session.layers[0].forward
    assert _max_err(weights, x, h0, c0, y_tf, h_tf, c_tf) <= TOL
    for other in (from_default, from_ckpt, from_dir):
        assert other.layers[0].forward.allclose(weights)
    assert from_ckpt.provenance["prefix"] == "rnn/lstm_cell/"
    assert from_ckpt.provenance["forget_bias_folded"] == options.get("forget_bias", 1.0)


def _cell_dict(cell) -> dict[str, np.ndarray]:
    """The cell's variables under their checkpoint names (without the scope)."""
    attrs = {"kernel": "_kernel", "bias": "_bias", "projection/kernel": "_proj_kernel"}
    attrs.update({k: f"_{k}" for k in ("w_i_diag", "w_f_diag", "w_o_diag")})
    return {k: getattr(cell, a).numpy() for k, a in attrs.items() if hasattr(cell, a)}


def test_dict_matches_cell(rng):
    cell = _eager_cell(rng, **FULL)
    arrays = _cell_dict(cell)
    assert set(arrays) == {
        "kernel",
        "bias",
        "w_i_diag",
        "w_f_diag",
        "w_o_diag",
        "projection/kernel",
    }
    options = dict(FULL, activation=tf.nn.relu)
    imported = from_tf_checkpoint(arrays, **options)
    assert imported.layers[0].forward.allclose(from_tf_cell(cell).layers[0].forward)
    scoped = from_tf_checkpoint({f"enc/lstm/{k}": v for k, v in arrays.items()}, **options)
    assert scoped.provenance["prefix"] == "enc/lstm/"
    assert scoped.layers[0].forward.allclose(imported.layers[0].forward)


def test_checkpoint_missing_variables(rng):
    arrays = _cell_dict(_eager_cell(rng, use_peepholes=True))
    del arrays["w_f_diag"]
    with pytest.raises(WeightsError, match="w_f_diag"):
        from_tf_checkpoint(arrays, use_peepholes=True)
    with pytest.raises(WeightsError, match=r"projection/kernel"):
        from_tf_checkpoint(arrays, num_proj=2)


def test_checkpoint_bad_shapes_and_prefix(rng):
    arrays = _cell_dict(_eager_cell(rng))
    with pytest.raises(WeightsError, match=r"bias: expected shape \[16\], found \[15\]"):
        from_tf_checkpoint({**arrays, "bias": arrays["bias"][:15]}, prefix="")
    with pytest.raises(WeightsError, match="expected exactly one LSTM scope"):
        from_tf_checkpoint({**arrays, **{f"b/{k}": v for k, v in arrays.items()}})
    with pytest.raises(WeightsError, match="none"):
        from_tf_checkpoint({"w": arrays["kernel"]})
    with pytest.raises(WeightsError, match=r"kernel: expected more than n_output = 9 rows"):
        from_tf_checkpoint({**arrays, "projection/kernel": np.zeros((4, 9))}, num_proj=9)


def test_checkpoint_missing_or_corrupted(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read TF checkpoint"):
        from_tf_checkpoint(tmp_path / "nothing.ckpt")
    (tmp_path / "bad.ckpt.index").write_bytes(b"not a checkpoint" * 8)
    (tmp_path / "bad.ckpt.data-00000-of-00001").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match=r"bad\.ckpt"):
        from_tf_checkpoint(tmp_path / "bad.ckpt")


def _my_tanh(t):
    """Computes tanh, but is not a known framework function: refused by identity."""
    return tf.math.tanh(t)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"activation": "softsign"}, "activation .*softsign"),
        ({"activation": _my_tanh}, "activation .*_my_tanh"),
        ({"cell_clip": 0.0}, r"cell_clip=0\.0"),
        ({"num_proj": 2, "proj_clip": -1.0}, r"proj_clip=-1\.0"),
    ],
    ids=["softsign", "custom", "cell_clip0", "proj_clip_negative"],
)
def test_cell_refusals(rng, options, match):
    cell = _eager_cell(rng, **options)
    with pytest.raises(UnsupportedError, match=match) as info:
        from_tf_cell(cell)
    assert info.value.target == "tf.LSTMCell"


def test_not_a_cell_and_unbuilt():
    import tf_keras

    with pytest.raises(UnsupportedError, match="from_keras"):
        from_tf_cell(tf_keras.layers.LSTMCell(3))
    with pytest.raises(WeightsError, match="not built"):
        from_tf_cell(LSTMCell(3))


def test_proj_clip_without_projection_is_ignored_like_tf(rng):
    cell = _eager_cell(rng, proj_clip=0.1)
    assert from_tf_cell(cell).layers[0].forward.spec.proj_clip == 0.0


def test_import_edgelstm_does_not_import_frameworks():
    code = (
        "import sys, edgelstm, edgelstm.importers; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

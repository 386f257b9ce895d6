"""Keras importer (Keras 3 and tf-keras): layers, Sequential/functional models, files.

Each import is run through ``reference_model`` and compared with the framework's own forward
pass (<= 1e-5 max abs) on random inputs and initial states; each refusal is checked for its
error type and the field it names.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm.errors import ModelFileError, UnsupportedError, WeightsError
from edgelstm.importers import from_keras
from edgelstm.reference import reference_model

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
tf = pytest.importorskip("tensorflow")
FLAVORS = ["keras", "tf_keras"]
TOL = 1e-5


@pytest.fixture(params=FLAVORS)
def K(request):
    """The Keras module under test (Keras 3 or tf-keras)."""
    return pytest.importorskip(request.param)


def _randomize(model, rng) -> None:
    """Random weights everywhere (biases too), so every gate and bias mapping is exercised."""
    model.set_weights([rng.uniform(-0.7, 0.7, np.shape(w)) for w in model.get_weights()])


def _x(rng, n_input=3, time_major=False):
    batch, steps = int(rng.integers(1, 4)), int(rng.integers(1, 6))
    x = rng.normal(size=(batch, steps, n_input)).astype(np.float32)
    return x.transpose(1, 0, 2) if time_major else x


def _state(rng, batch, units):
    return [rng.uniform(-1, 1, (batch, units)).astype(np.float32) for _ in range(2)]


def _tensors(arrays):
    """tf_keras wants tensors (not arrays) as initial states."""
    return [tf.constant(a) for a in arrays]


def _as_list(out):
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else [np.asarray(out)]


def _check(model, framework_out, x, initial_states=None) -> float:
    """Max abs error of reference_model vs the framework output (and final states)."""
    ref = reference_model(model, x, initial_states)
    outs = _as_list(framework_out)
    expected = [ref.output]
    if model.return_state:
        expected += [s for direction in ref.states[-1] for s in direction]
    assert len(outs) == len(expected)
    errors = []
    for got, want in zip(outs, expected, strict=True):
        assert got.shape == want.shape
        errors.append(np.abs(got - want).max())
    err = float(max(errors))
    assert err <= TOL, f"max abs error {err:.3g}"
    return err


LAYER_OPTIONS = [
    {},
    {"return_sequences": True},
    {"return_sequences": True, "go_backwards": True},
    {"go_backwards": True, "return_state": True},
    {"return_sequences": True, "return_state": True, "use_bias": False},
    {"return_sequences": True, "activation": "relu", "dropout": 0.3, "recurrent_dropout": 0.2},
    {"activation": "linear", "unit_forget_bias": False},
    {"return_sequences": True, "activation": "relu6", "unroll": True},
    {"return_sequences": True, "activation": "sigmoid"},
]


@pytest.mark.parametrize("options", LAYER_OPTIONS, ids=lambda o: "-".join(o) or "default")
def test_single_layer_with_initial_state(K, rng, options):
    layer = K.layers.LSTM(4, **options)
    x = _x(rng)
    state = _state(rng, x.shape[0], 4)
    layer(x, initial_state=_tensors(state))  # build
    _randomize(layer, rng)
    model = from_keras(layer)
    assert model.provenance["source"] == K.__name__
    assert model.layers[0].go_backwards == options.get("go_backwards", False)
    _check(model, layer(x, initial_state=_tensors(state)), x, [[tuple(state)]])


def test_keras3_hard_tanh_is_relu_n1_to_1(rng):
    keras = pytest.importorskip("keras")
    layer = keras.layers.LSTM(4, activation="hard_tanh", return_sequences=True)
    x = _x(rng)
    layer(x)
    _randomize(layer, rng)
    model = from_keras(layer)
    assert model.layers[0].forward.spec.activation == "relu_n1_to_1"
    _check(model, layer(x * 4), x * 4)


def test_rnn_of_lstm_cell(K, rng):
    layer = K.layers.RNN(K.layers.LSTMCell(5, activation="relu"), return_sequences=True)
    x = _x(rng)
    layer(x)
    _randomize(layer, rng)
    _check(from_keras(layer), layer(x), x)


def test_sequential_stack_with_softmax_head(K, rng):
    model = K.Sequential(
        [
            K.Input((None, 3)),
            K.layers.LSTM(5, return_sequences=True),
            K.layers.Dropout(0.5),
            K.layers.LSTM(4, go_backwards=True),
            K.layers.Dense(3, activation="softmax"),
        ]
    )
    _randomize(model, rng)
    imported = from_keras(model)
    assert imported.head.activation == "softmax" and len(imported.layers) == 2
    assert not imported.return_sequences
    x = _x(rng)
    _check(imported, model(x), x)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_functional_bidirectional_stack(K, rng, return_sequences):
    inp = K.Input((None, 3))
    y = K.layers.Bidirectional(K.layers.LSTM(4, return_sequences=True))(inp)
    y = K.layers.Bidirectional(K.layers.LSTM(3, return_sequences=return_sequences))(y)
    y = K.layers.Dense(2, use_bias=False)(y)
    model = K.Model(inp, y)
    _randomize(model, rng)
    imported = from_keras(model)
    assert [layer.bidirectional for layer in imported.layers] == [True, True]
    assert imported.head.activation == "linear" and not imported.head.bias.any()
    x = _x(rng)
    _check(imported, model(x), x)


def test_bidirectional_layer_with_states(K, rng):
    layer = K.layers.Bidirectional(K.layers.LSTM(4, return_state=True), merge_mode="concat")
    x = _x(rng)
    states = _state(rng, x.shape[0], 4) + _state(rng, x.shape[0], 4)
    layer(x, initial_state=_tensors(states))
    _randomize(layer, rng)
    model = from_keras(layer)
    assert model.return_state and not model.return_sequences
    _check(
        model, layer(x, initial_state=_tensors(states)), x, [[tuple(states[:2]), tuple(states[2:])]]
    )


def test_functional_return_state(K, rng):
    inp = K.Input((None, 3))
    y = K.layers.LSTM(4, return_sequences=True)(inp)
    outs = K.layers.LSTM(3, return_state=True, return_sequences=True)(y)
    x = _x(rng)
    with_states = K.Model(inp, outs)
    without = K.Model(inp, outs[0])
    _randomize(with_states, rng)
    assert from_keras(with_states).return_state
    assert not from_keras(without).return_state
    _check(from_keras(with_states), with_states(x), x)
    _check(from_keras(without), without(x), x)


def test_tf_keras_time_major(rng):
    tf_keras = pytest.importorskip("tf_keras")
    layer = tf_keras.layers.LSTM(4, time_major=True, return_sequences=True)
    x = _x(rng, time_major=True)
    layer(x)
    _randomize(layer, rng)
    model = from_keras(layer)
    assert model.time_major
    _check(model, layer(x), x)


def test_stateful_flag(K, rng):
    model = K.Sequential([K.Input((None, 3), batch_size=2), K.layers.LSTM(4, stateful=True)])
    _randomize(model, rng)
    imported = from_keras(model)
    assert imported.stateful
    x = rng.normal(size=(2, 3, 3)).astype(np.float32)
    _check(imported, model(x), x)


def test_keras3_file(rng, tmp_path):
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [keras.Input((None, 3)), keras.layers.LSTM(4), keras.layers.Dense(2, "softmax")]
    )
    _randomize(model, rng)
    path = tmp_path / "m.keras"
    model.save(path)
    imported = from_keras(str(path))
    assert imported.provenance["path"] == str(path)
    x = _x(rng)
    _check(imported, model(x), x)


def test_tf_keras_h5_file(rng, tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential(
        [tf_keras.Input((None, 3)), tf_keras.layers.LSTM(4, return_sequences=True)]
    )
    _randomize(model, rng)
    path = tmp_path / "m.h5"
    model.save(path)
    imported = from_keras(path)
    assert imported.provenance["source"] == "tf_keras"
    x = _x(rng)
    _check(imported, model(x), x)


def test_bad_files(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        from_keras(tmp_path / "missing.keras")
    for name in ("bad.keras", "bad.h5"):
        (tmp_path / name).write_bytes(b"\x00garbage" * 64)
        with pytest.raises(ModelFileError, match="cannot load as a Keras model"):
            from_keras(tmp_path / name)
    (tmp_path / "m.pb").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"expected a \.keras or \.h5 file"):
        from_keras(tmp_path / "m.pb")


def test_h5_lambda_is_not_executed(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential(
        [tf_keras.Input((None, 3)), tf_keras.layers.Lambda(lambda t: t), tf_keras.layers.LSTM(2)]
    )
    model.save(tmp_path / "lam.h5")
    with pytest.raises(ModelFileError, match=r"(?i)lambda"):
        from_keras(tmp_path / "lam.h5")


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda K: K.layers.LSTM(3, recurrent_activation="hard_sigmoid"),
            "recurrent_activation 'hard_sigmoid': expected sigmoid",
        ),
        (lambda K: K.layers.LSTM(3, recurrent_activation="tanh"), "recurrent_activation 'tanh'"),
        (lambda K: K.layers.LSTM(3, activation="softsign"), r"activation .*softsign"),
        (
            lambda K: K.layers.Bidirectional(K.layers.LSTM(3), merge_mode="sum"),
            "merge_mode 'sum'",
        ),
        (lambda K: K.layers.Bidirectional(K.layers.GRU(3)), "wraps GRU"),
        (
            lambda K: K.Sequential([K.layers.Masking(), K.layers.LSTM(3)]),
            "Masking .*masking",
        ),
        (
            lambda K: K.Sequential([K.layers.Conv1D(3, 1), K.layers.LSTM(3)]),
            "layer Conv1D .* is not supported",
        ),
        (
            lambda K: K.Sequential([K.layers.LSTM(3), K.layers.Dense(2, activation="relu")]),
            "activation 'relu': expected linear or softmax",
        ),
        (
            lambda K: K.Sequential([K.layers.LSTM(3), K.layers.Dense(2), K.layers.Dense(2)]),
            "after the Dense head",
        ),
        (lambda K: K.layers.GRU(3), "layer GRU .* is not supported"),
        (lambda K: K.Sequential([K.layers.Dropout(0.1)]), "contains no LSTM"),
    ],
    ids=[
        "hard_sigmoid",
        "tanh_gates",
        "softsign",
        "merge_sum",
        "gru",
        "masking",
        "conv",
        "relu_head",
        "two_dense",
        "gru_only",
        "no_lstm",
    ],
)
def test_refusals(K, build, match):
    obj = build(K)
    obj(np.zeros((1, 2, 3), np.float32))  # build the weights
    with pytest.raises(UnsupportedError, match=match) as info:
        from_keras(obj)
    assert info.value.target == K.__name__


def test_non_chain_functional_refused(K):
    inp = K.Input((None, 3))
    a = K.layers.LSTM(2, return_sequences=True)(inp)
    b = K.layers.LSTM(2, return_sequences=True)(inp)
    model = K.Model(inp, K.layers.Concatenate()([a, b]))
    with pytest.raises(UnsupportedError, match="not a single chain"):
        from_keras(model)


def test_subclassed_model_refused(K):
    class Net(K.Model):
        def __init__(self):
            super().__init__()
            self.lstm = K.layers.LSTM(2)

        def call(self, x):
            return self.lstm(x)

    net = Net()
    net(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(UnsupportedError, match="subclassed model Net"):
        from_keras(net)


def test_unbuilt_and_foreign_objects(K):
    with pytest.raises(WeightsError, match="not built"):
        from_keras(K.layers.LSTM(3))
    with pytest.raises(UnsupportedError, match="expected a Keras model"):
        from_keras(object())

"""Splitting a whole Keras model into LSTM and TF segments; what is refused and why."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm.errors import UnsupportedError

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
pytest.importorskip("tensorflow")

from edgelstm.whole.segments import KerasSegment, LstmSegment, split_keras  # noqa: E402


@pytest.fixture(params=["keras", "tf_keras"])
def K(request):
    return pytest.importorskip(request.param)


def test_embedding_lstm_dense(K):
    model = K.Sequential(
        [
            K.Input((7,), dtype="int32"),
            K.layers.Embedding(20, 4),
            K.layers.LSTM(5, return_sequences=True),
            K.layers.Dropout(0.5),
            K.layers.LSTM(3),
            K.layers.Dense(2, activation="softmax"),
        ]
    )
    whole = split_keras(model)
    kinds = [type(s) for s in whole.segments]
    assert kinds == [KerasSegment, LstmSegment, KerasSegment]
    emb, lstm, head = whole.segments
    assert (emb.input_shape, emb.input_dtype, emb.output_shape) == ((7,), "int32", (7, 4))
    assert len(lstm.model.layers) == 2 and not lstm.model.return_sequences
    assert (lstm.input_shape, lstm.output_shape) == ((7, 4), (3,))
    assert head.output_shape == (2,)
    assert whole.input_dtype == "int32" and whole.output_shape == (2,)
    assert "LSTM[" in whole.describe() and "TF[Embedding]" in whole.describe()


def test_split_leaves_the_model_callable_as_a_chain(K):
    """Tracing the segments adds no inbound nodes: from_keras on a layer still works after."""
    from edgelstm.importers.keras import from_keras

    model = K.Sequential([K.Input((4, 3)), K.layers.Dense(3), K.layers.LSTM(2)])
    split_keras(model)
    split_keras(model)
    assert from_keras(model.layers[1]).n_output == 2


def test_seq_len_fixes_an_open_length(K):
    model = K.Sequential(
        [K.Input((None, 3)), K.layers.Conv1D(4, 3), K.layers.MaxPooling1D(2), K.layers.LSTM(2)]
    )
    assert split_keras(model).segments[1].input_shape == (None, 4)
    assert split_keras(model, seq_len=11).segments[1].input_shape == (4, 4)


def test_branching_model_names_the_way_out(K):
    inp = K.Input((5, 3))
    a = K.layers.LSTM(4)(inp)
    b = K.layers.GlobalAveragePooling1D()(inp)
    model = K.Model(inp, K.layers.Concatenate()([a, b]))
    with pytest.raises(UnsupportedError, match=r"single chain.*get_layer"):
        split_keras(model)


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        (lambda K: [K.layers.Masking(), K.layers.Bidirectional(K.layers.LSTM(2))], "backwards"),
        (lambda K: [K.layers.Masking(), K.layers.LSTM(2, go_backwards=True)], "post-padded"),
        (lambda K: [K.layers.Masking(0.5), K.layers.LSTM(2)], "mask_value must be 0.0"),
        (lambda K: [K.layers.Masking(), K.layers.Dense(3), K.layers.LSTM(2)], "straight into"),
        (
            lambda K: [
                K.layers.Masking(),
                K.layers.LSTM(2, return_sequences=True),
                K.layers.GlobalAveragePooling1D(),
            ],
            "reads the mask",
        ),
        (lambda K: [K.layers.LSTM(2, stateful=True)], "stateful"),
        (lambda K: [K.layers.Dense(2)], "no LSTM"),
    ],
)
def test_refusals(K, layers, match):
    batch = 1 if match == "stateful" else None
    model = K.Sequential([K.Input((5, 3), batch_size=batch), *layers(K)])
    with pytest.raises(UnsupportedError, match=match):
        split_keras(model)


def test_masked_lstm_is_marked(K):
    model = K.Sequential(
        [K.Input((5,), dtype="int32"), K.layers.Embedding(9, 3, mask_zero=True), K.layers.LSTM(2)]
    )
    whole = split_keras(model)
    assert whole.segments[1].masked and "masked" in whole.describe()


def test_masked_sequences_need_a_fixed_length(K):
    model = K.Sequential(
        [K.Input((None, 3)), K.layers.Masking(), K.layers.LSTM(2, return_sequences=True)]
    )
    with pytest.raises(UnsupportedError, match="--seq-len"):
        split_keras(model)
    assert split_keras(model, seq_len=6).segments[1].masked


def test_return_state_outputs_refused(K):
    inp = K.Input((5, 3))
    x = K.layers.Dense(3)(inp)
    out, h, c = K.layers.LSTM(2, return_state=True)(x)
    with pytest.raises(UnsupportedError, match="3 outputs"):
        split_keras(K.Model(inp, [out, h, c]))


def test_inner_return_state_is_dropped(K):
    """An LSTM whose states nobody reads: only its output flows on."""
    inp = K.Input((5, 3))
    out, _, _ = K.layers.LSTM(4, return_state=True)(inp)
    model = K.Model(inp, K.layers.Dense(2)(out))
    whole = split_keras(model)
    assert whole.segments[0].output_shape == (4,)
    assert not whole.segments[0].model.return_state


def test_layer_and_foreign_objects_refused(K):
    with pytest.raises(UnsupportedError, match="not a layer"):
        split_keras(K.layers.LSTM(2))
    with pytest.raises(UnsupportedError, match="expected a Keras model"):
        split_keras(np.zeros(3))

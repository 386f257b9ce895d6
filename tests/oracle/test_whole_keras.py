"""Whole Keras models (LSTMs between other layers) -> one .tflite, against Keras itself.

Each model is trained for a few epochs on a small learnable task (Keras 3; tf-keras gets the
same weights), converted once per session, and run on LiteRT's Interpreter one sequence per
invoke (so a reused interpreter is checked too). Float: <= 1e-5 vs Keras, the LSTMs are
fused ops (no WHILE). int8: top-1 agreement with float Keras >= 98% on held-out data, every
LSTM op reads an int8 input. Dynamic: error within twice the error of the hybrid LSTM alone
(edgelstm's LSTM file between Keras's own float layers) plus the converter's share.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgelstm.inspect.tflite import inspect_tflite
from edgelstm.ir.options import CompileOptions, Int8Options

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
tf_keras = pytest.importorskip("tf_keras")
Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter

from edgelstm.whole.keras_tflite import keras_to_tflite  # noqa: E402

FLOAT_TOL = 1e-5
AGREEMENT = 0.98
T, C, V = 16, 3, 24


# -- tasks: (x, y) with a learnable rule ---------------------------------------------------
def _tokens(rng, n):
    x = rng.integers(1, V, (n, T)).astype(np.int32)
    counts = np.stack([(x % C == c).sum(1) for c in range(C)], 1) + rng.random((n, C)) * 0.5
    return x, counts.argmax(1)


def _signal(rng, n, features=4, steps=T):
    y = rng.integers(0, C, n)
    x = rng.normal(size=(n, steps, features)).astype(np.float32)
    x[np.arange(n), :, y] += 0.9
    return x, y


def _padded(rng, n):
    """_signal, post-padded with zeros to random lengths (1..T)."""
    x, y = _signal(rng, n)
    for k, length in enumerate(rng.integers(1, T + 1, n)):
        x[k, length:] = 0.0
    return x, y


def _running(rng, n, features=4):
    x = rng.normal(size=(n, T, features)).astype(np.float32)
    return x, np.cumsum(x[:, :, :C], axis=1).argmax(-1)


# -- models (K is keras or tf_keras) ---------------------------------------------------------
def _embed(K):
    return K.Sequential(
        [
            K.Input((T,), dtype="int32"),
            K.layers.Embedding(V, 8),
            K.layers.LSTM(16),
            K.layers.Dense(C, activation="softmax"),
        ]
    )


def _conv(K):
    return K.Sequential(
        [
            K.Input((2 * T, 4)),
            K.layers.Conv1D(8, 3, activation="relu"),
            K.layers.MaxPooling1D(2),
            K.layers.LSTM(16),
            K.layers.Dense(C, activation="softmax"),
        ]
    )


def _tagger(K):
    return K.Sequential(
        [
            K.Input((T, 4)),
            K.layers.LSTM(16, return_sequences=True),
            K.layers.TimeDistributed(K.layers.Dense(C, activation="softmax")),
        ]
    )


def _bidi(K):
    inp = K.Input((T, 4))
    x = K.layers.Dense(8, activation="relu")(inp)
    x = K.layers.Bidirectional(K.layers.LSTM(8))(x)
    x = K.layers.Dense(8, activation="relu")(x)
    return K.Model(inp, K.layers.Dense(C, activation="softmax")(x))


def _peephole(K):
    cell = tf.compat.v1.nn.rnn_cell.LSTMCell(12, use_peepholes=True, num_proj=6)
    return K.Sequential(
        [
            K.Input((T, 4)),
            K.layers.Dense(8, activation="tanh"),
            K.layers.RNN(cell),
            K.layers.Dense(C, activation="softmax"),
        ]
    )


def _masked(K):
    return K.Sequential(
        [
            K.Input((T, 4)),
            K.layers.Masking(),
            K.layers.LSTM(16),
            K.layers.Dense(C, activation="softmax"),
        ]
    )


MODELS = {
    "embed": (_embed, _tokens),
    "conv": (_conv, lambda rng, n: _signal(rng, n, steps=2 * T)),
    "tagger": (_tagger, _running),
    "bidi": (_bidi, _signal),
    "peephole": (_peephole, _signal),
    "masked": (_masked, _padded),
}
CASES = [(name, flavor) for name in MODELS for flavor in ("keras", "tf_keras")]
CASES.remove(("peephole", "keras"))  # Keras 3 has no peephole/projection cell
FLAVOR = {"keras": keras, "tf_keras": tf_keras}
_TRAINED: dict[str, list[np.ndarray]] = {}
_BUILT: dict[tuple[str, str], object] = {}


def _fit(model, task):
    x, y = task(np.random.default_rng(0), 768)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)


def trained(name: str, flavor: str):
    """The trained model (trained once in Keras 3; tf-keras copies the weights)."""
    key = (name, flavor)
    if key not in _BUILT:
        build, task = MODELS[name]
        model = build(FLAVOR[flavor])
        if name == "peephole":
            tf_keras.utils.set_random_seed(0)
            _fit(model, task)
        elif name in _TRAINED:
            model.set_weights(_TRAINED[name])
        else:
            keras.utils.set_random_seed(0)
            trainee = build(keras)
            _fit(trainee, task)
            _TRAINED[name] = trainee.get_weights()
            model.set_weights(_TRAINED[name])
        _BUILT[key] = model
    return _BUILT[key]


def held_out(name: str, n: int = 200) -> np.ndarray:
    return MODELS[name][1](np.random.default_rng(99), n)[0]


def calibration(name: str) -> np.ndarray:
    return MODELS[name][1](np.random.default_rng(5), 128)[0]


_FILES: dict[tuple[str, str, str], bytes] = {}


def converted(name: str, flavor: str, quantize: str = "none", io: bool = False) -> bytes:
    key = (name, flavor, quantize + ("-io" if io else ""))
    if key not in _FILES:
        cal = calibration(name) if quantize == "int8" else None
        options = CompileOptions(
            batch=None, quantize=quantize, calibration=cal, int8=Int8Options(io=io)
        )
        _FILES[key] = keras_to_tflite(trained(name, flavor), options).data
    return _FILES[key]


def run_litert(data: bytes, x: np.ndarray) -> np.ndarray:
    """One sequence per invoke on one reused Interpreter (int8 I/O quantized here)."""
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for row in x:
        value = row[None]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            value = np.clip(np.round(value / scale) + zero, -128, 127)
        it.set_tensor(inp["index"], value.astype(inp["dtype"]))
        it.invoke()
        got = it.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            got = (got.astype(np.float32) - zero) * scale
        outs.append(got)
    return np.concatenate(outs)


def lstm_ops(data: bytes):
    return [op for op in inspect_tflite(Path("m.tflite"), data).ops if "LSTM" in op.op]


@pytest.mark.parametrize(("name", "flavor"), CASES)
def test_float_exact_and_fused(name, flavor):
    model = trained(name, flavor)
    data = converted(name, flavor)
    x = held_out(name, 24)
    want = np.asarray(model(x))
    got = run_litert(data, x)
    assert got.shape == want.shape
    err = float(np.abs(got - want).max())
    assert err <= FLOAT_TOL, f"{name}/{flavor}: max abs error {err:.3g}"
    again = run_litert(data, x[::-1])[::-1]  # another order: no state leaks between invokes
    np.testing.assert_array_equal(again, got)
    ops = inspect_tflite(Path("m.tflite"), data).ops
    names = [op.op for op in ops]
    directions = 2 if name == "bidi" else 1
    assert names.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == directions
    assert "WHILE" not in names


@pytest.mark.parametrize(("name", "flavor"), CASES)
def test_int8_agrees_with_keras(name, flavor):
    model = trained(name, flavor)
    x = held_out(name)
    want = np.asarray(model(x)).argmax(-1)
    for io in (False, True):
        data = converted(name, flavor, "int8", io)
        agreement = float((run_litert(data, x).argmax(-1) == want).mean())
        assert agreement >= AGREEMENT, f"{name}/{flavor} io={io}: agreement {agreement:.3f}"
        for op in lstm_ops(data):
            assert op.inputs[0].dtype == "int8", f"{op.op} reads {op.inputs[0].dtype}"
    io_file = inspect_tflite(Path("m.tflite"), converted(name, flavor, "int8", True))
    want_in = "int32" if name == "embed" else "int8"
    assert [t.dtype for t in io_file.inputs] == [want_in]
    assert [t.dtype for t in io_file.outputs] == ["int8"]
    float_io = inspect_tflite(Path("m.tflite"), converted(name, flavor, "int8"))
    assert [t.dtype for t in float_io.outputs] == ["float32"]


def _lstm_alone_error(name: str, flavor: str, x: np.ndarray) -> float:
    """Keras float layers around edgelstm's hybrid LSTM file alone, vs Keras float."""
    from edgelstm.importers.keras import from_keras
    from edgelstm.targets.tflite import to_tflite
    from edgelstm.whole.segments import is_lstm_layer, lstm_layer

    model = trained(name, flavor)
    layers = [la for la in model.layers if type(la).__name__ != "InputLayer"]
    k = next(i for i, la in enumerate(layers) if is_lstm_layer(la))
    before = x
    for layer in layers[:k]:
        before = np.asarray(layer(before))
    if name == "peephole":
        from edgelstm.ir.model import LSTMModel

        lstm = LSTMModel(layers=(lstm_layer(layers[k], "tf_keras")[0],), return_sequences=False)
    else:
        lstm = from_keras(layers[k])
    hybrid = to_tflite(lstm, CompileOptions(seq_len=before.shape[1], quantize="dynamic"))
    h = run_litert(hybrid, before.astype(np.float32))
    for layer in layers[k + 1 :]:
        h = np.asarray(layer(h))
    return float(np.abs(h - np.asarray(model(x))).max())


@pytest.mark.parametrize(("name", "flavor"), [("embed", "keras"), ("peephole", "tf_keras")])
def test_dynamic_within_hybrid_error(name, flavor):
    model = trained(name, flavor)
    x = held_out(name, 48)
    data = converted(name, flavor, "dynamic")
    err = float(np.abs(run_litert(data, x) - np.asarray(model(x))).max())
    alone = _lstm_alone_error(name, flavor, x)
    assert err <= 2 * alone + 1e-3, f"whole {err:.3g} vs LSTM alone {alone:.3g}"
    assert lstm_ops(data)[0].version >= 2  # hybrid


def test_resizable_batch_with_runner():
    """The default file takes any batch through edgelstm's runner (states resized with it)."""
    from edgelstm.runtime.litert import LiteRTRunner

    model = trained("conv", "keras")
    x = held_out("conv", 8)
    got = LiteRTRunner(converted("conv", "keras")).run(x)[0]
    assert float(np.abs(got - np.asarray(model(x))).max()) <= FLOAT_TOL


@pytest.mark.parametrize("flavor", ["keras", "tf_keras"])
def test_masked_token_sequences(flavor):
    """Embedding(mask_zero) -> LSTM(return_sequences) -> TimeDistributed(Dense): Keras repeats
    the last valid output over the padding (zeros for an empty sequence); so does the file."""
    K = FLAVOR[flavor]
    model = K.Sequential(
        [
            K.Input((T,), dtype="int32"),
            K.layers.Embedding(V, 6, mask_zero=True),
            K.layers.LSTM(8, return_sequences=True),
            K.layers.TimeDistributed(K.layers.Dense(C)),
        ]
    )
    rng = np.random.default_rng(7)
    ids = rng.integers(1, V, (12, T)).astype(np.int32)
    for k, length in enumerate([0, 1, T, *rng.integers(1, T, 9)]):
        ids[k, length:] = 0
    data = keras_to_tflite(model).data
    err = float(np.abs(run_litert(data, ids) - np.asarray(model(ids))).max())
    assert err <= FLOAT_TOL, f"max abs error {err:.3g}"


def test_converter_api_with_tensorflow_settings():
    """The tf.lite.TFLiteConverter verbs, with TensorFlow's own enum and dtypes."""
    from edgelstm.whole import TFLiteConverter

    model = trained("conv", "keras")
    x = held_out("conv")
    float_file = TFLiteConverter.from_keras_model(model).convert()
    assert np.abs(run_litert(float_file, x[:8]) - np.asarray(model(x[:8]))).max() <= FLOAT_TOL
    cal = calibration("conv")

    def representative():
        for row in cal[:64]:
            yield [row[None]]

    conv = TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    data = conv.convert()
    info = inspect_tflite(Path("m.tflite"), data)
    assert [t.dtype for t in info.inputs + info.outputs] == ["int8", "int8"]
    agreement = float((run_litert(data, x).argmax(-1) == np.asarray(model(x)).argmax(-1)).mean())
    assert agreement >= AGREEMENT
    assert "LSTM segment(s) fused" in conv.result.summary()


@pytest.mark.parametrize("flavor", ["keras", "tf_keras"])
def test_go_backwards_stack_and_unused_states(flavor):
    """Dense -> LSTM(go_backwards, sequences) -> LSTM(return_state, states unused) -> Dense."""
    K = FLAVOR[flavor]
    inp = K.Input((T, 4))
    x = K.layers.Dense(6, activation="tanh")(inp)
    x = K.layers.LSTM(5, return_sequences=True, go_backwards=True)(x)
    x, _, _ = K.layers.LSTM(4, return_state=True)(x)
    model = K.Model(inp, K.layers.Dense(C)(x))
    xs = held_out("bidi", 6)
    data = keras_to_tflite(model).data
    err = float(np.abs(run_litert(data, xs) - np.asarray(model(xs))).max())
    assert err <= FLOAT_TOL, f"max abs error {err:.3g}"
    assert [op.op for op in lstm_ops(data)] == ["UNIDIRECTIONAL_SEQUENCE_LSTM"] * 2

"""The TFLite linker on real converter output: Keras 3 segments converted by TensorFlow's
TFLiteConverter, LSTMs by edgelstm, joined by :func:`edgelstm.targets.tflite.link.link_chain`.

Oracles: Keras running the whole model (float, <= 1e-5), the interpreters running the
converted segments one after another (the linked file must repeat them exactly; at an int8
boundary with two different scales the requantization is the QUANTIZE kernel's own, run as a
one-op model), tf.lite.Interpreter and TFLite Micro loading the same bytes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgelstm import CompileOptions, Int8Options, from_keras, to_tflite
from edgelstm.targets.tflite.builder import GraphBuilder, Quantization
from edgelstm.targets.tflite.link import link_chain, read_segments
from edgelstm.targets.tflite.schema import BuiltinOperator as Op
from edgelstm.targets.tflite.schema import BuiltinOptions as Opt
from edgelstm.targets.tflite.schema import load_model, schema

pytestmark = [pytest.mark.tf, pytest.mark.filterwarnings("ignore::UserWarning")]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter
T, F, H, U, K, VOCAB = 6, 5, 7, 8, 3, 20  # steps, features, dense width, units, classes
TOL = 1e-5


def convert(model, data: np.ndarray | None = None) -> bytes:
    """TF's converter on a Keras 3 model; ``data``: full int8 with int8 I/O."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if data is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([data[i : i + 1]] for i in range(len(data)))
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def run(data: bytes, x: np.ndarray) -> np.ndarray:
    """One invoke on LiteRT at x's batch (LSTM state variables resized like edgelstm's runner)."""
    interp = Interpreter(model_content=data)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], x.shape)
    for k, t in enumerate(load_model(data).subgraphs[0].tensors):
        if t.isVariable:
            interp.resize_tensor_input(k, [x.shape[0], int(t.shape[-1])])
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def tf_run(data: bytes, x: np.ndarray) -> np.ndarray:
    """One invoke on tf.lite.Interpreter (TensorFlow's own runtime) at the stored shapes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_content=data)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def chained(parts: list[bytes], x: np.ndarray) -> np.ndarray:
    for part in parts:
        x = run(part, x)
    return x


def ops(data: bytes) -> list[int]:
    m = load_model(data)
    codes = m.operatorCodes
    return [
        max(codes[o.opcodeIndex].builtinCode, codes[o.opcodeIndex].deprecatedBuiltinCode)
        for o in m.subgraphs[0].operators
    ]


def requantize(shape: list[int], src: bytes, dst: bytes) -> bytes:
    """One int8 -> int8 QUANTIZE op from ``src``'s output params to ``dst``'s input params."""
    (s_scale, s_zero) = Interpreter(model_content=src).get_output_details()[0]["quantization"]
    (d_scale, d_zero) = Interpreter(model_content=dst).get_input_details()[0]["quantization"]
    g = GraphBuilder("requantize")
    x = g.add_tensor("x", shape, "int8", quantization=Quantization((s_scale,), (s_zero,)))
    y = g.add_tensor("y", shape, "int8", quantization=Quantization((d_scale,), (d_zero,)))
    g.add_operator(Op.QUANTIZE, [x], [y], Opt.QuantizeOptions, schema.QuantizeOptionsT())
    g.add_input("x", x)
    g.add_output("y", y)
    return g.finish()


@pytest.fixture(scope="module")
def net():
    """Dense(relu) -> LSTM -> Dense(softmax) in Keras 3, and each segment converted."""
    keras.utils.set_random_seed(11)
    d1 = keras.layers.Dense(H, activation="relu")
    lstm = keras.layers.LSTM(U)
    d2 = keras.layers.Dense(K, activation="softmax")
    inp = keras.Input((T, F))
    full = keras.Model(inp, d2(lstm(d1(inp))))
    front = keras.Sequential([keras.Input((T, F)), d1])
    middle = keras.Sequential([keras.Input((T, H)), lstm])
    back = keras.Sequential([keras.Input((U,)), d2])
    fused = to_tflite(from_keras(lstm), CompileOptions(batch=None, seq_len=T))
    parts = [convert(front), fused, convert(back)]
    x = np.random.default_rng(0).normal(size=(3, T, F)).astype(np.float32)
    return {"full": full, "front": front, "middle": middle, "back": back, "parts": parts, "x": x}


def test_dense_lstm_dense_float(net):
    parts, x = net["parts"], net["x"]
    linked = link_chain(parts)
    assert Op.UNIDIRECTIONAL_SEQUENCE_LSTM in ops(linked)
    got = run(linked, x)
    np.testing.assert_array_equal(got, chained(parts, x))
    assert np.abs(got - net["full"](x).numpy()).max() <= TOL
    single = run(linked, x[:1])  # the stored batch-1 shapes, no resize
    assert np.abs(single - net["full"](x[:1]).numpy()).max() <= TOL
    seg = read_segments(linked)
    assert [s["kind"] for s in seg["segments"]] == ["tflite", "edgelstm", "tflite"]
    np.testing.assert_array_equal(tf_run(linked, x[:1]), single)


def test_while_part_from_tf(net):
    """Keras 3's LSTM as TF converts it (WHILE with cond/body subgraphs) between Dense parts.

    TF converts it only with a fixed batch (a dynamic one fails to lower its tensor lists):
    the Dense parts' dynamic batch meets a fixed one at both boundaries.
    """
    middle = keras.Sequential([keras.Input((T, H), batch_size=1), net["middle"].layers[0]])
    parts = [net["parts"][0], convert(middle), net["parts"][2]]
    assert Op.WHILE in ops(parts[1])
    linked = link_chain(parts)
    m = load_model(linked)
    kinds = [o.builtinOptionsType for o in m.subgraphs[0].operators]
    assert Opt.WhileOptions in kinds
    assert len(m.subgraphs) == len(load_model(parts[1]).subgraphs) > 1
    x = net["x"][:1]
    got = run(linked, x)
    np.testing.assert_array_equal(got, chained(parts, x))
    np.testing.assert_array_equal(tf_run(linked, x), got)
    assert np.abs(got - net["full"](x).numpy()).max() <= TOL


def test_int8_boundaries(net):
    """int8 segments whose boundary scales differ: explicit QUANTIZE ops, bit-exact vs the
    segments chained with the QUANTIZE kernel between them; TFLM runs the linked file too."""
    rng = np.random.default_rng(1)
    calib = rng.normal(size=(64, T, F)).astype(np.float32)
    front_f = net["front"](calib).numpy()
    middle_f = net["middle"](front_f).numpy()
    static = {"batch_size": 1}
    front = keras.Sequential([keras.Input((T, F), **static), net["front"].layers[0]])
    back = keras.Sequential([keras.Input((U,), **static), net["back"].layers[0]])
    options = CompileOptions(
        batch=1, seq_len=T, quantize="int8", calibration=front_f, int8=Int8Options(io=True)
    )
    lstm = to_tflite(from_keras(net["middle"].layers[0]), options)
    parts = [convert(front, calib), lstm, convert(back, middle_f)]
    linked = link_chain(parts)
    bounds = read_segments(linked)["boundaries"]
    assert [b["link"] for b in bounds] == ["QUANTIZE", "QUANTIZE"]
    assert all(b["from"]["scale"] != b["to"]["scale"] for b in bounds)
    oracle = [
        parts[0],
        requantize([1, T, H], parts[0], lstm),
        lstm,
        requantize([1, U], lstm, parts[2]),
        parts[2],
    ]
    x_scale, x_zero = Interpreter(model_content=parts[0]).get_input_details()[0]["quantization"]
    xs = np.clip(np.round(calib[:6] / x_scale) + x_zero, -128, 127).astype(np.int8)
    got = np.concatenate([run(linked, xs[i : i + 1]) for i in range(len(xs))])
    expected = np.concatenate([chained(oracle, xs[i : i + 1]) for i in range(len(xs))])
    np.testing.assert_array_equal(got, expected)

    runtime = pytest.importorskip("tflite_micro").runtime
    micro = runtime.Interpreter.from_bytes(linked, arena_size=64 * 1024)
    micro.set_input(xs[:1], 0)
    micro.invoke()  # TFLM's int8 LSTM kernel differs from LiteRT's by <= 1 LSB (FIELD_NOTES)
    assert np.abs(micro.get_output(0).astype(int) - got[:1]).max() <= 1


def test_embedding_front_end():
    """Token ids (int32) through TF's Embedding conversion (GATHER) into edgelstm's LSTM."""
    keras.utils.set_random_seed(12)
    emb = keras.layers.Embedding(VOCAB, H)
    lstm = keras.layers.LSTM(U, return_sequences=True)
    inp = keras.Input((T,), dtype="int32")
    full = keras.Model(inp, lstm(emb(inp)))
    front = convert(keras.Sequential([keras.Input((T,), dtype="int32"), emb]))
    fused = to_tflite(from_keras(lstm), CompileOptions(batch=None, seq_len=T))
    linked = link_chain([front, fused], input_names=["tokens"], output_names=["states"])
    interp = Interpreter(model_content=linked)
    assert interp.get_input_details()[0]["dtype"] == np.int32
    assert interp.get_signature_list()["serving_default"]["inputs"] == ["tokens"]
    ids = np.random.default_rng(2).integers(0, VOCAB, size=(2, T)).astype(np.int32)
    got = run(linked, ids)
    np.testing.assert_array_equal(got, chained([front, fused], ids))
    assert np.abs(got - full(ids).numpy()).max() <= TOL

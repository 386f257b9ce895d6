"""The legacy (tf_keras) converter's fused-LSTM files, read back and compared to Keras.

A tf_keras LSTM is converted with ``tf.lite.TFLiteConverter.from_keras_model`` (float and
dynamic-range; TF_USE_LEGACY_KERAS=1, set by conftest). :func:`from_tflite` must recover the
Keras weights (float exactly, hybrid within half a step), the converter's cell_clip=10 and
``return_sequences=False``; the recovered model, and our own file of it, must reproduce Keras.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import from_tflite, reference_model
from edgelstm.ir.options import CompileOptions
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite import to_tflite

pytestmark = [pytest.mark.tf, pytest.mark.slow]

UNITS, FEATURES, STEPS = 32, 48, 10
GATES = ("input", "forget", "cell", "output")  # Keras order i, f, c, o
TOL = 1e-5


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    tf = pytest.importorskip("tensorflow")
    tf_keras = pytest.importorskip("tf_keras")
    tf_keras.utils.set_random_seed(7)
    inp = tf_keras.Input((STEPS, FEATURES), batch_size=1)
    lstm = tf_keras.layers.LSTM(
        UNITS, return_sequences=False, bias_initializer=tf_keras.initializers.RandomNormal(seed=1)
    )
    model = tf_keras.Model(inp, lstm(inp))
    x = np.random.default_rng(3).normal(size=(1, STEPS, FEATURES)).astype(np.float32)
    expected = model(x).numpy()
    paths = {}
    for kind in ("float", "dynamic"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if kind == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        path = tmp_path_factory.mktemp("legacy") / f"{kind}.tflite"
        path.write_bytes(converter.convert())
        paths[kind] = path
    kernel, recurrent, bias = (v.numpy() for v in lstm.weights)
    keras = {}
    for k, gate in enumerate(GATES):
        cols = slice(k * UNITS, (k + 1) * UNITS)
        keras[f"input_to_{gate}_weights"] = kernel[:, cols].T
        keras[f"recurrent_to_{gate}_weights"] = recurrent[:, cols].T
        keras[f"{gate}_gate_bias"] = bias[cols]
    return paths, keras, x, expected


def test_legacy_float_file_reads_back_exactly(legacy):
    paths, keras, x, expected = legacy
    model = from_tflite(paths["float"])
    (layer,) = model.layers
    w = layer.forward
    assert w.spec.cell_clip == 10.0 and w.spec.activation == "tanh"
    assert not model.return_sequences
    assert set(w.tensors) == set(keras)
    for name, arr in keras.items():
        assert np.array_equal(w[name], arr), name
    assert np.max(np.abs(reference_model(model, x).output - expected)) <= TOL
    # the legacy file itself and our file of the recovered model both reproduce Keras
    assert np.max(np.abs(LiteRTRunner(paths["float"]).run(x)[0] - expected)) <= TOL
    ours = to_tflite(model, CompileOptions(batch=1))
    assert np.max(np.abs(LiteRTRunner(ours).run(x)[0] - expected)) <= TOL
    assert np.max(np.abs(LiteRTRunner(ours, backend="tf").run(x)[0] - expected)) <= TOL


def test_legacy_dynamic_range_file_reads_back_within_quant_error(legacy):
    paths, keras, x, expected = legacy
    w = from_tflite(paths["dynamic"]).layers[0].forward
    for name, arr in keras.items():
        if name.endswith("_weights"):
            step = np.max(np.abs(arr)) / 127
            assert np.max(np.abs(w[name] - arr)) <= step / 2 + 1e-6, name
            assert not np.array_equal(w[name], arr), f"{name} should be quantized"
        else:
            assert np.array_equal(w[name], arr), name
    err = np.max(np.abs(LiteRTRunner(paths["dynamic"]).run(x)[0] - expected))
    assert err <= 0.02

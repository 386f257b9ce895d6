"""edgelstm.whole.keras_onnx: tf2onnx's Loop fallback, files, refusals (numbers: tests/oracle)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgelstm.errors import MissingDependencyError, UnsupportedError
from edgelstm.ir.options import CompileOptions

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.tf

import keras  # noqa: E402

from edgelstm.whole.keras_onnx import count_lstm_nodes, keras_to_onnx  # noqa: E402


def _masked() -> keras.Model:
    """Masking before the LSTM: tf2onnx writes a Loop, not an LSTM node."""
    keras.utils.set_random_seed(1)
    feats = keras.Input((6, 4), name="feats")
    x = keras.layers.LSTM(5, name="masked_lstm")(keras.layers.Masking()(feats))
    return keras.Model(feats, keras.layers.Dense(2)(x))


@pytest.fixture(scope="module")
def masked() -> keras.Model:
    return _masked()


def test_loop_fallback_refused_with_the_layer_and_ways_out(masked) -> None:
    with pytest.raises(UnsupportedError) as info:
        keras_to_onnx(masked)
    text = str(info.value)
    assert "'masked_lstm'" in text and "Loop" in text and "Masking" in text
    assert "strict=False" in text and "tflite" in text


def test_loop_fallback_kept_with_a_warning(masked) -> None:
    with pytest.warns(UserWarning, match="kept the exporter's graph"):
        proto = keras_to_onnx(masked, strict=False)
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32)
    x[0, 4:] = 0.0  # post-padding, which the mask skips
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"feats": x})[0]
    assert np.abs(got - np.asarray(masked(x))).max() <= 1e-5
    whole = json.loads({p.key: p.value for p in proto.metadata_props}["edgelstm.whole"])
    assert whole["rewritten"] == 0 and whole["kept_unchanged"]
    assert count_lstm_nodes(proto) == 0


def test_keras_file_path(tmp_path) -> None:
    keras.utils.set_random_seed(2)
    feats = keras.Input((None, 3), name="feats")
    x = keras.layers.LSTM(4, return_sequences=True)(keras.layers.Dense(5)(feats))
    model = keras.Model(feats, keras.layers.Dense(2)(x))
    path = tmp_path / "m.keras"
    model.save(path)
    proto = keras_to_onnx(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 3)).astype(np.float32)
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"feats": x})[0]
    assert np.abs(got - np.asarray(model(x))).max() <= 1e-5
    assert count_lstm_nodes(proto) == 1  # edgelstm's fused LSTM took tf2onnx's place


def test_int8_refused_before_export(masked) -> None:
    with pytest.raises(UnsupportedError, match="static int8"):
        keras_to_onnx(masked, CompileOptions(quantize="int8"))


def test_missing_tf2onnx_names_the_extra(masked, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(MissingDependencyError, match=r"edgelstm\[onnx-export\]"):
        keras_to_onnx(masked)

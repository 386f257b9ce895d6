"""Files of non-stateful models forget their state between invokes; stateful ones carry it.

The fused op keeps h and c in variable tensors that persist across ``invoke()``. Users
reuse one interpreter (``set_tensor`` / ``invoke`` per sample) and never call
``reset_all_variables()``, so every non-stateful file resets its states in the graph
(an ADD of two never-written variables before each LSTM op). Checked here on
ai-edge-litert with its default delegate (XNNPACK) and with the builtin kernels only, in
float, hybrid and full int8, single / full-feature / stacked bidirectional models; a
reused interpreter must repeat a fresh interpreter's answer bit for bit. tflite-runtime
2.14 is checked in ``tests/oracle/test_tflite_runtime_214.py``, TFLite Micro in
``tests/runtime/test_tflm.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from _paths import MODELS

from edgelstm import (
    CompileOptions,
    DenseHead,
    LSTMLayer,
    LSTMModel,
    LSTMSpec,
    LSTMWeights,
    from_npz,
    reference_model,
    to_tflite,
)

Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter
OpResolverType = pytest.importorskip("ai_edge_litert.interpreter").OpResolverType
RESOLVERS = {
    "xnnpack": OpResolverType.AUTO,
    "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
}
TOL = {"none": 1e-5, "dynamic": 0.05, "int8": 0.08}


def _models() -> dict[str, LSTMModel]:
    rng = np.random.default_rng(4)
    full = LSTMSpec(5, 8, 6, peephole=True, projection=True, layer_norm=True, cell_clip=2.0)
    stacked = LSTMModel(
        (
            LSTMLayer(
                LSTMWeights.random(LSTMSpec(5, 6), seed=1),
                LSTMWeights.random(LSTMSpec(5, 6, cifg=True), seed=2),
            ),
            LSTMLayer(LSTMWeights.random(LSTMSpec(12, 7), seed=3)),
        ),
        head=DenseHead(rng.normal(size=(3, 7)), rng.normal(size=3), "softmax"),
        return_sequences=False,
    )
    return {
        "plain": LSTMModel.of(LSTMWeights.random(LSTMSpec(5, 8), seed=0)),
        "full": LSTMModel.of(LSTMWeights.random(full, seed=5, scale=0.5)),
        "stacked_bidi_head": stacked,
    }


MODELS_ = _models()
DATA = np.random.default_rng(0).uniform(-1, 1, size=(3, 2, 9, 5)).astype(np.float32)


def _compile(name: str, quantize: str) -> bytes:
    calibration = DATA.reshape(-1, 9, 5) if quantize == "int8" else None
    options = CompileOptions(batch=2, seq_len=9, quantize=quantize, calibration=calibration)
    return to_tflite(MODELS_[name], options)


def _invoke(interp, x: np.ndarray) -> np.ndarray:
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def _interpreter(data: bytes, resolver) -> object:
    interp = Interpreter(model_content=data, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


@pytest.mark.parametrize("resolver", list(RESOLVERS))
@pytest.mark.parametrize("quantize", ["none", "dynamic", "int8"])
@pytest.mark.parametrize("name", list(MODELS_))
def test_reused_interpreter_repeats_a_fresh_one(name, quantize, resolver):
    data = _compile(name, quantize)
    reused = _interpreter(data, RESOLVERS[resolver])
    outs = [_invoke(reused, x) for x in (DATA[0], DATA[1], DATA[2], DATA[0])]
    for x, got in zip(DATA[1:], outs[1:3], strict=True):
        fresh = _invoke(_interpreter(data, RESOLVERS[resolver]), x)
        np.testing.assert_array_equal(got, fresh)
    np.testing.assert_array_equal(outs[3], outs[0])
    for x, got in zip(DATA, outs[:3], strict=True):
        want = reference_model(MODELS_[name], x).output
        assert np.abs(got - want).max() <= TOL[quantize]


@pytest.mark.parametrize("quantize", ["none", "dynamic", "int8"])
def test_japanese_vowels_reused_equals_fresh(quantize):
    data = np.load(MODELS / "japanese_vowels.npz")
    x, y = data["x_test"].astype(np.float32), data["y_test"]
    model = from_npz(MODELS / "japanese_vowels_lstm.npz")
    calibration = data["x_train"].astype(np.float32) if quantize == "int8" else None
    flat = to_tflite(
        model,
        CompileOptions(batch=1, seq_len=29, quantize=quantize, calibration=calibration),
    )
    reused = _interpreter(flat, OpResolverType.AUTO)
    got = np.concatenate([_invoke(reused, x[i : i + 1]) for i in range(len(x))])
    fresh = np.concatenate(
        [_invoke(_interpreter(flat, OpResolverType.AUTO), x[i : i + 1]) for i in range(len(x))]
    )
    np.testing.assert_array_equal(got, fresh)
    ref_correct = int((reference_model(model, x).output.argmax(-1) == y).sum())
    correct = int((got.argmax(-1) == y).sum())
    assert correct >= ref_correct - (0 if quantize == "none" else 1), (correct, ref_correct)


def test_stateful_file_keeps_carrying_state():
    """``stateful=True`` (streaming): no reset; two invokes of T steps equal one of 2T."""
    weights = LSTMWeights.random(LSTMSpec(5, 8), seed=0)
    stateful = LSTMModel.of(weights, stateful=True)
    data = to_tflite(stateful, CompileOptions(batch=2, seq_len=9))
    interp = _interpreter(data, OpResolverType.AUTO)
    first, second = _invoke(interp, DATA[0]), _invoke(interp, DATA[1])
    whole = reference_model(stateful, np.concatenate([DATA[0], DATA[1]], axis=1)).output
    assert np.abs(np.concatenate([first, second], axis=1) - whole).max() <= 1e-5
    assert np.abs(_invoke(interp, DATA[0]) - first).max() > 1e-3  # state carried on


def test_inspect_says_which_kind():
    from edgelstm.inspect import format_info, inspect_model

    weights = LSTMWeights.random(LSTMSpec(5, 8), seed=0)
    for model, words in (
        (LSTMModel.of(weights), "reset in the graph on every invoke"),
        (LSTMModel.of(weights, stateful=True), "carried across invokes"),
    ):
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.tflite"
            path.write_bytes(to_tflite(model, CompileOptions(batch=1, seq_len=9)))
            text = format_info(inspect_model(path))
        assert words in text, text


@pytest.mark.tf
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("quantize", ["none", "dynamic", "int8"])
def test_reused_tf_lite_interpreter_repeats_a_fresh_one(quantize):
    """tf.lite.Interpreter (TensorFlow's own copy of the runtime) behaves the same."""
    tf = pytest.importorskip("tensorflow")
    data = _compile("stacked_bidi_head", quantize)

    def make():
        interp = tf.lite.Interpreter(model_content=data)
        interp.allocate_tensors()
        return interp

    reused = make()
    outs = [_invoke(reused, x) for x in (DATA[0], DATA[1], DATA[0])]
    np.testing.assert_array_equal(outs[1], _invoke(make(), DATA[1]))
    np.testing.assert_array_equal(outs[2], outs[0])

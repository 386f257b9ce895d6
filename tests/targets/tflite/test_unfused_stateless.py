"""Stateless unfused files used the way apps use them: one interpreter, only ``input`` set,
invoked again and again, with no reset and no state inputs to forget.

Before the zero state was built in the graph, the ``initial_h|c`` inputs an app does not set
were uninitialised arena memory: JapaneseVowels unfused scored 31-358/370 on a reused
interpreter (NaN outputs), depending on quantization, schedule and op resolver.
"""

from __future__ import annotations

import numpy as np
import pytest
from _paths import MODELS as MODEL_DIR
from _tflite_helpers import seeded
from test_unfused_models import MODELS

from edgelstm import reference_model
from edgelstm.ir.options import CompileOptions, UnfusedOptions
from edgelstm.runtime.select import open_runner
from edgelstm.targets.tflite.schema import load_model
from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

TOL = {"none": 1e-5, "dynamic": 2e-2, "int8": 1e-1}
"""Max abs vs float64 (as in test_unfused_models / test_unfused_quant)."""
RESOLVERS = ("default", "builtin")
STEPS = 6


def _interpreter(data: bytes, resolver: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {}
    if resolver == "builtin":
        kw["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_content=data, **kw)
    interp.allocate_tensors()
    return interp


def _invoke(interp, x: np.ndarray) -> np.ndarray:
    """What an app does: set the one input, invoke, read ``output`` (the first output)."""
    (detail,) = interp.get_input_details()  # the file's only input
    interp.set_tensor(detail["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def _reused_and_fresh(data: bytes, xs: np.ndarray, resolver: str) -> tuple[np.ndarray, ...]:
    reused = _interpreter(data, resolver)
    again = np.stack([_invoke(reused, x) for x in xs])
    fresh = np.stack([_invoke(_interpreter(data, resolver), x) for x in xs])
    return again, fresh


@pytest.mark.parametrize("quantize", sorted(TOL))
@pytest.mark.parametrize("schedule", ["unrolled", "while"])
@pytest.mark.parametrize("name", ["stacked_head", "bidirectional", "last_step_go_backwards_head"])
def test_reused_interpreter_equals_fresh_and_reference(name, schedule, quantize):
    model = MODELS[name]
    rng = seeded("unfused-stateless", name)
    xs = rng.normal(size=(5, 1, STEPS, model.n_input)).astype(np.float32)
    calibration = rng.normal(size=(8, STEPS, model.n_input)).astype(np.float32)
    options = CompileOptions(
        seq_len=STEPS,
        quantize=quantize,
        calibration=calibration,
        unfused=UnfusedOptions(schedule),  # type: ignore[arg-type]
    )
    data = to_tflite_unfused(model, options)
    m = load_model(data)
    assert [t.name.decode() for t in m.signatureDefs[0].inputs] == ["input"]
    assert not any(t.isVariable for sg in m.subgraphs for t in sg.tensors)
    want = np.stack([reference_model(model, x).output for x in xs])
    for resolver in RESOLVERS:
        again, fresh = _reused_and_fresh(data, xs, resolver)
        np.testing.assert_array_equal(again, fresh, err_msg=resolver)
        assert np.abs(again - want).max() <= TOL[quantize], resolver


@pytest.mark.parametrize("resolver", RESOLVERS)
def test_dynamic_batch_zero_state_follows_the_input(resolver):
    """batch=None: the zero state is FILLed with the input's batch on every invoke."""
    model = MODELS["time_major_bidi"]
    data = to_tflite_unfused(model, CompileOptions(batch=None, seq_len=None))
    rng = seeded("unfused-stateless-dynamic")
    interp = _interpreter(data, resolver)
    index = interp.get_input_details()[0]["index"]
    for batch, steps in ((3, 5), (1, 7), (3, 5)):
        x = rng.normal(size=(steps, batch, model.n_input)).astype(np.float32)
        interp.resize_tensor_input(index, list(x.shape), strict=True)
        interp.allocate_tensors()
        got = _invoke(interp, x)
        np.testing.assert_allclose(got, reference_model(model, x).output, atol=1e-5, rtol=0)


def test_stateless_file_still_returns_final_states(tmp_path):
    """Runner.run(...).states on a stateless file: its final-state outputs (metadata
    ``final_states``) vs the float64 reference; they are not returned as model outputs."""
    model = MODELS["stacked_head"]
    x = seeded("unfused-stateless-final").normal(size=(2, STEPS, 4)).astype(np.float32)
    data = to_tflite_unfused(model, CompileOptions(batch=2, seq_len=STEPS))
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    out = open_runner(path, probe=False).run(x)
    want = reference_model(model, x)
    assert len(out) == 1
    np.testing.assert_allclose(out[0], want.output, atol=1e-5, rtol=0)
    for got_layer, want_layer in zip(out.states, want.states, strict=True):
        for (h, c), (rh, rc) in zip(got_layer, want_layer, strict=True):
            np.testing.assert_allclose(h, rh, atol=1e-5, rtol=0)
            np.testing.assert_allclose(c, rc, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("quantize", sorted(TOL))
@pytest.mark.parametrize("schedule", ["unrolled", "while"])
def test_japanese_vowels_reused_equals_fresh(schedule, quantize):
    """The bundled classifier, 370 test sequences: reused = fresh = 358/370 (the float64
    reference's score), on both op resolvers."""
    from edgelstm.importers.load import load_source

    model = load_source(MODEL_DIR / "japanese_vowels_lstm.npz")
    data = np.load(MODEL_DIR / "japanese_vowels.npz")
    x, y = data["x_test"].astype(np.float32), data["y_test"]
    assert (reference_model(model, x.astype(np.float64)).output.argmax(-1) == y).sum() == 358
    options = CompileOptions(
        seq_len=29,
        quantize=quantize,
        calibration=data["x_train"].astype(np.float32),
        unfused=UnfusedOptions(schedule),  # type: ignore[arg-type]
    )
    tflite = to_tflite_unfused(model, options)
    for resolver in RESOLVERS:
        again, fresh = _reused_and_fresh(tflite, x[:, None], resolver)
        np.testing.assert_array_equal(again, fresh, err_msg=resolver)
        assert (again[:, 0].argmax(-1) == y).sum() == 358, resolver


def test_stateful_model_gets_the_streaming_form():
    """A stateful model (or UnfusedOptions(state_inputs=True)) keeps its state inputs and
    the metadata ``state_io``; a stateless one names only its final-state outputs."""
    from dataclasses import replace

    from edgelstm.targets.tflite.metadata import decode_metadata

    model = MODELS["bidirectional"]

    def inputs_and_meta(m, **unfused):
        opts = CompileOptions(seq_len=STEPS, unfused=UnfusedOptions(**unfused))
        fb = load_model(to_tflite_unfused(m, opts))
        meta = decode_metadata(bytes(fb.buffers[fb.metadata[0].buffer].data))
        return len(fb.signatureDefs[0].inputs), meta

    for count, meta in (
        inputs_and_meta(replace(model, stateful=True)),
        inputs_and_meta(model, state_inputs=True),
    ):
        assert count == 5
        assert "final_states" not in meta
        assert meta["state_io"][0]["initial_h"] == "layer0/forward/initial_h"
    count, meta = inputs_and_meta(model)
    assert count == 1
    assert "state_io" not in meta
    assert [e["final_h"] for e in meta["final_states"]] == ["state_h_forward", "state_h_backward"]

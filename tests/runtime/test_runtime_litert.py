"""LiteRTRunner on full-int8 files: float inputs/states are quantized with each tensor's params."""

from __future__ import annotations

import numpy as np

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.options import CompileOptions, Int8Options
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite import to_tflite


def _int8_io_model():
    rng = np.random.default_rng(0)
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(4, 8, peephole=True, cell_clip=2.0), 3))
    calib = rng.normal(size=(64, 10, 4)).astype(np.float32)
    options = CompileOptions(
        batch=2, seq_len=10, quantize="int8", calibration=calib, int8=Int8Options(io=True)
    )
    return model, LiteRTRunner(to_tflite(model, options)), rng


def test_float_input_is_quantized_with_the_input_params():
    model, runner, rng = _int8_io_model()
    x = rng.normal(size=(2, 10, 4)).astype(np.float32)
    detail = runner._input
    assert np.dtype(detail["dtype"]) == np.int8
    scale, zp = detail["quantization"]
    by_hand = np.clip(np.round(x.astype(np.float64) / scale) + zp, -128, 127).astype(np.int8)
    from_float = runner.run(x)[0]
    np.testing.assert_array_equal(from_float, runner.run(by_hand)[0])
    out_scale, out_zp = runner.output_quantization[0]
    y = (from_float.astype(np.float64) - out_zp) * out_scale
    err = np.abs(y - reference_model(model, x).output).max()
    assert err <= 12 * out_scale, f"{err / out_scale:.1f} LSB"


def test_float_initial_states_are_quantized():
    model, runner, rng = _int8_io_model()
    x = rng.normal(size=(2, 10, 4)).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, (2, 8))
    c0 = rng.uniform(-1, 1, (2, 8))
    out = runner.run(x, [[(h0, c0)]])[0]
    zeros = runner.run(x)[0]
    assert not np.array_equal(out, zeros)  # the state was really set
    out_scale, out_zp = runner.output_quantization[0]
    y = (out.astype(np.float64) - out_zp) * out_scale
    want = reference_model(model, x, [[(h0, c0)]]).output
    assert np.abs(y - want).max() <= 12 * out_scale

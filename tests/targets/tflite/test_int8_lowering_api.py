"""``to_tflite`` honours ``Int8Options(lowering=...)``: "integer" builds the all-integer
lowering, "auto" (a measured choice) is refused with the functions that make it."""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm import CompileOptions, Int8Options, LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights
from edgelstm.errors import UnsupportedError
from edgelstm.inspect import inspect_model
from edgelstm.reference import reference_model
from edgelstm.runtime.litert import LiteRTRunner
from edgelstm.targets.tflite import to_tflite


def _model() -> LSTMModel:
    spec = LSTMSpec(n_input=3, n_cell=8, peephole=True)
    return LSTMModel([LSTMLayer(LSTMWeights.random(spec, np.random.default_rng(3)))])


def _options(lowering: str, x: np.ndarray) -> CompileOptions:
    return CompileOptions(
        batch=1, seq_len=x.shape[1], quantize="int8", calibration=x,
        int8=Int8Options(lowering=lowering),
    )  # fmt: skip


def test_integer_lowering_through_to_tflite(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 6, 3)).astype(np.float32)
    data = to_tflite(_model(), _options("integer", x))
    path = tmp_path / "int.tflite"
    path.write_bytes(data)
    ops = {op.op for op in inspect_model(path).ops}
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops and "WHILE" in ops
    runner = LiteRTRunner(data)
    y = runner.run(x[:1])[0]
    scale, zero = runner.output_quantization[0]
    ref = reference_model(_model(), x[:1].astype(np.float64)).output
    assert np.abs((y.astype(np.float64) - zero) * scale - ref).max() < 0.05


def test_auto_is_refused_by_to_tflite_with_the_way_out():
    x = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    with pytest.raises(UnsupportedError, match=r"to_tflite_int8_choice.*--int8-lowering auto"):
        to_tflite(_model(), _options("auto", x))

"""Compensated codes for onnxruntime's DynamicQuantizeLSTM: more accurate than ORT's own
full-range nearest codes on the same grid, on held-out inputs (onnxruntime runs both files;
the float64 reference is the oracle)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model, to_onnx
from edgelstm.ir.options import CompileOptions
from edgelstm.quant.calibrate import calibrate
from edgelstm.targets.onnx.compensate import compensate_lstm_weights
from edgelstm.targets.onnx.dynamic import _ort_quantize_dynamic


def _inputs(rng, n: int, steps: int, width: int) -> np.ndarray:
    """Non-negative, correlated features (ReLU outputs of a random mix), like a CNN's."""
    mix = rng.normal(size=(width, width)) / np.sqrt(width)
    return np.maximum(rng.normal(size=(n, steps, width)) @ mix + 0.3, 0).astype(np.float32)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def test_compensated_codes_beat_nearest_on_held_out_inputs():
    rng = np.random.default_rng(7)
    spec = LSTMSpec(n_input=24, n_cell=32)
    base = LSTMWeights.random(spec, rng, scale=0.3)
    tensors = dict(base.tensors)
    for name, value in tensors.items():  # trained-like: a few large weights set the grid
        if value.ndim == 2:
            v = value.copy()
            v.flat[rng.choice(v.size, 3, replace=False)] = rng.choice([-4.0, 4.0], 3)
            tensors[name] = v
    model = LSTMModel([LSTMLayer(LSTMWeights(spec, tensors))])
    cal, held = _inputs(rng, 32, 40, 24), _inputs(rng, 8, 40, 24)
    floats = to_onnx(model, CompileOptions(batch=None))
    assert [n.op_type for n in floats.graph.node].count("LSTM") == 1
    full = onnx.load_model_from_string(_ort_quantize_dynamic(floats))
    ours = onnx.ModelProto()
    ours.CopyFrom(full)
    stats = calibrate(model, cal, progress=False).stats
    hess = [[d.moments.gate_hessian() for d in layer] for layer in stats]
    assert compensate_lstm_weights(ours, floats, hess) == 1
    codes = {
        i.name: numpy_helper.to_array(i)
        for i in ours.graph.initializer
        if i.name.endswith("_quantized")
    }
    assert codes and all(
        c.dtype == np.int8 and np.abs(c.astype(int)).max() <= 127 for c in codes.values()
    )
    ref = reference_model(model, held).output
    err = {
        k: float(np.sqrt(np.mean((_run(m, held) - ref) ** 2)))
        for k, m in (("ort", full), ("ours", ours))
    }
    print(
        f"\nheld-out RMSE: ORT full-range nearest {err['ort']:.2e}, compensated {err['ours']:.2e}"
    )
    assert err["ours"] < 0.8 * err["ort"], err

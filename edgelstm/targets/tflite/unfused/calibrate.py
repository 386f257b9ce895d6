"""Activation ranges for the static-int8 unfused lowering (int8 matrix products).

Every int8 FULLY_CONNECTED needs fixed (scale, zero point) for its input and output. They
come from running the float64 reference on calibration data (``options.calibration``,
[N, T, I]; seeded N(0, 1) sequences when none is given), layer by layer as
:func:`edgelstm.reference.reference_model` does:

* ``input``/``xw`` per layer: the layer input and the hoisted GEMM's output X W^T + b;
* per direction: ``h`` (the recurrent FC input: every h fed back, including the zero
  initial state), ``rh`` (R h), and with projection ``m`` = o * act(c) (from
  :func:`edgelstm.quant.calibrate`'s ``hidden`` observer) and the projection output.

Ranges are the observed min/max extended to contain 0 (:func:`asymmetric_int8`), so a zero
state is exact. Percentile clipping is not used: an LSTM's outputs live at the edges of
their range (saturated gates), where clipping errors feed back through the recurrence.
"""

from __future__ import annotations

import numpy as np

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.quant.qparams import QuantParams, asymmetric_int8
from edgelstm.reference import reference
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.unfused.cell import StaticQuant
from edgelstm.targets.tflite.unfused.params import direction_params

DEFAULT_SEQUENCES = 16
DEFAULT_STEPS = 50


def quantization(params: QuantParams) -> Quantization:
    return Quantization((params.scale,), (params.zero_point,))


def _range(values: np.ndarray) -> Quantization:
    return quantization(asymmetric_int8(float(np.min(values)), float(np.max(values))))


def calibration_data(model: LSTMModel, options: CompileOptions) -> np.ndarray:
    """``options.calibration`` batch-major, or seeded N(0, 1) sequences."""
    if options.calibration is not None:
        x = np.asarray(options.calibration, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        return x
    steps = options.seq_len or DEFAULT_STEPS
    rng = np.random.default_rng(0)
    return rng.standard_normal((DEFAULT_SEQUENCES, steps, model.n_input))


def static_params(model: LSTMModel, options: CompileOptions) -> dict:
    """{("input", k), ("xw", k), ("cell", k, d)} -> Quantization / StaticQuant."""
    from edgelstm.quant import calibrate

    xs = calibration_data(model, options)
    hidden = None
    if any(d.spec.projection for layer in model.layers for d in layer.directions):
        hidden = calibrate(model, xs.astype(np.float32), progress=False)
    out: dict = {}
    seq = xs
    for k, layer in enumerate(model.layers):
        params = [direction_params(w) for w in layer.directions]
        out["input", k] = _range(seq)
        xw = []
        outs = []
        for d, (weights, p) in enumerate(zip(layer.directions, params, strict=True)):
            bias = p.bias if p.bias_in_gemm else np.zeros_like(p.bias)
            xw.append(seq @ p.w.astype(np.float64).T + bias)
            y, _ = reference(weights, seq[:, ::-1] if layer.runs_reversed(d) else seq)
            prev = np.concatenate([np.zeros_like(y[:, :1]), y[:, :-1]], axis=1)
            rh = prev @ p.r.astype(np.float64).T
            m = proj = None
            if p.proj is not None and hidden is not None:
                obs = hidden.direction(k, d).observer("hidden")
                m = _range(np.array([obs.lo, obs.hi]))
                proj = _range(y)
            out["cell", k, d] = StaticQuant(h=_range(prev), rh=_range(rh), m=m, proj=proj)
            outs.append(y[:, ::-1] if layer.realigns(d) else y)
        out["xw", k] = _range(np.concatenate(xw, axis=-1))
        seq = np.concatenate(outs, axis=-1)
    return out

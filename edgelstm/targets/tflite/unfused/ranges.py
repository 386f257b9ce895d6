"""Activation params of the static-int8 unfused lowering, from the one calibrator.

Every int8 FULLY_CONNECTED needs fixed (scale, zero point) for its input and output.
:func:`edgelstm.quant.calibrate.calibrate_products` observes them in one float64 reference
pass over the calibration data (``options.calibration``, [N, T, I]; seeded N(0, 1) sequences
when none is given), with the products laid out as this lowering stacks them
(:func:`.params.direction_params`):

* per layer: ``input`` (the layer input) and ``xw`` (the hoisted GEMM's X W^T + b, every
  direction);
* per direction: ``h`` and ``rh`` (the recurrent FC's input h_{t-1} and output R h), and with
  projection ``m`` = o * act(c) (the ``hidden`` observer) and the projection output.

Ranges are the observed min/max extended to contain 0 (:func:`asymmetric_int8`), so a zero
state is exact. Percentile clipping is not used: an LSTM's outputs live at the edges of
their range (saturated gates), where clipping errors feed back through the recurrence.
This module only turns the observations into the builder's ``Quantization``.
"""

from __future__ import annotations

import numpy as np

from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.quant.batches import validate_calibration
from edgelstm.quant.calibrate import (
    BATCH_SIZE,
    Calibration,
    Products,
    calibrate,
    calibrate_products,
)
from edgelstm.quant.estimators import Observer
from edgelstm.quant.qparams import asymmetric_int8
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.quant_desc import quantization
from edgelstm.targets.tflite.unfused.cell import StaticQuant
from edgelstm.targets.tflite.unfused.params import DirectionParams, direction_params

DEFAULT_SEQUENCES = 16
DEFAULT_STEPS = 50


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


def _products(p: DirectionParams) -> Products:
    return Products(p.w, p.r, p.bias if p.bias_in_gemm else np.zeros_like(p.bias))


def _int8(*observers: Observer) -> Quantization:
    """Asymmetric int8 over the union of the observed ranges."""
    lo = min(o.lo for o in observers)
    hi = max(o.hi for o in observers)
    return quantization(asymmetric_int8(lo, hi))


def _hidden_source(model: LSTMModel, xs: np.ndarray, calib: Calibration) -> Calibration:
    """Where the projection input's range comes from: the int8 calibrator's own pass over
    the float32 data (as the fused int8 model calibrates). That is ``calib`` itself when the
    data is float32 already and fits one calibration batch (the same arithmetic)."""
    xs32 = xs.astype(np.float32)
    if len(xs) <= BATCH_SIZE and np.array_equal(xs32, xs):
        return calib
    return calibrate(model, xs32, progress=False)


def static_params(model: LSTMModel, options: CompileOptions) -> dict:
    """{("input", k), ("xw", k), ("cell", k, d)} -> Quantization / StaticQuant."""
    xs = calibration_data(model, options)
    projection = any(v.weights.spec.projection for v in model.walk())
    if projection:  # the calibrator's data checks come first (CalibrationError)
        validate_calibration(xs.astype(np.float32), model.n_input)
    products = [
        [_products(direction_params(v.weights)) for v in visit.directions]
        for visit in model.walk_layers()
    ]
    calib = calibrate_products(model, xs, products)
    hidden = _hidden_source(model, xs, calib) if projection else None
    out: dict = {}
    for k, stats in enumerate(calib.stats):
        out["input", k] = _int8(stats[0].observers["input"])
        out["xw", k] = _int8(*(s.observers["xw"] for s in stats))
        for d, s in enumerate(stats):
            m = proj = None
            if hidden is not None and s.weights.spec.projection:
                m = _int8(hidden.direction(k, d).observers["hidden"])
                proj = _int8(s.observers["output"])
            out["cell", k, d] = StaticQuant(
                h=_int8(s.observers["h"]), rh=_int8(s.observers["rh"]), m=m, proj=proj
            )
    return out


OUTPUT_HEADROOM = 1.25
"""Graph-output range over the calibrated one (the int8 output saturates otherwise on
held-out data), clamped to what the value can reach: |o tanh(c)| < 1 without projection,
the clips, [0, 1] after a softmax. The same rule (and factor) as the fused int8 file's
state range in :mod:`edgelstm.quant.plan`; measured on the feature matrix: a peephole cell
on held-out data 0.165 -> 0.0044 max error on TFLM."""


def _reach(lo: float, hi: float, bound: float) -> tuple[float, float]:
    """[lo, hi] widened by :data:`OUTPUT_HEADROOM`, not past +-``bound``."""
    lo2, hi2 = lo * OUTPUT_HEADROOM, hi * OUTPUT_HEADROOM
    return max(lo2, min(lo, -bound)), min(hi2, max(hi, bound))


def output_params(model: LSTMModel, options: CompileOptions) -> list[Quantization]:
    """int8 params of the graph outputs (``output``, then with ``return_state`` the last
    layer's h/c per direction), from their float64 reference range on the calibration data
    with :data:`OUTPUT_HEADROOM`: the int8 I/O of the TFLite Micro profile."""
    from edgelstm.reference import reference_model

    xs = calibration_data(model, options)
    ref = reference_model(model, np.swapaxes(xs, 0, 1) if model.time_major else xs)
    spec = model.layers[-1].forward.spec
    h_bound = np.inf if spec.projection else 1.0
    h_bound = min(h_bound, spec.proj_clip) if spec.proj_clip > 0 else h_bound
    c_bound = spec.cell_clip if spec.cell_clip > 0 else np.inf
    softmax = model.head is not None and model.head.activation == "softmax"
    bounds = [h_bound if model.head is None else np.inf]
    values = [ref.output]
    if model.return_state:
        for h, c in ref.states[-1]:
            values += [h, c]
            bounds += [h_bound, c_bound]
    out = []
    for k, (v, bound) in enumerate(zip(values, bounds, strict=True)):
        lo, hi = _reach(float(v.min()), float(v.max()), bound)
        if k == 0 and softmax:
            lo, hi = 0.0, 1.0  # probabilities: the whole range, exactly
        out.append(quantization(asymmetric_int8(lo, hi)))
    return out

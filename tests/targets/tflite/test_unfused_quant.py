"""Quantized unfused lowerings: dynamic-range (int8 per-channel weights, float activations)
and static int8 (int8 x int8 matrix products, float gate math): stored types and bounded
error vs the float64 reference, across the feature matrix.

Measured on 16->32 (Glorot-scale weights, cell clip 3, 4 x 20 steps): dynamic 0.003-0.011,
the same as the fused hybrid op (0.002-0.012); static int8 0.006-0.056 (layer norm is the
worst: it renormalises the int8 rounding of small pre-activations).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _tflite_helpers import seeded

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.model import LSTMLayer
from edgelstm.ir.options import CompileOptions, UnfusedOptions
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite.schema import BuiltinOperator, TensorType, load_model
from edgelstm.targets.tflite.unfused.emit import to_tflite_unfused

DYNAMIC_TOL = 2e-2
INT8_TOL = 1e-1
FEATURES = list(itertools.product((False, True), (False, True), (False, True), (False, True)))


def _model(cifg, peephole, projection, layer_norm, key=()):
    rng = seeded("unfused-quant", cifg, peephole, projection, layer_norm, *key)
    spec = LSTMSpec(
        n_input=12,
        n_cell=24,
        n_output=16 if projection else None,
        cifg=cifg,
        peephole=peephole,
        projection=projection,
        projection_bias=projection,
        layer_norm=layer_norm,
        cell_clip=3.0,
        proj_clip=2.0 if projection else 0.0,
    )
    return LSTMModel.of(LSTMWeights.random(spec, seed=int(rng.integers(1 << 30)))), rng


def _error(model, rng, quantize, **schedule) -> float:
    x = rng.normal(size=(3, 16, model.n_input)).astype(np.float32)
    calibration = rng.normal(size=(8, 16, model.n_input)).astype(np.float32)
    options = CompileOptions(
        batch=3,
        seq_len=16,
        quantize=quantize,
        calibration=calibration,
        unfused=UnfusedOptions(**schedule),
    )
    got = LiteRTRunner(to_tflite_unfused(model, options)).run(x)[0]
    return float(np.max(np.abs(got - reference_model(model, x).output)))


@pytest.mark.parametrize(("cifg", "peephole", "projection", "layer_norm"), FEATURES)
def test_dynamic_error_is_bounded(cifg, peephole, projection, layer_norm):
    model, rng = _model(cifg, peephole, projection, layer_norm)
    assert _error(model, rng, "dynamic") <= DYNAMIC_TOL


@pytest.mark.parametrize(("cifg", "peephole", "projection", "layer_norm"), FEATURES[::3])
def test_int8_error_is_bounded(cifg, peephole, projection, layer_norm):
    model, rng = _model(cifg, peephole, projection, layer_norm)
    assert _error(model, rng, "int8", schedule="while", chunk=2) <= INT8_TOL


def test_bidirectional_stack_quantized():
    rng = seeded("unfused-quant-bidi")
    layer0 = LSTMLayer(
        *(LSTMWeights.random(LSTMSpec(n_input=6, n_cell=10), seed=s) for s in (1, 2))
    )
    layer1 = LSTMLayer(LSTMWeights.random(LSTMSpec(n_input=20, n_cell=8), seed=3))
    model = LSTMModel(layers=(layer0, layer1))
    assert _error(model, rng, "dynamic") <= DYNAMIC_TOL
    assert _error(model, rng, "int8") <= INT8_TOL


def _fc_types(data: bytes) -> list[tuple[int, int, int]]:
    """(input type, weight type, weight scale count) of every FULLY_CONNECTED, all subgraphs."""
    m = load_model(data)
    out = []
    for sg in m.subgraphs:
        for op in sg.operators:
            if m.operatorCodes[op.opcodeIndex].builtinCode == BuiltinOperator.FULLY_CONNECTED:
                x, w = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]]
                out.append((x.type, w.type, len(w.quantization.scale)))
    return out


def test_stored_types():
    model, _ = _model(False, False, True, False)
    for quantize, input_type in (("dynamic", TensorType.FLOAT32), ("int8", TensorType.INT8)):
        data = to_tflite_unfused(model, CompileOptions(seq_len=4, quantize=quantize))
        fcs = _fc_types(data)
        assert len(fcs) >= 3  # the input GEMM, recurrent and projection FCs
        for x_type, w_type, scales in fcs:
            assert (x_type, w_type) == (input_type, TensorType.INT8)
            assert scales > 1  # per-channel

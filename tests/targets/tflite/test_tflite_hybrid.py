"""Dynamic-range (hybrid) files: int8 symmetric per-tensor weights, float biases, op v3.

Errors vs the float64 reference are measured for every feature combination and bounded;
the file of a 256-unit layer is about a quarter of the float one; reading a hybrid file back
recovers the weights within half a quantization step.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from _tflite_helpers import seeded

from edgelstm import LSTMModel, LSTMSpec, LSTMWeights, reference_model
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.roles import BY_NAME
from edgelstm.quant.tensor import quantize_symmetric
from edgelstm.runtime import LiteRTRunner
from edgelstm.targets.tflite import to_tflite
from edgelstm.targets.tflite.hybrid import QUANTIZED_KINDS
from edgelstm.targets.tflite.reader import model_from_bytes
from edgelstm.targets.tflite.schema import TensorType, load_model

HYBRID = CompileOptions(batch=None, quantize="dynamic")
BOUND = 0.03
"""Max abs output error allowed for T <= 12 random models (measured max ~0.01)."""
COMBOS = list(itertools.product((False, True), (False, True), (False, True), (False, True)))


def _spec(cifg, peephole, projection, layer_norm, n_cell=24) -> LSTMSpec:
    return LSTMSpec(
        n_input=16,
        n_cell=n_cell,
        n_output=12 if projection else None,
        cifg=cifg,
        peephole=peephole,
        projection=projection,
        projection_bias=projection,
        layer_norm=layer_norm,
        cell_clip=3.0 if peephole else 0.0,
        proj_clip=0.8 if projection and layer_norm else 0.0,
    )


def _hybrid_error(weights: LSTMWeights, rng: np.random.Generator, steps: int = 12) -> float:
    x = rng.normal(size=(2, steps, weights.spec.n_input)).astype(np.float32)
    (got,) = LiteRTRunner(to_tflite(weights, HYBRID)).run(x)
    return float(np.max(np.abs(got - reference_model(weights, x).output)))


@pytest.mark.parametrize(("cifg", "peephole", "projection", "layer_norm"), COMBOS)
def test_hybrid_error_is_bounded(cifg, peephole, projection, layer_norm):
    rng = seeded("hybrid", cifg, peephole, projection, layer_norm)
    weights = LSTMWeights.random(_spec(cifg, peephole, projection, layer_norm), seed=5)
    err = _hybrid_error(weights, rng)
    assert 0 < err <= BOUND, err  # > 0: really quantized


def test_hybrid_tensor_types_and_op_version():
    weights = LSTMWeights.random(_spec(False, True, True, True), seed=1)
    m = load_model(to_tflite(weights, HYBRID))
    g = m.subgraphs[0]
    # the LSTM op, after the two ADDs that reset its states on every invoke
    (op,) = [o for o in g.operators if m.operatorCodes[o.opcodeIndex].builtinCode == 44]
    assert m.operatorCodes[op.opcodeIndex].version == 3
    assert op.builtinOptions.asymmetricQuantizeInputs
    for name, role in BY_NAME.items():
        if not role.is_weight or not role.present(weights.spec):
            continue
        t = g.tensors[op.inputs[role.index]]
        if role.kind in QUANTIZED_KINDS:
            assert t.type == TensorType.INT8, name
            assert list(t.quantization.zeroPoint) == [0] and len(t.quantization.scale) == 1
        else:
            assert t.type == TensorType.FLOAT32, name
    # peephole weights have input_to_forget's type (the kernel requires it)
    types = {n: g.tensors[op.inputs[BY_NAME[n].index]].type for n in BY_NAME}
    assert types["cell_to_forget_weights"] == types["input_to_forget_weights"]


def test_quantize_symmetric_edges():
    zero = quantize_symmetric(np.zeros((2, 3)), divisor="exact")
    assert zero.params.scale == 1.0 and not zero.data.any()
    qt = quantize_symmetric(np.array([-2.0, 1.0, 2.0]), divisor="exact")
    assert list(qt.data) == [-127, 64, 127] and qt.params.scale == pytest.approx(2 / 127)


def test_hybrid_file_is_a_quarter_and_accurate_at_256_units():
    spec = LSTMSpec(128, 256)
    weights = LSTMWeights.random(spec, seed=3)
    float_size = len(to_tflite(weights))
    hybrid_size = len(to_tflite(weights, HYBRID))
    assert 0.24 <= hybrid_size / float_size <= 0.27
    assert _hybrid_error(weights, seeded("h256"), steps=20) <= BOUND


@pytest.mark.parametrize(("cifg", "peephole", "projection", "layer_norm"), COMBOS[::5])
def test_hybrid_read_back_within_half_a_step(cifg, peephole, projection, layer_norm):
    weights = LSTMWeights.random(_spec(cifg, peephole, projection, layer_norm), seed=9)
    model = LSTMModel.of(weights, provenance={"forget_bias": 1.0})
    back = model_from_bytes(to_tflite(model, HYBRID))
    got = back.layers[0].forward
    assert got.spec == weights.spec
    assert back.provenance == {"forget_bias": 1.0}
    for name, arr in weights.tensors.items():
        if BY_NAME[name].kind in QUANTIZED_KINDS:
            step = np.max(np.abs(arr)) / 127
            assert np.max(np.abs(got[name] - arr)) <= step / 2 + 1e-7, name
        else:
            assert np.array_equal(got[name], arr), name

"""Dynamic int8 ONNX (int8 weights, float activations): op types, size, bounded error."""

from __future__ import annotations

import numpy as np
import pytest
from _onnx_helpers import emit_checked, max_err, op_types, run

from edgelstm import LSTMLayer, LSTMModel, LSTMSpec, LSTMWeights, reference_model, to_onnx
from edgelstm.ir.options import CompileOptions, OnnxOptions

# "portable": edgelstm's all-int8 graph (the default may keep ORT's own file, whose Scan
# body ORT leaves float)
DYNAMIC = CompileOptions(batch=1, quantize="dynamic", onnx=OnnxOptions(dynamic_priority="portable"))
ERROR_BOUND = 0.03
"""Max |int8 - float64 reference| allowed on outputs in (-1, 1) (measured ~0.005-0.01)."""


def _body_ops(proto) -> set[str]:
    return {n.op_type for node in proto.graph.node for a in node.attribute if a.g for n in a.g.node}


@pytest.mark.parametrize(
    ("spec", "fused"),
    [
        (LSTMSpec(16, 64, peephole=True), True),
        (LSTMSpec(16, 64, 32, projection=True, cell_clip=3.0, layer_norm=True), False),
    ],
    ids=["fused", "composite"],
)
def test_dynamic_int8(spec: LSTMSpec, fused: bool) -> None:
    model = LSTMModel((LSTMLayer(LSTMWeights.random(spec, seed=5)),))
    float_proto = emit_checked(model, CompileOptions(batch=1))
    proto = emit_checked(model, DYNAMIC)
    ops = op_types(proto)
    if fused:
        assert ops.count("DynamicQuantizeLSTM") == 1 and "LSTM" not in ops
    else:
        assert "MatMulInteger" in ops and "Scan" in ops  # hoisted X·W
        assert "MatMulInteger" in _body_ops(proto)  # recurrent h·R inside the Scan
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["edgelstm.quantize"] == "dynamic" and "edgelstm.weights_digest" in meta
    float_size, int8_size = len(float_proto.SerializeToString()), len(proto.SerializeToString())
    assert int8_size < 0.4 * float_size, (int8_size, float_size)

    x = np.random.default_rng(0).normal(size=(1, 20, 16))
    ref = reference_model(model, x)
    out = run(proto, x)
    err_y = max_err(out[0], ref.output)
    err_c = max_err(out[2], ref.states[0][0][1])
    assert err_y <= ERROR_BOUND, err_y
    assert err_c <= 2 * ERROR_BOUND, err_c
    assert max_err(run(float_proto, x)[0], ref.output) <= 1e-5
    print(
        f"dynamic int8 {'fused' if fused else 'composite'}: max err y {err_y:.4f}, "
        f"c {err_c:.4f}; size {int8_size} vs {float_size} bytes"
    )


def test_dynamic_int8_is_deterministic() -> None:
    model = LSTMModel.of(LSTMWeights.random(LSTMSpec(8, 16), seed=1))
    assert (
        to_onnx(model, DYNAMIC).SerializeToString() == to_onnx(model, DYNAMIC).SerializeToString()
    )

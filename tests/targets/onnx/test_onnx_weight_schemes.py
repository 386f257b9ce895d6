"""Pair-safe int8 weights: the saturation rule, checked on onnxruntime's own integer kernels.

Oracles: exact int64 matrix products in numpy (the kernel must reproduce them bit for bit),
and the float64 reference of trained models (the pair-safe weights must be more accurate than
onnxruntime's 7-bit ``reduce_range`` and never saturate).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from _onnx_helpers import run
from _paths import MODELS
from onnx import TensorProto, helper, numpy_helper

from edgelstm import UnsupportedError, from_npz, reference_model, to_onnx
from edgelstm.ir.options import CompileOptions, OnnxOptions
from edgelstm.quant.tensor import PAIR_LIMIT, max_pair_sum, pair_safe_int8, seven_bit_int8
from edgelstm.targets.onnx.weight_schemes import requantize


def _matmul_integer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """onnxruntime's MatMulInteger (MLAS u8 x s8 kernel) of uint8 ``a`` and int8 ``b``."""
    import onnxruntime as ort

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "mmi",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, list(a.shape))],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, {"a": a})[0]


@pytest.mark.parametrize("k", [64, 63, 256])
def test_pairs_at_the_limit_are_exact_on_the_kernel(k: int) -> None:
    """Worst case for vpmaddubsw: every activation 255, every pair summing to +-128."""
    rng = np.random.default_rng(k)
    first = rng.integers(1, 128, size=(k // 2 + 1, 32))
    pairs = np.stack([first, PAIR_LIMIT - first], axis=1).reshape(-1, 32)[:k]
    b = (pairs * rng.choice([-1, 1], size=(1, 32))).astype(np.int8)  # same sign down a column
    assert max_pair_sum(b) == PAIR_LIMIT
    a = np.full((3, k), 255, np.uint8)
    a[1] = rng.integers(0, 256, size=k)
    exact = a.astype(np.int64) @ b.astype(np.int64)
    np.testing.assert_array_equal(_matmul_integer(a, b), exact)


def test_pair_safe_invariants_on_random_and_heavy_tailed_weights() -> None:
    rng = np.random.default_rng(0)
    for raw in (
        rng.normal(size=(257, 96)),
        rng.standard_t(2, size=(128, 64)),  # heavy tails: outliers beside small weights
        rng.uniform(-1, 1, size=(64, 32)),
        np.full((8, 4), 0.5),  # every pair at the maximum: exactly 7 bits
    ):
        w = raw.astype(np.float32)
        pair = pair_safe_int8(w)
        q, scale = pair.data, pair.params.scale
        scale7 = seven_bit_int8(w).params.scale
        assert q.dtype == np.int8 and int(np.abs(q.astype(int)).max()) <= 127
        assert max_pair_sum(q) <= PAIR_LIMIT
        assert scale <= scale7 * (1 + 1e-6)  # never coarser than 7 bits
        assert np.abs(q * scale - w).max() <= scale / 2 * (1 + 1e-5)  # plain rounding, no clip
    outlier = np.zeros((16, 4), np.float32)
    outlier[::2] = 0.01
    outlier[0, 0] = 1.0  # its pair partner is 0: the full 8-bit step
    assert pair_safe_int8(outlier).params.scale == pytest.approx(1.0 / 127, rel=1e-6)


def test_zero_weights() -> None:
    zero = pair_safe_int8(np.zeros((4, 3), np.float32))
    assert not zero.data.any() and zero.params.scale == 1.0


@pytest.mark.parametrize("name", ["char_lm_lstm.npz", "japanese_vowels_cifg_ln_lstm.npz"])
def test_pair_safe_beats_7bit_on_trained_models(name: str) -> None:
    """Same graph, same kernels: only the weights differ. RMSE vs the float64 reference."""
    model = from_npz(MODELS / name)
    portable = OnnxOptions(dynamic_priority="portable")  # edgelstm's all-int8 graph
    options = CompileOptions(batch=1, quantize="dynamic", onnx=portable)
    pair = to_onnx(model, options)
    floats = to_onnx(model, CompileOptions(batch=1))
    seven = onnx.ModelProto()
    seven.CopyFrom(pair)
    assert requantize(seven, floats, "int8-7bit") >= 2
    rng = np.random.default_rng(1)
    if model.n_input == 99:  # the char LM reads one-hot characters
        x = np.eye(99, dtype=np.float32)[rng.integers(0, 99, size=(1, 200))]
    else:
        x = rng.normal(size=(1, 29, model.n_input)).astype(np.float32)
    ref = reference_model(model, x).output

    def rmse(proto: onnx.ModelProto) -> float:
        return float(np.sqrt(np.mean((run(proto, x)[0] - ref) ** 2)))

    e_pair, e_seven = rmse(pair), rmse(seven)
    print(f"{name}: RMSE pair-safe {e_pair:.3e}, 7-bit {e_seven:.3e} ({e_pair / e_seven:.2f}x)")
    assert e_pair < 0.95 * e_seven


def test_requantize_leaves_unknown_layouts_alone() -> None:
    model = from_npz(MODELS / "char_lm_lstm.npz")
    proto = to_onnx(model, CompileOptions(batch=1, quantize="dynamic"))
    before = proto.SerializeToString()
    empty = helper.make_model(helper.make_graph([], "empty", [], []))
    assert requantize(proto, empty, "int8-pair") == 0
    assert proto.SerializeToString() == before
    with pytest.raises(UnsupportedError, match="weight scheme"):
        requantize(proto, to_onnx(model, CompileOptions(batch=1)), "int4")

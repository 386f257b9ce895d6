"""The integer (int16) pieces of the TFLite Micro lowering, run on TFLM's own kernels.

Oracle: numpy float64 on the same (dequantized) int16 input; the ops under test are TFLM's
int16 MEAN, SUB, SQUARED_DIFFERENCE, MAXIMUM, RSQRT, MUL, LOGISTIC and TANH.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgelstm.ir.roles import name_of
from edgelstm.ir.spec import LSTMSpec
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.tflite.builder import GraphBuilder
from edgelstm.targets.tflite.unfused.icell import Int16Ops, IntCell
from edgelstm.targets.tflite.unfused.iranges import (
    Q15,
    IntCellQuant,
    LayerNormQuant,
    pot_scale,
    q16,
)
from edgelstm.targets.tflite.unfused.ops import Ops
from edgelstm.targets.tflite.unfused.params import direction_params

runtime = pytest.importorskip("tflite_micro", reason="the tflm extra is not installed").runtime


def _run(g: GraphBuilder, x: np.ndarray) -> list[np.ndarray]:
    interp = runtime.Interpreter.from_bytes(g.finish(), arena_size=1 << 18)
    interp.set_input(x, 0)
    interp.invoke()
    return [np.array(interp.get_output(i)) for i in range(len(g._outputs))]


def test_pot_scale_covers_the_range_with_headroom():
    for peak in (0.01, 0.3, 1.0, 7.9, 100.0):
        s = pot_scale(peak)
        assert np.log2(s) == int(np.log2(s))  # a power of two
        assert peak * 1.5 <= 32767 * s < peak * 3.0 + 1e-12


@pytest.mark.parametrize("n", [2, 8, 32])
def test_integer_layer_norm_spans_variances_a_fixed_scale_cannot(n):
    """Row variances over 2^-14..2^2: one int16 variance at a fixed scale rounds the small
    ones to 0-1 codes (and rsqrt of the large ones to a few codes); the two-stage
    normalisation stays within 3% of float64 (measured max 1.6% / 1.2% / 1.1% for
    n = 2 / 8 / 32; the rest is z's own int16 rounding)."""
    rng = np.random.default_rng(n)
    batch = 64
    e = rng.normal(size=(batch, n))
    e = (e - e.mean(-1, keepdims=True)) / e.std(-1, keepdims=True)  # unit row variance
    std = 2.0 ** rng.uniform(-7, 1, size=(batch, 1))  # variances over 2^-14..2^2
    z = rng.normal(size=(batch, 1)) + std * e
    d = z - z.mean(-1, keepdims=True)
    var = (d * d).mean(-1, keepdims=True)
    want = d / np.sqrt(var + 1e-8)
    root = np.sqrt(n)
    vs = pot_scale((d * d).max())
    lq = LayerNormQuant(
        d=pot_scale(np.abs(d).max()), var=vs, rs=pot_scale(vs**-0.5, 1.0),
        n1=pot_scale(1.25 * root, 1.0), sq2=pot_scale(1.6 * n, 1.0), var2=pot_scale(1.6, 1.0),
        rs2=pot_scale(8.0, 1.0), n=pot_scale(root, 1.0), nc=pot_scale(root), out=pot_scale(root),
    )  # fmt: skip
    spec = LSTMSpec(1, n, layer_norm=True)
    weights = LSTMWeights.random(spec, seed=0)
    tensors = dict(weights.tensors)
    for g in ("input", "forget", "cell", "output"):  # coefficient 1, bias 0: LN itself
        tensors[name_of("ln", g)] = np.ones(n, np.float32)
        tensors[name_of("bias", g)] = np.zeros(n, np.float32)
    params = direction_params(LSTMWeights(spec, tensors))
    sz = pot_scale(np.abs(z).max())
    q = IntCellQuant(x=1.0, xw=1.0, h=Q15, rh=1.0, z=sz, c=1.0, ln={"forget": lq})
    g = GraphBuilder("ln")
    ops = Ops(g, "")
    cell = IntCell(ops, params, q, "t")
    x = ops.tensor("input", [batch, n], "int16", q16(sz))
    g.add_input("input", x)
    out = cell.layer_norm(x, "forget")
    g.add_output("n", out)
    codes = np.clip(np.rint(z / sz), -32767, 32767).astype(np.int16)
    got = _run(g, codes)[0] * float(ops.quant[out].scale[0])
    rel = np.abs(got - want).max(-1) / np.abs(want).max(-1)
    assert rel.max() < 0.03, rel.max()
    small = var[:, 0] < 4 * vs  # rows whose variance is under 4 codes of a fixed-scale var
    assert small.sum() >= 4


def test_int16_logistic_and_tanh_are_q15():
    """TFLM's int16 LOGISTIC/TANH from a power-of-two input scale: within 2^-12 of float64."""
    x = np.linspace(-9, 9, 257)
    scale = pot_scale(9.0)
    g = GraphBuilder("act")
    i16 = Int16Ops(Ops(g, ""))
    t = i16.ops.tensor("input", [1, x.size], "int16", q16(scale))
    g.add_input("input", t)
    g.add_output("sigmoid", i16.logistic(t))
    g.add_output("tanh", i16.tanh(t))
    codes = np.rint(x / scale).astype(np.int16)[None]
    sig, tanh = (v[0] * Q15 for v in _run(g, codes))
    xq = codes[0] * scale
    assert np.abs(sig - 1 / (1 + np.exp(-xq))).max() < 2**-12
    assert np.abs(tanh - np.tanh(xq)).max() < 2**-12

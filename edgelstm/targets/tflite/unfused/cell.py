"""One LSTM time step as elementwise TFLite ops around one recurrent FULLY_CONNECTED.

Given the step's input contribution ``xw_t`` [B, G*N] (from the hoisted GEMM, biases
already in when there is no layer norm), ``h`` [B, P] and ``c`` [B, N], :meth:`Cell.step`
emits (canonical semantics, :mod:`edgelstm.reference`):

    z = xw_t + FC(h, R)                          one GEMV for all gates
    z_g (+= c * peephole_g for input/forget)      split per gate
    z_g = LN(z_g) * coef_g + bias_g               layer norm: population variance, eps 1e-8
    f = σ(z_f); g = act(z_c); i = σ(z_i)          CIFG: c' = g + f (c - g)  (= f c + (1-f) g)
    c' = f c + i g; c' = clip(c', ±cell_clip)
    o = σ(z_o (+ c' * peephole_o) ...)
    h' = o * act(c'); h' = clip(FC(h', P, b_P), ±proj_clip) with projection

Without peepholes, layer norm runs once on [B, G, N] (one MEAN, one variance for all gates).
Quantization of the matrix products (``mode``): "none" float FCs; "dynamic" int8
per-channel weights with float activations (the FC quantizes its input row at run time,
asymmetric); "int8" static int8: h (and the projection input) QUANTIZEd with calibrated
parameters, int8 x int8 FC with an int8 output, DEQUANTIZE — gate math stays float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgelstm.quant.qparams import Params
from edgelstm.quant.tensor import product_bias, quantize_symmetric
from edgelstm.reference import LAYER_NORM_EPSILON
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.quant_desc import quantization
from edgelstm.targets.tflite.unfused.ops import Ops
from edgelstm.targets.tflite.unfused.params import DirectionParams

MODES = ("none", "dynamic", "int8")


@dataclass(frozen=True)
class StaticQuant:
    """Calibrated int8 parameters of one direction's matrix products (mode "int8")."""

    h: Quantization
    """The recurrent FC's input (the previous h)."""
    rh: Quantization
    """The recurrent FC's output R h."""
    m: Quantization | None = None
    """The projection FC's input o * act(c)."""
    proj: Quantization | None = None
    """The projection FC's output."""


class Cell:
    """Emits time steps of one direction into one (sub)graph; constants made once."""

    def __init__(
        self,
        ops: Ops,
        params: DirectionParams,
        mode: str,
        static: StaticQuant | None = None,
        hint: str = "cell",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, found {mode!r}")
        if mode == "int8" and static is None:
            raise ValueError("mode 'int8' needs calibrated StaticQuant parameters")
        self.ops, self.p, self.mode, self.static, self.hint = ops, params, mode, static, hint
        self._weight_params: dict[str, Params] = {}
        spec = params.spec
        self.n = spec.n_cell
        self.r = self._matrix("recurrent_weights", params.r)
        self.peephole = {
            g: ops.const(f"{hint}/peephole_{g}", v) for g, v in params.peephole.items()
        }
        self.ln_joint = spec.layer_norm and not spec.peephole
        self.ln: dict[str, tuple[int, int]] = {}
        if spec.layer_norm and params.ln is not None:
            bias = params.gate_bias()
            if self.ln_joint:
                self.ln["all"] = (
                    ops.const(f"{hint}/ln_coefficients", params.ln),
                    ops.const(f"{hint}/ln_bias", bias),
                )
            else:
                for k, g in enumerate(params.gates):
                    self.ln[g] = (
                        ops.const(f"{hint}/ln_coefficients_{g}", params.ln[k]),
                        ops.const(f"{hint}/ln_bias_{g}", bias[k]),
                    )
        self.proj = self.proj_bias = -1
        if params.proj is not None:
            self.proj = self._matrix("projection_weights", params.proj)
            if params.proj_bias is not None:
                if mode == "int8":
                    assert static is not None and static.m is not None
                    weights = self._weight_params["projection_weights"]
                    b = product_bias(params.proj_bias, static.m.scale[0], weights)
                    self.proj_bias = ops.const(
                        f"{hint}/projection_bias", b.data, "int32", quantization(b.params)
                    )
                else:
                    self.proj_bias = ops.const(f"{hint}/projection_bias", params.proj_bias)

    def _matrix(self, name: str, matrix: np.ndarray) -> int:
        if self.mode == "none":
            return self.ops.const(f"{self.hint}/{name}", matrix)
        qm = quantize_symmetric(matrix, "int8", axis=0)
        self._weight_params[name] = qm.params
        return self.ops.const(f"{self.hint}/{name}", qm.data, "int8", quantization(qm.params))

    # -- matrix products -------------------------------------------------------------------
    def _product(
        self, x: int, weights: int, bias: int, units: int, qin: Quantization | None, qout
    ) -> int:
        ops = self.ops
        if self.mode == "none":
            return ops.fc(x, weights, bias, units)
        if self.mode == "dynamic":
            return ops.fc(x, weights, bias, units, hybrid=True)
        assert qin is not None and qout is not None
        xq = ops.quantize(x, qin)
        y = ops.fc(xq, weights, bias, units, out_dtype="int8", quant=qout)
        return ops.dequantize(y)

    # -- the step --------------------------------------------------------------------------
    def layer_norm(self, x: int, coef: int, bias: int) -> int:
        ops = self.ops
        mean = ops.mean(x, -1)
        var = ops.mean(ops.binary("squared_difference", x, mean), -1)
        inv = ops.unary("rsqrt", ops.add(var, ops.scalar(LAYER_NORM_EPSILON)))
        return ops.add(ops.mul(ops.mul(ops.sub(x, mean), inv), coef), bias)

    def step(self, xw_t: int, h: int, c: int) -> tuple[int, int]:
        """Emit one time step; returns (h', c')."""
        ops, p, spec = self.ops, self.p, self.p.spec
        s = self.static
        rh = self._product(h, self.r, -1, p.width, s and s.h, s and s.rh)
        z = ops.add(xw_t, rh)
        if self.ln_joint:
            g_count = p.n_gates
            coef, bias = self.ln["all"]
            z3 = ops.reshape(z, [-1, g_count, self.n])
            z = ops.reshape(self.layer_norm(z3, coef, bias), [-1, g_count * self.n])
        pre = dict(zip(p.gates, ops.split(z, p.n_gates), strict=True))

        def finish(gate: str, cell: int) -> int:
            x = pre[gate]
            if gate in self.peephole:
                x = ops.add(x, ops.mul(cell, self.peephole[gate]))
            if gate in self.ln:
                x = self.layer_norm(x, *self.ln[gate])
            return x

        f = ops.unary("logistic", finish("forget", c))
        g = ops.activation(spec.activation, finish("cell", c))
        if spec.cifg:
            c_new = ops.add(g, ops.mul(f, ops.sub(c, g)))
        else:
            i = ops.unary("logistic", finish("input", c))
            c_new = ops.add(ops.mul(f, c), ops.mul(i, g))
        if spec.cell_clip > 0:
            c_new = ops.clip(c_new, spec.cell_clip)
        o = ops.unary("logistic", finish("output", c_new))
        m = ops.mul(o, ops.activation(spec.activation, c_new))
        if p.proj is not None:
            m = self._product(m, self.proj, self.proj_bias, spec.n_output, s and s.m, s and s.proj)
            if spec.proj_clip > 0:
                m = ops.clip(m, spec.proj_clip)
        return m, c_new

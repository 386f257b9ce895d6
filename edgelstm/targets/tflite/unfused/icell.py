"""One LSTM time step in integer arithmetic only: the TFLite Micro lowering's cell.

The same equations as :mod:`.cell` (canonical semantics, :mod:`edgelstm.reference`), built
only from ops whose int16 kernels TFLM has (checked against its sources: 16x8
FULLY_CONNECTED with int8 per-channel weights and int64 bias, ADD/SUB/MUL with any scales,
LOGISTIC/TANH with a 2^-15 output, MINIMUM/MAXIMUM, MEAN, SQUARED_DIFFERENCE, RSQRT; all
with zero point 0). Every activation is int16 with a power-of-two scale
(:mod:`.iranges`); weights are int8 per output channel, peephole and layer-norm
coefficients int16. h is int16 (the fused int8 kernel rounds it to int8), so this cell is
at least as fine as TFLite's 8x8_16 kernel::

    z  = ADD(FC16x8(x_t, W, b), FC16x8(h, R))    int16, all gates
    z_g (+= MUL(c, p_g))                          peephole
    z_g = LN(z_g) * coef_g + bias_g               layer norm, integer (MEAN, SUB, RSQRT)
    f, i, o = LOGISTIC(z_.); g = TANH(z_c)        int16 in, Q0.15 out
    c' = ADD(MUL(f, c), MUL(i, g))                CIFG: c' = ADD(g, MUL(f, SUB(c, g)))
    c' = MAXIMUM(MINIMUM(c', clip), -clip)        cell clip, at c's scale
    h' = MUL(o, TANH(c')); h' = FC16x8(h', P, b)  projection (+ MINIMUM/MAXIMUM clip)
"""

from __future__ import annotations

import numpy as np

from edgelstm.ir.model import DenseHead
from edgelstm.quant.tensor import QuantTensor, quantize_symmetric
from edgelstm.targets.tflite.builder import Quantization
from edgelstm.targets.tflite.quant_desc import quantization
from edgelstm.targets.tflite.schema import BuiltinOperator as Op
from edgelstm.targets.tflite.schema import BuiltinOptions as Opt
from edgelstm.targets.tflite.schema import schema
from edgelstm.targets.tflite.unfused.iranges import (
    JOINT,
    Q15,
    TANH_INPUT,
    IntCellQuant,
    pot_scale,
    q16,
    residual_plane,
)
from edgelstm.targets.tflite.unfused.ops import BINARY, Ops, _broadcast
from edgelstm.targets.tflite.unfused.params import DirectionParams

VAR2_FLOOR = 1.0 / 64
"""Stage 2 of the integer layer norm clamps mean(n1^2) here (rsqrt <= 8, ~4096 codes at 1)."""
FC_16X8 = 7
"""FULLY_CONNECTED version of int16 activations with int8 weights (TFLite op_version)."""


class Int16Ops:
    """int16 (zero point 0) elementwise ops and 16x8 matrix products over an :class:`Ops`."""

    def __init__(self, ops: Ops) -> None:
        self.ops = ops

    def scale(self, t: int) -> float:
        return float(self.ops.quant[t].scale[0])

    def const16(self, hint: str, values: np.ndarray) -> int:
        """An int16 constant, symmetric at max|values| / 32767."""
        qt = quantize_symmetric(np.asarray(values, np.float64), "int16")
        return self.ops.const(hint, qt.data, "int16", quantization(qt.params))

    def at_scale(self, hint: str, values: np.ndarray, scale: float) -> int:
        """An int16 constant at a given ``scale`` (saturating)."""
        codes = np.clip(np.rint(np.asarray(values, np.float64) / scale), -32767, 32767)
        return self.ops.const(hint, codes.astype(np.int16), "int16", q16(scale))

    def binary(self, kind: str, a: int, b: int, scale: float, version: int = 1) -> int:
        code, opt_type, opt_cls = BINARY[kind]
        opts = opt_cls()
        if hasattr(opts, "potScaleInt16"):
            opts.potScaleInt16 = False  # LiteRT: general scales (TFLM always rescales)
        shape = _broadcast(self.ops.shape(a), self.ops.shape(b))
        return self.ops.op(
            code, [a, b], shape, kind, opt_type, opts, dtype="int16", quant=q16(scale),
            version=version,
        )  # fmt: skip

    def add(self, a: int, b: int, scale: float) -> int:
        return self.binary("add", a, b, scale, 3)

    def sub(self, a: int, b: int, scale: float) -> int:
        return self.binary("sub", a, b, scale, 3)

    def mul(self, a: int, b: int, scale: float) -> int:
        return self.binary("mul", a, b, scale, 4)

    def unary(self, code: int, x: int, scale: float = Q15, hint: str = "act") -> int:
        return self.ops.op(
            code, [x], self.ops.shape(x), hint, dtype="int16", quant=q16(scale), version=3
        )

    def logistic(self, x: int) -> int:
        return self.unary(Op.LOGISTIC, x, hint="logistic")

    def tanh(self, x: int) -> int:
        return self.unary(Op.TANH, x, hint="tanh")

    def clip(self, x: int, bound: float | np.ndarray) -> int:
        """clip(x, ±bound) at x's own scale (MINIMUM/MAXIMUM compare codes)."""
        s = self.scale(x)
        b = np.atleast_1d(np.asarray(bound, np.float64))  # per unit when a vector
        hi = self.at_scale("clip_hi", b, s)
        lo = self.at_scale("clip_lo", -b, s)
        return self.binary("maximum", self.binary("minimum", x, hi, s), lo, s)

    def weights(
        self, hint: str, matrix: np.ndarray, codes: QuantTensor | None = None
    ) -> tuple[int, tuple[float, ...]]:
        """int8 per-output-channel weights (``codes`` when already rounded, else ``matrix``
        to nearest): (tensor, scales)."""
        qm = codes if codes is not None else quantize_symmetric(matrix, "int8", axis=0)
        t = self.ops.const(hint, qm.data, "int8", quantization(qm.params))
        return t, qm.params.scales  # type: ignore[union-attr]

    def bias64(self, hint: str, values: np.ndarray, in_scale: float, w_scales) -> int:
        """The int64 bias of a 16x8 product at s_in * s_w (per channel)."""
        scale = np.float64(in_scale) * np.asarray(w_scales, np.float64)
        codes = np.rint(np.asarray(values, np.float64) / scale).astype(np.int64)
        quant = Quantization(tuple(scale.tolist()), (0,) * len(scale))
        return self.ops.const(hint, codes, "int64", quant)

    def fc(
        self, x: int, weights: int, bias: int, units: int, scale: float, keep_dims: bool = False
    ) -> int:
        """FULLY_CONNECTED, int16 input and output (16x8)."""
        opts = schema.FullyConnectedOptionsT()
        opts.keepNumDims = keep_dims
        in_shape = self.ops.shape(x)
        rows = [int(np.prod(in_shape[:-1]))]
        shape = (in_shape[:-1] if keep_dims else rows) + [units]
        return self.ops.op(
            Op.FULLY_CONNECTED, [x, weights, bias], shape, "fc", Opt.FullyConnectedOptions, opts,
            dtype="int16", quant=q16(scale), version=FC_16X8,
        )  # fmt: skip

    def dense_head(
        self, head: DenseHead, seq: int, keep_dims: bool, logits: float, planes: int = 1
    ) -> int:
        """The dense head: int8 weights (``planes`` 2: and their residual plane), int16
        logits at ``logits``, int16 SOFTMAX (Q0.15)."""
        matrix = head.kernel.astype(np.float32)
        first = quantize_symmetric(matrix, "int8", axis=0)
        kernel, scales = self.weights("head/kernel", matrix, first)
        bias = self.bias64("head/bias", head.bias, self.scale(seq), scales)
        out = self.fc(seq, kernel, bias, head.units, logits, keep_dims=keep_dims)
        if planes > 1:
            rest = residual_plane(first, matrix)
            lo, lo_scales = self.weights("head/kernel_lo", matrix, rest)
            real = rest.data.astype(np.float64) * np.asarray(lo_scales, np.float64)[:, None]
            reach = float(np.abs(real).sum(axis=1).max()) * 32767 * self.scale(seq)
            extra = self.fc(seq, lo, -1, head.units, pot_scale(reach, 1.0), keep_dims=keep_dims)
            out = self.add(out, extra, logits)
        if head.activation != "softmax":
            return out
        opts = schema.SoftmaxOptionsT()
        opts.beta = 1.0
        return self.ops.op(
            Op.SOFTMAX, [out], self.ops.shape(out), "softmax", Opt.SoftmaxOptions, opts,
            dtype="int16", quant=q16(Q15), version=3,
        )  # fmt: skip

    def mean(self, x: int, scale: float) -> int:
        """Mean over the last axis (kept)."""
        shape = self.ops.shape(x)
        opts = schema.ReducerOptionsT()
        opts.keepDims = True
        return self.ops.op(
            Op.MEAN, [x, self.ops.ints([len(shape) - 1])], shape[:-1] + [1], "mean",
            Opt.ReducerOptions, opts, dtype="int16", quant=q16(scale), version=1,
        )  # fmt: skip


class IntCell:
    """Emits integer time steps of one direction (constants made once)."""

    def __init__(self, ops: Ops, params: DirectionParams, q: IntCellQuant, hint: str) -> None:
        spec = params.spec
        if spec.activation != "tanh":
            raise ValueError("the integer cell implements the tanh activation only")
        self.i16, self.p, self.q, self.hint = Int16Ops(ops), params, q, hint
        i16 = self.i16
        cw = q.weights
        self.w, scales = i16.weights(f"{hint}/input_weights", params.w, cw and cw.w)
        fitted = cw.bias if cw is not None else params.bias
        bias = fitted if params.bias_in_gemm else np.zeros_like(params.bias)
        self.b = i16.bias64(f"{hint}/bias", bias, q.x, scales)
        self.r, _ = i16.weights(f"{hint}/recurrent_weights", params.r, cw and cw.r)
        lo = cw.lo if cw is not None else {}
        self.w_lo = self._plane(f"{hint}/input_weights_lo", lo.get("w"), 32767 * q.x)
        self.r_lo = self._plane(f"{hint}/recurrent_weights_lo", lo.get("r"), 32767 * q.h)
        k = q.k if q.k is not None else 1.0  # the loop carries c / k (per-unit scales)
        self.peephole = {
            g: i16.const16(f"{hint}/peephole_{g}", v * k) for g, v in params.peephole.items()
        }
        self.inv_k = self.k = -1
        if q.k is not None:
            top = float(np.max(q.k))
            self.inv_k = i16.at_scale(f"{hint}/cell_unit_inv", 1.0 / q.k, 2.0**-14)
            self.k = i16.at_scale(f"{hint}/cell_unit", q.k, top * 2.0**-14)
        self.ln: dict[str, tuple[int, int]] = {}
        if spec.layer_norm and params.ln is not None:
            bias = params.gate_bias()
            if JOINT in q.ln:  # one layer norm over [B, G, N]: a quarter of the ops
                coefs = i16.const16(f"{hint}/ln_coefficients", params.ln)
                self.ln[JOINT] = (coefs, i16.const16(f"{hint}/ln_bias", bias))
            for k, g in enumerate(params.gates if JOINT not in q.ln else ()):
                self.ln[g] = (
                    i16.const16(f"{hint}/ln_coefficients_{g}", params.ln[k]),
                    i16.const16(f"{hint}/ln_bias_{g}", bias[k]),
                )
        self.proj = self.proj_bias = -1
        self.proj_lo: tuple[int, float] = (-1, 0.0)
        if params.proj is not None:
            pq = cw.proj if cw is not None else None
            self.proj, scales = i16.weights(f"{hint}/projection_weights", params.proj, pq)
            if params.proj_bias is not None:
                name = f"{hint}/projection_bias"
                pb = cw.proj_bias if cw is not None and cw.proj_bias is not None else None
                pb = params.proj_bias if pb is None else pb
                self.proj_bias = i16.bias64(name, pb, Q15, scales)
            self.proj_lo = self._plane(f"{hint}/projection_weights_lo", lo.get("proj"), 1.0)

    def _plane(self, hint: str, codes: QuantTensor | None, in_max: float) -> tuple[int, float]:
        """A second weight plane (``Int8Options.weight_planes=2``) and the int16 scale of
        its product: the power of two covering max_row sum|w| * ``in_max`` (the input's
        reach), so it never saturates. (-1, 0.0) when there is none."""
        if codes is None:
            return -1, 0.0
        t, scales = self.i16.weights(hint, codes.data, codes)
        real = codes.data.astype(np.float64) * np.asarray(scales, np.float64)[:, None]
        return t, pot_scale(float(np.abs(real).sum(axis=1).max()) * in_max, 1.0)

    def product(self, x: int, w: int, bias: int, lo: tuple[int, float], units: int, scale: float):
        """FC16x8(x, w, bias), plus the second plane's product when there is one."""
        y = self.i16.fc(x, w, bias, units, scale)
        if lo[0] < 0:
            return y
        return self.i16.add(y, self.i16.fc(x, lo[0], -1, units, lo[1]), scale)

    def layer_norm(self, x: int, g: str) -> int:
        """(x - mean) * rsqrt(var) * coef + bias, in int16, normalising twice.

        One int16 variance at a fixed scale cannot span the rows' variances (measured: a
        quarter of them rounded to 0 or 1 code, and rsqrt of a large one to ~7 codes). So
        stage 1 takes n1 = d * rsqrt(max(var, 1 code)), whose variance is then within
        [~0, 1.5] whatever the row's, and stage 2 divides that out:
        n = n1 * rsqrt(max(mean(n1^2), 1/64)), exact in real arithmetic for any stage-1
        error. Rows below var/64 codes (|d| under ~1/8 of one variance code) come out
        shrunk; eps (1e-8) is below int16's resolution."""
        i16, lq = self.i16, self.q.ln[g]
        mean = i16.mean(x, i16.scale(x))
        d = i16.sub(x, mean, lq.d)
        var = i16.mean(i16.binary("squared_difference", x, mean, lq.var), lq.var)
        floor1 = i16.at_scale("var_floor", np.array([lq.var]), lq.var)  # one code
        var = i16.binary("maximum", var, floor1, lq.var)
        rs1 = i16.unary(Op.RSQRT, var, lq.rs, "rsqrt")
        n1 = i16.mul(d, rs1, lq.n1)
        var2 = i16.mean(i16.mul(n1, n1, lq.sq2), lq.var2)
        floor2 = i16.at_scale("var2_floor", np.array([VAR2_FLOOR]), lq.var2)
        rs2 = i16.unary(Op.RSQRT, i16.binary("maximum", var2, floor2, lq.var2), lq.rs2, "rsqrt")
        n = i16.mul(n1, rs2, lq.n)
        coef, bias = self.ln[g]
        return i16.add(i16.mul(n, coef, lq.nc), bias, lq.out)

    def step(self, x_t: int, h: int, c: int) -> tuple[int, int]:
        """Emit one time step from int16 ``x_t`` [B, I], ``h``, ``c``; returns (h', c')."""
        i16, ops, p, q, spec = self.i16, self.i16.ops, self.p, self.q, self.p.spec
        xw = self.product(x_t, self.w, self.b, self.w_lo, p.width, q.xw)
        rh = self.product(h, self.r, -1, self.r_lo, p.width, q.rh)
        z = i16.add(xw, rh, q.z)
        if JOINT in self.ln:  # every gate normalised at once (no peephole in between)
            z3 = ops.reshape(z, [-1, p.n_gates, spec.n_cell])
            z = ops.reshape(self.layer_norm(z3, JOINT), [-1, p.width])
        pre = dict(zip(p.gates, ops.split(z, p.n_gates), strict=True))

        def finish(gate: str, cell: int) -> int:
            x = pre[gate]
            if gate in self.peephole:
                pc = i16.mul(cell, self.peephole[gate], q.pc[gate])
                x = i16.add(x, pc, q.zp[gate])
            if gate in self.ln:
                x = self.layer_norm(x, gate)
            return x

        f = i16.logistic(finish("forget", c))
        g = i16.tanh(finish("cell", c))
        if spec.cifg:
            c_new = i16.add(g, i16.mul(f, i16.sub(c, g, q.cg), q.cg), q.c)
        else:
            i = i16.logistic(finish("input", c))
            ig = i16.mul(i, g, Q15)  # i * g in [-1, 1]
            if self.inv_k >= 0:  # at each unit's own scale
                ig = i16.mul(ig, self.inv_k, q.c)
            c_new = i16.add(i16.mul(f, c, q.c), ig, q.c)
        if spec.cell_clip > 0:
            c_new = i16.clip(c_new, spec.cell_clip / (q.k if q.k is not None else 1.0))
        o = i16.logistic(finish("output", c_new))
        real_c = c_new
        if self.k >= 0:  # c itself for TANH (saturating past +-8 loses nothing there)
            real_c = i16.mul(c_new, self.k, min(q.c_real, TANH_INPUT))
        m = i16.mul(o, i16.tanh(real_c), Q15 if p.proj is not None else q.h)
        if p.proj is not None:
            m = self.product(m, self.proj, self.proj_bias, self.proj_lo, spec.n_output, q.h)
            if spec.proj_clip > 0:
                m = i16.clip(m, spec.proj_clip)
        return m, c_new

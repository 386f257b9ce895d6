"""A thin op-emitting layer over one TFLite (sub)graph, for the unfused LSTM lowering.

Each method adds one builtin operator to a :class:`~edgelstm.targets.tflite.builder.GraphBuilder`
(the main graph or a WHILE cond/body subgraph) and returns its output tensor index. Shapes
are tracked with -1 for a dynamic dimension (the tensor is written with 1 there and a
``shape_signature`` of -1, which the interpreter resizes). Tensor names are unique and
readable: ``{scope}/{hint}_{n}``.

Only ops and options the XNNPACK delegate takes in float (FULLY_CONNECTED, ADD, SUB, MUL,
MINIMUM, MAXIMUM, LOGISTIC, TANH, RELU*, RESHAPE, SPLIT, SLICE with constant bounds, MEAN,
SQUARED_DIFFERENCE, RSQRT, QUANTIZE/DEQUANTIZE) are used inside a time step; WHILE
book-keeping (SLICE with a computed begin, DYNAMIC_UPDATE_SLICE, LESS, int32 ADD/SUB,
CONCATENATION of indices, PACK/UNPACK) stays on the builtin kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgelstm.targets.tflite.builder import GraphBuilder, Quantization
from edgelstm.targets.tflite.schema import BuiltinOperator as Op
from edgelstm.targets.tflite.schema import BuiltinOptions as Opt
from edgelstm.targets.tflite.schema import TensorType, schema

UNARY = {
    "logistic": Op.LOGISTIC,
    "tanh": Op.TANH,
    "relu": Op.RELU,
    "relu6": Op.RELU6,
    "relu_n1_to_1": Op.RELU_N1_TO_1,
    "rsqrt": Op.RSQRT,
}
BINARY = {
    "add": (Op.ADD, Opt.AddOptions, schema.AddOptionsT),
    "sub": (Op.SUB, Opt.SubOptions, schema.SubOptionsT),
    "mul": (Op.MUL, Opt.MulOptions, schema.MulOptionsT),
    "minimum": (Op.MINIMUM, Opt.MaximumMinimumOptions, schema.MaximumMinimumOptionsT),
    "maximum": (Op.MAXIMUM, Opt.MaximumMinimumOptions, schema.MaximumMinimumOptionsT),
    "squared_difference": (
        Op.SQUARED_DIFFERENCE,
        Opt.SquaredDifferenceOptions,
        schema.SquaredDifferenceOptionsT,
    ),
    "less": (Op.LESS, Opt.LessOptions, schema.LessOptionsT),
}
ACTIVATION_OPS = {
    "tanh": "tanh",
    "relu": "relu",
    "relu6": "relu6",
    "relu_n1_to_1": "relu_n1_to_1",
    "sigmoid": "logistic",
    "linear": None,
}
"""Cell/output activation of the canonical spec -> unary op (None: identity)."""

FC_FLOAT, FC_KEEP_DIMS, FC_HYBRID_PER_CHANNEL, FC_INT8 = 1, 5, 12, 4
"""FULLY_CONNECTED versions (TFLite op_version.cc): float, keep_num_dims, per-channel
hybrid (int8 weights, float activations), full int8."""


def _broadcast(a: Sequence[int], b: Sequence[int]) -> list[int]:
    out = []
    for k in range(max(len(a), len(b))):
        x = a[len(a) - 1 - k] if k < len(a) else 1
        y = b[len(b) - 1 - k] if k < len(b) else 1
        out.append(y if x == 1 else x if y == 1 else (-1 if -1 in (x, y) else x))
    return out[::-1]


class Ops:
    """Emit ops into ``g``; ``scope`` prefixes every tensor name."""

    def __init__(self, g: GraphBuilder, scope: str) -> None:
        self.g = g
        self.scope = scope
        self._count: dict[str, int] = {}
        self._consts: dict[tuple, int] = {}
        self.dtype: dict[int, str] = {}
        self.quant: dict[int, Quantization] = {}

    # -- tensors ---------------------------------------------------------------------------
    def name(self, hint: str) -> str:
        n = self._count.get(hint, 0)
        self._count[hint] = n + 1
        base = f"{self.scope}/{hint}" if self.scope else hint
        return base + (f"_{n}" if n else "")

    def tensor(
        self,
        hint: str,
        shape: Sequence[int],
        dtype: str = "float32",
        quant: Quantization | None = None,
    ) -> int:
        """A new activation tensor; -1 in ``shape`` marks a dynamic dimension."""
        shape = [int(d) for d in shape]
        index = self.g.add_tensor(
            self.name(hint),
            [1 if d < 0 else d for d in shape],
            dtype,
            quantization=quant,
            shape_signature=shape,
        )
        self.dtype[index] = dtype
        if quant is not None:
            self.quant[index] = quant
        return index

    def shape(self, t: int) -> list[int]:
        return self.g.tensor_signature(t)

    def const(
        self,
        hint: str,
        array: np.ndarray,
        dtype: str | None = None,
        quant: Quantization | None = None,
    ) -> int:
        arr = np.asarray(array)
        index = self.g.add_constant(self.name(hint), arr, dtype or arr.dtype.name, quant)
        self.dtype[index] = dtype or arr.dtype.name
        if quant is not None:
            self.quant[index] = quant
        return index

    def ints(self, values: Sequence[int]) -> int:
        """A cached int32 vector constant."""
        key = ("i32", tuple(int(v) for v in values))
        if key not in self._consts:
            self._consts[key] = self.const("ints", np.array(key[1], np.int32))
        return self._consts[key]

    def scalar(self, value: float) -> int:
        """A cached float32 [1] constant (broadcasts against any tensor)."""
        key = ("f32", float(np.float32(value)))
        if key not in self._consts:
            self._consts[key] = self.const("scalar", np.array([value], np.float32))
        return self._consts[key]

    # -- generic ---------------------------------------------------------------------------
    def op(
        self,
        code: int,
        inputs: Sequence[int],
        shape: Sequence[int],
        hint: str,
        options_type: int = 0,
        options: object | None = None,
        *,
        dtype: str = "float32",
        quant: Quantization | None = None,
        version: int = 1,
    ) -> int:
        out = self.tensor(hint, shape, dtype, quant)
        self.g.add_operator(code, inputs, [out], options_type, options, version=version)
        return out

    def unary(self, kind: str, x: int, quant: Quantization | None = None) -> int:
        dtype = self.dtype.get(x, "float32")
        version = 2 if dtype == "int8" else 1
        return self.op(
            UNARY[kind], [x], self.shape(x), kind, dtype=dtype, quant=quant, version=version
        )

    def activation(self, name: str, x: int) -> int:
        kind = ACTIVATION_OPS[name]
        return x if kind is None else self.unary(kind, x)

    def binary(self, kind: str, a: int, b: int, quant: Quantization | None = None) -> int:
        code, opt_type, opt_cls = BINARY[kind]
        shape = _broadcast(self.shape(a), self.shape(b))
        dtype = "bool" if kind == "less" else self.dtype.get(a, "float32")
        version = 2 if dtype == "int8" else 1
        return self.op(
            code,
            [a, b],
            shape,
            kind,
            opt_type,
            opt_cls(),
            dtype=dtype,
            quant=quant,
            version=version,
        )

    def add(self, a: int, b: int) -> int:
        return self.binary("add", a, b)

    def sub(self, a: int, b: int) -> int:
        return self.binary("sub", a, b)

    def mul(self, a: int, b: int) -> int:
        return self.binary("mul", a, b)

    def clip(self, x: int, bound: float) -> int:
        """clip(x, -bound, bound) with MINIMUM/MAXIMUM (bound > 0)."""
        return self.binary(
            "maximum", self.binary("minimum", x, self.scalar(bound)), self.scalar(-bound)
        )

    # -- dense -----------------------------------------------------------------------------
    def fc(
        self,
        x: int,
        weights: int,
        bias: int,
        units: int,
        *,
        keep_dims: bool = False,
        hybrid: bool = False,
        out_dtype: str = "float32",
        quant: Quantization | None = None,
        hint: str = "fc",
    ) -> int:
        """FULLY_CONNECTED; ``bias`` -1 for none; ``hybrid``: int8 weights, float input
        quantized per row at run time (asymmetric)."""
        opts = schema.FullyConnectedOptionsT()
        opts.keepNumDims = keep_dims
        opts.asymmetricQuantizeInputs = hybrid
        in_shape = self.shape(x)
        if keep_dims:
            shape = in_shape[:-1] + [units]
        else:
            rows = int(np.prod(in_shape[:-1])) if all(d > 0 for d in in_shape[:-1]) else -1
            shape = [rows, units]
        if hybrid:
            version = FC_HYBRID_PER_CHANNEL
        elif out_dtype == "int8":
            version = FC_KEEP_DIMS if keep_dims else FC_INT8
        else:
            version = FC_KEEP_DIMS if keep_dims else FC_FLOAT
        return self.op(
            Op.FULLY_CONNECTED,
            [x, weights, bias],
            shape,
            hint,
            Opt.FullyConnectedOptions,
            opts,
            dtype=out_dtype,
            quant=quant,
            version=version,
        )

    # -- shapes ----------------------------------------------------------------------------
    def reshape(self, x: int, shape: Sequence[int]) -> int:
        known = self.shape(x)
        if -1 in shape and min(known) > 0:  # a static input: the output is static too
            rest = int(np.prod([d for d in shape if d != -1]))
            shape = [int(np.prod(known)) // rest if d == -1 else d for d in shape]
        opts = schema.ReshapeOptionsT()
        opts.newShape = [int(d) for d in shape]
        dtype = self.dtype.get(x, "float32")
        quant = self._quant(x)
        return self.op(
            Op.RESHAPE, [x, self.ints(shape)], shape, "reshape", Opt.ReshapeOptions, opts,
            dtype=dtype, quant=quant,
        )  # fmt: skip

    def split(self, x: int, parts: int, axis: int = -1) -> list[int]:
        shape = self.shape(x)
        axis = axis % len(shape)
        piece = list(shape)
        piece[axis] = shape[axis] // parts
        outs = [
            self.tensor("split", piece, self.dtype.get(x, "float32"), self._quant(x))
            for _ in range(parts)
        ]
        opts = schema.SplitOptionsT()
        opts.numSplits = parts
        self.g.add_operator(Op.SPLIT, [self.ints([axis]), x], outs, Opt.SplitOptions, opts)
        return outs

    def slice(
        self, x: int, begin: int | Sequence[int], size: Sequence[int], shape: Sequence[int]
    ) -> int:
        """SLICE; ``begin`` a constant list or an int32 tensor; ``shape`` the result's."""
        b = self.ints(begin) if isinstance(begin, (list, tuple)) else begin
        opts = schema.SliceOptionsT()
        return self.op(
            Op.SLICE, [x, b, self.ints(size)], shape, "slice", Opt.SliceOptions, opts,
            dtype=self.dtype.get(x, "float32"), quant=self._quant(x),
        )  # fmt: skip

    def unpack(self, x: int, axis: int) -> list[int]:
        shape = self.shape(x)
        count = shape[axis]
        piece = shape[:axis] + shape[axis + 1 :]
        outs = [
            self.tensor("step", piece, self.dtype.get(x, "float32"), self._quant(x))
            for _ in range(count)
        ]
        opts = schema.UnpackOptionsT()
        opts.num = count
        opts.axis = axis
        self.g.add_operator(Op.UNPACK, [x], outs, Opt.UnpackOptions, opts)
        return outs

    def pack(self, xs: Sequence[int], axis: int) -> int:
        piece = self.shape(xs[0])
        shape = piece[:axis] + [len(xs)] + piece[axis:]
        opts = schema.PackOptionsT()
        opts.valuesCount = len(xs)
        opts.axis = axis
        return self.op(
            Op.PACK, list(xs), shape, "pack", Opt.PackOptions, opts,
            dtype=self.dtype.get(xs[0], "float32"), quant=self._quant(xs[0]),
        )  # fmt: skip

    def concat(self, xs: Sequence[int], axis: int, dtype: str | None = None) -> int:
        """CONCATENATION; ``dtype`` (and quantization) default to the first input's."""
        shapes = [self.shape(x) for x in xs]
        axis = axis % len(shapes[0])
        shape = list(shapes[0])
        sizes = [s[axis] for s in shapes]
        shape[axis] = -1 if -1 in sizes else sum(sizes)
        opts = schema.ConcatenationOptionsT()
        opts.axis = axis
        quant = self._quant(xs[0]) if dtype is None else None
        dtype = dtype or self.dtype.get(xs[0], "float32")
        return self.op(
            Op.CONCATENATION, list(xs), shape, "concat", Opt.ConcatenationOptions, opts,
            dtype=dtype, quant=quant,
        )  # fmt: skip

    def transpose(self, x: int, perm: Sequence[int]) -> int:
        shape = [self.shape(x)[p] for p in perm]
        return self.op(
            Op.TRANSPOSE, [x, self.ints(perm)], shape, "transpose", Opt.TransposeOptions,
            schema.TransposeOptionsT(), dtype=self.dtype.get(x, "float32"), quant=self._quant(x),
        )  # fmt: skip

    def mean(self, x: int, axis: int) -> int:
        """Mean over ``axis`` keeping the dimension."""
        shape = self.shape(x)
        axis = axis % len(shape)
        out = list(shape)
        out[axis] = 1
        opts = schema.ReducerOptionsT()
        opts.keepDims = True
        return self.op(Op.MEAN, [x, self.ints([axis])], out, "mean", Opt.ReducerOptions, opts)

    def softmax(self, x: int) -> int:
        opts = schema.SoftmaxOptionsT()
        opts.beta = 1.0
        return self.op(Op.SOFTMAX, [x], self.shape(x), "softmax", Opt.SoftmaxOptions, opts)

    def update_slice(self, operand: int, update: int, start: int) -> int:
        """DYNAMIC_UPDATE_SLICE(operand, update, start) -> a new tensor like ``operand``."""
        return self.op(
            Op.DYNAMIC_UPDATE_SLICE, [operand, update, start], self.shape(operand), "update",
            Opt.DynamicUpdateSliceOptions, schema.DynamicUpdateSliceOptionsT(),
            dtype=self.dtype.get(operand, "float32"), quant=self._quant(operand),
        )  # fmt: skip

    def shape_of(self, x: int) -> int:
        """SHAPE(x) as an int32 vector."""
        opts = schema.ShapeOptionsT()
        opts.outType = TensorType.INT32
        rank = len(self.shape(x))
        return self.op(Op.SHAPE, [x], [rank], "shape", Opt.ShapeOptions, opts, dtype="int32")

    def zeros(self, dims: int | Sequence[int], shape: Sequence[int]) -> int:
        """FILL(dims, 0.0): a float zeros tensor made at run time (nothing in the file)."""
        d = self.ints(dims) if isinstance(dims, (list, tuple)) else dims
        key = ("zero",)
        if key not in self._consts:
            self._consts[key] = self.const("zero", np.array(0.0, np.float32))
        return self.op(
            Op.FILL, [d, self._consts[key]], shape, "zeros", Opt.FillOptions, schema.FillOptionsT()
        )

    def quantize(self, x: int, quant: Quantization, dtype: str = "int8") -> int:
        return self.op(Op.QUANTIZE, [x], self.shape(x), "quantize", dtype=dtype, quant=quant)

    def dequantize(self, x: int) -> int:
        return self.op(Op.DEQUANTIZE, [x], self.shape(x), "dequantize", version=2)

    def int_op(self, kind: str, a: int, b: int) -> int:
        """int32 ADD/SUB (loop counters and slice positions)."""
        code, opt_type, opt_cls = BINARY[kind]
        return self.op(
            code,
            [a, b],
            _broadcast(self.shape(a), self.shape(b)),
            kind,
            opt_type,
            opt_cls(),
            dtype="int32",
        )

    def _quant(self, x: int) -> Quantization | None:
        return self.quant.get(x)

"""Masked LSTMs (``Masking`` / ``Embedding(mask_zero=True)`` before an LSTM), exact on
post-padded input.

Keras skips masked steps: the state is carried over and the output at a masked step repeats
the previous one (zeros before the first valid step). The fused op runs every step, so for
post-padded sequences (the valid steps first, then padding) its outputs at the valid steps
are already Keras's; what differs is every output after the last valid step. The LSTM file
is therefore compiled with ``return_sequences=True`` and a tail added after it:

* lengths from the LSTM's own input: a step is valid when any feature is non-zero (the
  ``Masking(0.0)`` output is exactly zero at masked steps, and an ``Embedding(mask_zero)``
  segment writes zeros there: :func:`edgelstm.whole.segments.apply_layers`), counted per
  sequence (NOT_EQUAL, REDUCE_ANY, CAST, SUM);
* GATHER (batch_dims 1) of step ``min(t, length - 1)`` (sequences) or ``length - 1`` (last
  step), and zeros for a sequence with no valid step (SELECT_V2).

Pre-padding (padding first) is not reproduced: the fused op would run the padding and change
the state, so outputs are exact only for post-padded input. The tail moves values without
arithmetic, so an int8 LSTM's outputs keep their scale; in int8 a valid step whose features
all quantize to the zero point would count as padding.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from edgelstm.targets.tflite.builder import _AlignedBufferT
from edgelstm.targets.tflite.schema import (
    FILE_IDENTIFIER,
    NUMPY_OF_TYPE,
    BuiltinOperator,
    BuiltinOptions,
    TensorType,
    decode_model,
    schema,
)

GATHER_BATCH_DIMS_VERSION = 5
"""GATHER with batch_dims (the version TF's converter writes for it)."""


class _Editor:
    """Appends tensors and operators to the main subgraph of a decoded model."""

    def __init__(self, model: schema.ModelT) -> None:
        self.model = model
        self.g = model.subgraphs[0]

    def tensor(
        self,
        name: str,
        shape: list[int],
        sig: list[int],
        ttype: int,
        *,
        data: np.ndarray | None = None,
        like: schema.TensorT | None = None,
    ) -> int:
        t = schema.TensorT()
        t.name = f"mask/{name}"
        t.shape = list(shape)
        if sig != shape:
            t.shapeSignature = list(sig)
        t.type = ttype
        t.quantization = like.quantization if like is not None else None
        t.buffer = 0
        if data is not None:
            buf = _AlignedBufferT()
            buf.data = np.asarray(data, NUMPY_OF_TYPE[ttype]).tobytes()
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        self.g.tensors.append(t)
        return len(self.g.tensors) - 1

    def const(self, name: str, values: np.ndarray, ttype: int, like=None) -> int:
        arr = np.asarray(values)
        shape = list(arr.shape)
        return self.tensor(name, shape, shape, ttype, data=arr, like=like)

    def op(self, builtin: int, inputs, outputs, options_type=0, options=None, version=1) -> None:
        codes = self.model.operatorCodes
        index = next(
            (
                k
                for k, c in enumerate(codes)
                if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin and c.version == version
            ),
            None,
        )
        if index is None:
            code = schema.OperatorCodeT()
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127)
            code.version = version
            codes.append(code)
            index = len(codes) - 1
        op = schema.OperatorT()
        op.opcodeIndex = index
        op.inputs = list(inputs)
        op.outputs = list(outputs)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        self.g.operators.append(op)


def _zero_code(t: schema.TensorT) -> np.ndarray:
    """The stored value of 0.0 in tensor ``t`` (its zero point when quantized)."""
    q = t.quantization
    zero = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None else 0
    return np.array(zero, NUMPY_OF_TYPE[t.type])


def _reducer(ed: _Editor, builtin: int, x: int, axis: int, out: int) -> None:
    opts = schema.ReducerOptionsT()
    opts.keepDims = False
    axis_c = ed.const(f"axis{len(ed.g.tensors)}", np.array([axis], np.int32), TensorType.INT32)
    ed.op(builtin, [x, axis_c], [out], BuiltinOptions.ReducerOptions, opts)


def _reshape(ed: _Editor, x: int, shape: list[int], sig: list[int], ttype: int, like=None) -> int:
    target = ed.const(f"shape{len(ed.g.tensors)}", np.array(sig, np.int32), TensorType.INT32)
    out = ed.tensor(f"reshaped{len(ed.g.tensors)}", shape, sig, ttype, like=like)
    ed.op(BuiltinOperator.RESHAPE, [x, target], [out])
    return out


def add_mask_tail(data: bytes, *, return_sequences: bool, steps: int | None) -> bytes:
    """The LSTM file ``data`` (return_sequences=True) with Keras's masked outputs (module doc)."""
    model = decode_model(data, "lstm segment")
    ed = _Editor(model)
    g = ed.g
    x, y = g.inputs[0], g.outputs[0]
    tx, ty = g.tensors[x], g.tensors[y]
    sx = list(tx.shapeSignature if tx.shapeSignature is not None else tx.shape)
    b, bsig, t, tsig, n = tx.shape[0], sx[0], tx.shape[1], sx[1], int(ty.shape[-1])
    bool_t, int_t = TensorType.BOOL, TensorType.INT32

    zero_x = ed.const("zero_input", _zero_code(tx), tx.type, like=tx)
    ne = ed.tensor("nonzero", list(tx.shape), sx, bool_t)
    version = 2 if tx.type == TensorType.INT8 else 1
    ed.op(BuiltinOperator.NOT_EQUAL, [x, zero_x], [ne], version=version)
    valid = ed.tensor("valid", [b, t], [bsig, tsig], bool_t)
    _reducer(ed, BuiltinOperator.REDUCE_ANY, ne, 2, valid)
    valid_i = ed.tensor("valid_int", [b, t], [bsig, tsig], int_t)
    cast = schema.CastOptionsT()
    cast.inDataType, cast.outDataType = bool_t, int_t
    ed.op(BuiltinOperator.CAST, [valid], [valid_i], BuiltinOptions.CastOptions, cast)
    lengths = ed.tensor("lengths", [b], [bsig], int_t)
    _reducer(ed, BuiltinOperator.SUM, valid_i, 1, lengths)

    one = ed.const("one", np.array(1, np.int32), int_t)
    zero_i = ed.const("zero", np.array(0, np.int32), int_t)
    last = ed.tensor("last_minus", [b], [bsig], int_t)
    ed.op(
        BuiltinOperator.SUB, [lengths, one], [last], BuiltinOptions.SubOptions, schema.SubOptionsT()
    )
    last_valid = ed.tensor("last_valid", [b], [bsig], int_t)
    ed.op(BuiltinOperator.MAXIMUM, [last, zero_i], [last_valid])
    column = _reshape(ed, last_valid, [b, 1], [-1, 1], int_t)
    if return_sequences:
        assert steps is not None
        times = ed.const("steps", np.arange(steps, dtype=np.int32)[None], int_t)
        index = ed.tensor("index", [b, steps], [bsig, steps], int_t)
        ed.op(BuiltinOperator.MINIMUM, [times, column], [index])
        gathered_shape, gathered_sig = [b, steps, n], [bsig, steps, n]
    else:
        index = column
        gathered_shape, gathered_sig = [b, 1, n], [bsig, 1, n]
    gathered = ed.tensor("gathered", gathered_shape, gathered_sig, ty.type, like=ty)
    gopts = schema.GatherOptionsT()
    gopts.axis, gopts.batchDims = 1, 1
    ed.op(
        BuiltinOperator.GATHER,
        [y, index],
        [gathered],
        BuiltinOptions.GatherOptions,
        gopts,
        version=GATHER_BATCH_DIMS_VERSION,
    )
    if not return_sequences:
        gathered = _reshape(ed, gathered, [b, n], [-1, n], ty.type, like=ty)
    any_valid = ed.tensor("any_valid", [b], [bsig], bool_t)
    ed.op(BuiltinOperator.GREATER, [lengths, zero_i], [any_valid])
    rank = 3 if return_sequences else 2
    cond = _reshape(ed, any_valid, [b] + [1] * (rank - 1), [-1] + [1] * (rank - 1), bool_t)
    zero_y = ed.const("zero_output", _zero_code(ty), ty.type, like=ty)
    out_shape = gathered_shape if return_sequences else [b, n]
    out_sig = gathered_sig if return_sequences else [bsig, n]
    out = ed.tensor("output", out_shape, out_sig, ty.type, like=ty)
    ed.op(BuiltinOperator.SELECT_V2, [cond, gathered, zero_y], [out])
    g.outputs = [out]
    for sig in model.signatureDefs or []:
        for m in sig.outputs or []:
            if m.tensorIndex == y:
                m.tensorIndex = out
    fb = flatbuffers.Builder(1 << 16)
    fb.Finish(model.Pack(fb), file_identifier=FILE_IDENTIFIER)
    return bytes(fb.Output())

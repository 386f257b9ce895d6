"""Emit an :class:`LSTMModel` as a TFLite flatbuffer built around fused LSTM ops.

Graph (each direction is one UNIDIRECTIONAL_SEQUENCE_LSTM):

* stacked layers feed each other the whole sequence;
* a bidirectional layer runs its backward op on REVERSE_V2(input) along time, reverses that
  output back and CONCATENATEs [forward, backward] on the feature axis; ``go_backwards``
  runs the op on the reversed input and keeps the reversed output order (Keras);
* ``return_sequences=False`` takes the last step with STRIDED_SLICE (bidirectional: the
  forward op's last step and the backward op's last step, i.e. its final output);
* an optional head is FULLY_CONNECTED (keep_num_dims on sequences) plus SOFTMAX;
* ``return_state`` exposes, after the main output, (h, c) of every direction of the last
  layer. The op has one output, but its two state variables hold the final state after an
  invoke, so the graph outputs *are* those variable tensors (``output_state`` = h,
  ``cell_state`` = c): exact, no recomputation.

Graph input ``input`` is [B, T, I] ([T, B, I] when time-major); ``batch``/``seq_len`` None
give a resizable dimension (shape 1, shape_signature -1). The signature ``serving_default``
lists inputs/outputs in this order: ``output``, then ``state_h``/``state_c`` (suffixed
``_forward``/``_backward`` for a bidirectional last layer).

State tensors are named ``layer{k}/{forward|backward}/output_state`` and ``.../cell_state``:
set an initial state with ``interpreter.set_tensor(index_of(name), value)`` after
``reset_all_variables()`` and before ``invoke()``; without a reset they carry the state of
the previous invoke (streaming). :class:`edgelstm.runtime.LiteRTRunner` does this for you.
"""

from __future__ import annotations

import os

import numpy as np

from edgelstm._io import write_bytes_atomic
from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.tflite.builder import GraphBuilder
from edgelstm.targets.tflite.hybrid import hybrid_tensors
from edgelstm.targets.tflite.lstm_op import (
    LSTMOpTensors,
    add_lstm_op,
    check_activation,
    float_tensors,
)
from edgelstm.targets.tflite.metadata import (
    METADATA_NAME,
    build_metadata,
    direction_prefix,
    encode_metadata,
)
from edgelstm.targets.tflite.schema import BuiltinOperator, BuiltinOptions, schema

FC_KEEP_NUM_DIMS_VERSION = 5


class _Emitter:
    """Builds the graph for one model; small helpers keep shapes and signatures in step."""

    def __init__(self, model: LSTMModel, options: CompileOptions) -> None:
        from edgelstm._version import __version__

        self.model = model
        self.options = options
        self.time_major = model.time_major if options.time_major is None else options.time_major
        self.g = GraphBuilder(f"edgelstm {__version__}")
        self.batch = options.batch
        self.steps = options.seq_len
        self.time_axis = 0 if self.time_major else 1
        self._axis_tensors: dict[str, int] = {}

    # -- shapes ----------------------------------------------------------------------------
    def seq_tensor(self, name: str, features: int) -> int:
        b, t = self.batch, self.steps
        shape = [t or 1, b or 1, features] if self.time_major else [b or 1, t or 1, features]
        sig = [t or -1, b or -1, features] if self.time_major else [b or -1, t or -1, features]
        return self.g.add_tensor(name, shape, "float32", shape_signature=sig)

    def step_tensor(self, name: str, features: int) -> int:
        b = self.batch
        return self.g.add_tensor(
            name, [b or 1, features], "float32", shape_signature=[b or -1, features]
        )

    def int_constant(self, name: str, values: list[int]) -> int:
        if name not in self._axis_tensors:
            self._axis_tensors[name] = self.g.add_constant(name, np.array(values, np.int32))
        return self._axis_tensors[name]

    # -- ops -------------------------------------------------------------------------------
    def reverse(self, x: int, name: str, features: int) -> int:
        axis = self.int_constant("time_axis", [self.time_axis])
        out = self.seq_tensor(name, features)
        self.g.add_operator(
            BuiltinOperator.REVERSE_V2,
            [x, axis],
            [out],
            BuiltinOptions.ReverseV2Options,
            schema.ReverseV2OptionsT(),
        )
        return out

    def last_step(self, x: int, name: str, features: int) -> int:
        """x[:, -1] (x[-1] when time-major) with a shrinking STRIDED_SLICE."""
        begin = [0, 0, 0]
        begin[self.time_axis] = -1
        other = 0b101 if self.time_axis == 1 else 0b110
        opts = schema.StridedSliceOptionsT()
        opts.beginMask = other
        opts.endMask = other
        opts.shrinkAxisMask = 1 << self.time_axis
        out = self.step_tensor(name, features)
        self.g.add_operator(
            BuiltinOperator.STRIDED_SLICE,
            [
                x,
                self.int_constant(f"last_step/begin_t{self.time_axis}", begin),
                self.int_constant("last_step/end", [0, 0, 0]),
                self.int_constant("last_step/strides", [1, 1, 1]),
            ],
            [out],
            BuiltinOptions.StridedSliceOptions,
            opts,
        )
        return out

    def concat(self, parts: list[int], name: str, features: int, rank: int) -> int:
        opts = schema.ConcatenationOptionsT()
        opts.axis = rank - 1
        out = (self.seq_tensor if rank == 3 else self.step_tensor)(name, features)
        self.g.add_operator(
            BuiltinOperator.CONCATENATION,
            parts,
            [out],
            BuiltinOptions.ConcatenationOptions,
            opts,
        )
        return out

    def head(self, x: int, rank: int) -> int:
        head = self.model.head
        assert head is not None
        kernel = self.g.add_constant("head/kernel", head.kernel.astype(np.float32))
        bias = self.g.add_constant("head/bias", head.bias.astype(np.float32))
        make = self.seq_tensor if rank == 3 else self.step_tensor
        fc_out = make("head/dense" if head.activation == "softmax" else "head/output", head.units)
        opts = schema.FullyConnectedOptionsT()
        opts.keepNumDims = rank == 3
        self.g.add_operator(
            BuiltinOperator.FULLY_CONNECTED,
            [x, kernel, bias],
            [fc_out],
            BuiltinOptions.FullyConnectedOptions,
            opts,
            version=FC_KEEP_NUM_DIMS_VERSION if rank == 3 else 1,
        )
        if head.activation != "softmax":
            return fc_out
        out = make("head/output", head.units)
        sm = schema.SoftmaxOptionsT()
        sm.beta = 1.0
        self.g.add_operator(
            BuiltinOperator.SOFTMAX, [fc_out], [out], BuiltinOptions.SoftmaxOptions, sm
        )
        return out

    def op_tensors(self, weights: LSTMWeights) -> LSTMOpTensors:
        if self.options.quantize == "dynamic":
            return hybrid_tensors(weights)
        return float_tensors(weights)

    # -- whole graph -----------------------------------------------------------------------
    def build(self) -> bytes:
        model = self.model
        x = self.seq_tensor("input", model.n_input)
        self.g.add_input("input", x)
        seq, features, rank = x, model.n_input, 3
        finals: list[tuple[str, int, int]] = []
        for k, layer in enumerate(model.layers):
            last = k == len(model.layers) - 1
            reversed_in = None
            raws = []
            for d, weights in enumerate(layer.directions):
                prefix = direction_prefix(k, d)
                inp = seq
                if layer.runs_reversed(d):
                    if reversed_in is None:
                        reversed_in = self.reverse(seq, f"layer{k}/input_reversed", features)
                    inp = reversed_in
                r = add_lstm_op(
                    self.g,
                    inp,
                    weights.spec,
                    self.op_tensors(weights),
                    prefix=prefix,
                    batch=self.batch,
                    time_major=self.time_major,
                )
                raws.append((r.output, weights.spec.n_output))
                finals.append((prefix.split("/")[1], r.output_state, r.cell_state))
            if not last:
                finals.clear()
            if last and not model.return_sequences:
                parts = [
                    self.last_step(t, f"layer{k}/{direction_prefix(k, d).split('/')[1]}/last", n)
                    for d, (t, n) in enumerate(raws)
                ]
                rank = 2
            else:
                parts = [
                    self.reverse(t, f"{direction_prefix(k, d)}/output_realigned", n)
                    if layer.realigns(d)
                    else t
                    for d, (t, n) in enumerate(raws)
                ]
            features = layer.n_output
            seq = (
                parts[0]
                if len(parts) == 1
                else self.concat(parts, f"layer{k}/output", features, rank)
            )
        if model.head is not None:
            seq = self.head(seq, rank)
        outputs = [("output", seq)]
        if model.return_state:
            bidi = model.layers[-1].bidirectional
            for name, h, c in finals:
                suffix = f"_{name}" if bidi else ""
                outputs += [(f"state_h{suffix}", h), (f"state_c{suffix}", c)]
        for name, tensor in outputs:
            self.g.add_output(name, tensor)
        meta = build_metadata(
            model, self.options, time_major=self.time_major, outputs=[n for n, _ in outputs]
        )
        self.g.add_metadata(METADATA_NAME, encode_metadata(meta))
        return self.g.finish()


def _check_supported(model: LSTMModel, options: CompileOptions) -> None:
    for k, layer in enumerate(model.layers):
        for weights in layer.directions:
            try:
                check_activation(weights.spec)
            except UnsupportedError as exc:
                raise UnsupportedError("tflite", f"layer {k}: {exc.reason}") from None


def to_tflite(model: LSTMModel | LSTMWeights, options: CompileOptions | None = None) -> bytes:
    """Compile ``model`` to .tflite bytes (deterministic: same input, same bytes).

    ``options.quantize``: "none" (float32), "dynamic" (int8 weights, float activations,
    op version 3) or "int8" (delegated to :mod:`edgelstm.quant`). Refuses with
    :class:`UnsupportedError` what the fused kernel cannot compute exactly.
    """
    model = LSTMModel.of(model)
    options = options if options is not None else CompileOptions()
    _check_supported(model, options)
    if options.quantize == "int8":
        try:
            from edgelstm.quant import to_tflite_int8  # type: ignore[attr-defined]
        except ImportError:
            raise UnsupportedError(
                "tflite",
                "full-integer (int8) emission needs edgelstm.quant.to_tflite_int8, "
                "which this build does not provide; use quantize='dynamic' or 'none'",
            ) from None
        return to_tflite_int8(model, options)
    return _Emitter(model, options).build()


def save_tflite(
    model: LSTMModel | LSTMWeights,
    path: str | os.PathLike[str],
    options: CompileOptions | None = None,
) -> None:
    """Compile and write atomically (on any error no file is written or replaced)."""
    data = to_tflite(model, options)
    write_bytes_atomic(path, data)

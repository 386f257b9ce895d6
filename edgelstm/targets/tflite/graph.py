"""The TFLite graph around fused LSTM ops, shared by the float/hybrid and the int8 emitters.

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

State tensors are named ``layer{k}/{forward|backward}/output_state`` and ``.../cell_state``.
A non-stateful model's file writes them before each LSTM op from two never-written
variables (``{state}/initial`` + ``{state}/zero``), so every invoke starts from the same
state on a reused interpreter; set an initial state with
``interpreter.set_tensor(index_of(state + "/initial"), value)``. A stateful model's file
(``stateful=True``, streaming) has no such ops: its states carry over from one invoke to
the next until ``reset_all_variables()``. :class:`edgelstm.runtime.LiteRTRunner` handles
both (and carries state across ``invoke_chunk`` calls either way).

:class:`GraphEmitter` builds that structure; a subclass says which tensors the LSTM ops
and the head get (:mod:`.fused`: float or hybrid; :mod:`.int8`: full integer).
"""

from __future__ import annotations

import numpy as np

from edgelstm.ir.model import DirectionVisit, LayerVisit, LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.tflite.builder import GraphBuilder
from edgelstm.targets.tflite.lstm_op import LSTMOpTensors, add_lstm_op
from edgelstm.targets.tflite.metadata import (
    METADATA_NAME,
    build_metadata,
    direction_prefix,
    encode_metadata,
)
from edgelstm.targets.tflite.schema import BuiltinOperator, BuiltinOptions, schema

FC_KEEP_NUM_DIMS_VERSION = 5
"""FULLY_CONNECTED version with keep_num_dims (the head on a whole sequence)."""


class GraphEmitter:
    """Builds the graph for one model; small helpers keep shapes and signatures in step.

    Subclasses implement :meth:`op_tensors` and :meth:`head` and may retype the sequence
    and step tensors (:meth:`seq_tensor`, :meth:`step_tensor`).
    """

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

    # -- what subclasses choose ------------------------------------------------------------
    def op_tensors(self, visit: DirectionVisit) -> LSTMOpTensors:
        """The weight/bias/state tensors of one direction's LSTM op."""
        raise NotImplementedError

    def head(self, x: int, rank: int) -> int:
        """The dense head on ``x`` (rank 3: per time step; 2: on the last step)."""
        raise NotImplementedError

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

    # -- whole graph -----------------------------------------------------------------------
    def layer(
        self, visit: LayerVisit, seq: int, features: int
    ) -> tuple[int, int, list[tuple[str, int, int]]]:
        """Emit one layer on ``seq`` (``features`` wide): (its output, the output's rank,
        (direction name, h, c) of every direction's state variables)."""
        k = visit.k
        reversed_in = None
        raws: list[tuple[DirectionVisit, int]] = []
        states = []
        for v in visit.directions:
            inp = seq
            if v.runs_reversed:
                if reversed_in is None:
                    reversed_in = self.reverse(seq, f"layer{k}/input_reversed", features)
                inp = reversed_in
            r = add_lstm_op(
                self.g,
                inp,
                v.weights.spec,
                self.op_tensors(v),
                prefix=direction_prefix(k, v.d),
                batch=self.batch,
                time_major=self.time_major,
                reset_state=not self.model.stateful,
            )
            raws.append((v, r.output))
            states.append((v.name, r.output_state, r.cell_state))
        rank = 3
        if visit.last and not self.model.return_sequences:
            rank = 2
            parts = [
                self.last_step(t, f"{direction_prefix(k, v.d)}/last", v.weights.spec.n_output)
                for v, t in raws
            ]
        else:
            parts = [
                self.reverse(
                    t, f"{direction_prefix(k, v.d)}/output_realigned", v.weights.spec.n_output
                )
                if v.realigns
                else t
                for v, t in raws
            ]
        if len(parts) == 1:
            return parts[0], rank, states
        return self.concat(parts, f"layer{k}/output", visit.layer.n_output, rank), rank, states

    def build(self) -> bytes:
        model = self.model
        x = self.seq_tensor("input", model.n_input)
        self.g.add_input("input", x)
        seq, features, rank = x, model.n_input, 3
        finals: list[tuple[str, int, int]] = []
        for visit in model.walk_layers():
            seq, rank, finals = self.layer(visit, seq, features)
            features = visit.layer.n_output
        if model.head is not None:
            seq = self.head(seq, rank)
        outputs = [("output", seq)]
        if model.return_state:  # the last layer's state variables
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

"""The unfused TFLite lowering: hoisted input GEMM + a recurrence XNNPACK can run.

XNNPACK does not take the fused UNIDIRECTIONAL_SEQUENCE_LSTM (and a model with variable
tensors is not delegated at all), so this lowering writes the LSTM as ordinary ops:

1. per layer, the input projection of every time step and every direction as ONE
   FULLY_CONNECTED over [B, T, I] (keep_num_dims; a bidirectional layer stacks both
   directions' weights: one GEMM), gate biases folded in when there is no layer norm;
2. the recurrence (:mod:`.loop`) either fully unrolled or as a WHILE loop of
   K steps per trip, each step one recurrent FULLY_CONNECTED plus elementwise ops
   (:mod:`.cell`) for every feature: CIFG, peephole, projection ± bias,
   cell/projection clips, layer norm, any activation;
3. stacking, bidirectional concat, go_backwards, last step, dense head as in the fused graph.

Quantization (``options.quantize``): "none" float32; "dynamic" int8 per-channel weights
with float activations (XNNPACK's dynamic-range FC); "int8" static int8 matrix products
with calibrated activation ranges and float gate math (see :mod:`.cell`); for the TFLite
Micro profile, ``gates="int16"``: everything integer (see :mod:`.icell`), W x_t per step
instead of hoisted (a hoisted [B, T, G*N] product is copied into the WHILE body: measured
59 vs 17 KB of arena on the JapaneseVowels classifier).

Graph interface (signature ``serving_default``): input ``input`` ([B, T, I], or [T, B, I]
when time-major). A non-stateful model starts from a zero state built in the graph (a
constant, or FILL with the input's batch when the batch is dynamic), so the file takes only
``input`` and a reused interpreter gives the same answer on every invoke. The streaming form
(``UnfusedOptions(state_inputs=True)``, implied by a stateful model) adds, per layer k and
direction, inputs ``layer{k}/{forward|backward}/initial_h`` [B, P] and ``.../initial_c``
[B, N] (TFLite has no optional inputs: the caller sets them on every invoke;
:class:`edgelstm.runtime.LiteRTRunner` does). Outputs: ``output``, then (with
``return_state``) ``state_h``/``state_c`` of the last layer like the fused graph, then the
other final states ``layer{k}/{dir}/final_h`` / ``final_c``; feeding finals back as initial
states streams a long sequence in chunks. The metadata entry ``edgelstm`` (same format as
the fused graph's) adds ``lowering`` and ``state_io`` (streaming form: which signature names
carry state) or ``final_states`` (stateless form: which outputs are final states).
"""

from __future__ import annotations

import numpy as np

from edgelstm.errors import UnsupportedError
from edgelstm.ir.model import LSTMModel
from edgelstm.ir.options import SCHEDULES, CompileOptions
from edgelstm.ir.weights import LSTMWeights
from edgelstm.quant.tensor import product_bias, quantize_symmetric
from edgelstm.targets.tflite.builder import GraphBuilder
from edgelstm.targets.tflite.metadata import (
    DIRECTION_NAMES,
    METADATA_NAME,
    build_metadata,
    encode_metadata,
)
from edgelstm.targets.tflite.quant_desc import quantization
from edgelstm.targets.tflite.unfused.cell import StaticQuant
from edgelstm.targets.tflite.unfused.icell import Int16Ops
from edgelstm.targets.tflite.unfused.iranges import q16
from edgelstm.targets.tflite.unfused.loop import Direction, unrolled, while_loop
from edgelstm.targets.tflite.unfused.ops import Ops
from edgelstm.targets.tflite.unfused.params import (
    direction_params,
    stacked_input_weights,
)
from edgelstm.targets.tflite.unfused.schedule import choose_schedule, while_plan


class _Lowering:
    def __init__(
        self,
        model: LSTMModel,
        options: CompileOptions,
        schedule: str,
        chunk: int,
        statics: dict | None,
        segment: int | None = None,
    ) -> None:
        from edgelstm._version import __version__

        self.model, self.options = model, options
        self.time_major = model.time_major if options.time_major is None else options.time_major
        self.g = GraphBuilder(f"edgelstm {__version__} unfused")
        self.ops = Ops(self.g, "")
        self.batch = options.batch if options.batch is not None else -1
        self.steps = options.seq_len
        self.schedule, self.chunk, self.statics = schedule, chunk, statics or {}
        self.segment = segment
        self.mode = options.quantize
        self.iq = self.statics.get("int16")
        """The integer lowering's scales (:mod:`.iranges`) when the gate math is int16."""
        if self.iq is not None:
            self.mode = "int16"
        self.act16 = self.iq is not None and self.iq.input16 is not None
        """int16 activations end to end (``quantize="int16x8"``): int16 graph I/O with
        ``Int8Options(io=True)``, else float I/O with QUANTIZE/DEQUANTIZE around the graph."""
        self.state_io: list[dict] = []
        self.micro = options.target == "tflm"
        """TFLite Micro profile: int8 I/O, zero initial states as constants (TFLM feeds only
        the sequence), no extra final-state outputs."""
        self.out_quant: list = []
        self.streaming = not self.micro and (options.unfused.state_inputs or model.stateful)
        """Initial states are graph inputs (``UnfusedOptions.state_inputs`` or a stateful
        model); otherwise zeros built in the graph and the file takes only ``input``."""
        self._batch_dim: int | None = None

    def input_projection(self, k: int, seq: int, params: list) -> int:
        ops, mode = self.ops, self.mode
        w, bias, _ = stacked_input_weights(params)
        units = w.shape[0]
        if mode == "int16":  # int8 (or float) graph input -> int16; W x per step
            # (a hoisted [B, T, G*N] product would be copied into the WHILE body: ~2x arena)
            if k > 0 or (self.act16 and self.options.int8.io):
                return seq
            return ops.quantize(seq, q16(self.iq.layer_in[k]), "int16")
        if mode == "none":
            wt, bt = ops.const(f"layer{k}/input_weights", w), ops.const(f"layer{k}/bias", bias)
            return ops.fc(seq, wt, bt, units, keep_dims=True, hint=f"layer{k}/xw")
        qm = quantize_symmetric(w, "int8", axis=0)
        wt = ops.const(f"layer{k}/input_weights", qm.data, "int8", quantization(qm.params))
        if mode == "dynamic":
            bt = ops.const(f"layer{k}/bias", bias)
            return ops.fc(seq, wt, bt, units, keep_dims=True, hybrid=True, hint=f"layer{k}/xw")
        q_in, q_out = self.statics[("input", k)], self.statics[("xw", k)]
        b = product_bias(bias, q_in.scale[0], qm.params)
        bt = ops.const(f"layer{k}/bias", b.data, "int32", quantization(b.params))
        xq = seq if self.micro and k == 0 else ops.quantize(seq, q_in)  # int8 input
        y = ops.fc(xq, wt, bt, units, keep_dims=True, out_dtype="int8", quant=q_out)
        # TFLM: the loop carries xw as int8 (its WHILE copies loop tensors into each
        # subgraph: 4x less arena); each step dequantizes its slice
        return y if self.micro else ops.dequantize(y)

    def initial_state(self, x: int, k: int, d: int, which: str, width: int) -> int:
        """A state input (streaming form) or an in-graph zero state: a constant for a fixed
        batch, else FILL with the batch of the input ``x`` (never a variable tensor, and
        nothing an app must set: a reused interpreter cannot read a stale state)."""
        name = f"layer{k}/{DIRECTION_NAMES[d]}/initial_{which}"
        if self.streaming:
            t = self.ops.tensor(name, [self.batch, width])
            self.g.add_input(name, t)
            return t
        if self.iq is not None:
            q = self.iq.cells[k, d]
            scale = q.h if which == "h" else q.c
            zeros = np.zeros((self.batch, width), np.int16)
            return self.ops.const(name, zeros, "int16", q16(scale))
        if self.batch > 0:
            return self.ops.const(name, np.zeros((self.batch, width), np.float32))
        if self._batch_dim is None:
            axis = 1 if self.time_major else 0
            self._batch_dim = self.ops.slice(self.ops.shape_of(x), [axis], [1], [1])
        dims = self.ops.concat([self._batch_dim, self.ops.ints([width])], 0, "int32")
        return self.ops.zeros(dims, [self.batch, width])

    def build(self) -> bytes:
        model, ops = self.model, self.ops
        shape = self._layout([self.batch, self.steps or -1, model.n_input])
        if self.act16:
            io16 = self.options.int8.io
            x = ops.tensor("input", shape, *(("int16", q16(self.iq.layer_in[0])) if io16 else ()))
        elif self.iq is not None:
            x = ops.tensor("input", shape, "int8", self.iq.input8)
        elif self.micro:
            x = ops.tensor("input", shape, "int8", self.statics[("input", 0)])
        else:
            x = ops.tensor("input", shape)
        self.g.add_input("input", x)
        seq = ops.transpose(x, [1, 0, 2]) if self.time_major else x
        rank, finals = 3, []
        for visit in model.walk_layers():
            k = visit.k
            params = [direction_params(v.weights) for v in visit.directions]
            xw = self.input_projection(k, seq, params)
            _, _, offsets = stacked_input_weights(params)
            dirs = []
            for v, p in zip(visit.directions, params, strict=True):
                h0 = self.initial_state(x, k, v.d, "h", p.spec.n_output)
                c0 = self.initial_state(x, k, v.d, "c", p.spec.n_cell)
                dirs.append(
                    Direction(
                        name=f"layer{k}/{v.name}",
                        params=p,
                        offset=0 if self.iq is not None else offsets[v.d],
                        reverse=v.runs_reversed,
                        realign=v.realigns,
                        h0=h0,
                        c0=c0,
                        static=(
                            self.iq.cells[k, v.d]
                            if self.iq is not None
                            else self.statics.get(("cell", k, v.d))
                        ),
                        columns=visit.layer.n_input if self.iq is not None else 0,
                    )
                )
            keep = not (visit.last and not model.return_sequences)
            if self.schedule == "unrolled":
                results = unrolled(ops, xw, dirs, self.steps, self.mode, keep)
            else:
                results = while_loop(
                    self.g, ops, xw, dirs, self.steps, self.chunk, self.mode, keep, self.segment
                )
            finals.append(results)
            if keep:
                parts = [r.sequence for r in results]
            else:
                parts, rank = [r.h for r in results], 2
            seq = parts[0] if len(parts) == 1 else ops.concat(parts, -1)
        if model.head is not None:
            seq = self.head(seq, rank)
        if rank == 3 and self.time_major:
            seq = ops.transpose(seq, [1, 0, 2])
        return self.finish(seq, finals)

    def _layout(self, shape: list[int]) -> list[int]:
        return [shape[1], shape[0], shape[2]] if self.time_major else shape

    def head(self, seq: int, rank: int) -> int:
        head, ops = self.model.head, self.ops
        assert head is not None
        if self.iq is not None:
            planes = self.options.int8.weight_planes
            return Int16Ops(ops).dense_head(head, seq, rank == 3, self.iq.logits, planes)
        kernel = ops.const("head/kernel", head.kernel.astype(np.float32))
        bias = ops.const("head/bias", head.bias.astype(np.float32))
        out = ops.fc(seq, kernel, bias, head.units, keep_dims=rank == 3, hint="head/dense")
        return ops.softmax(out) if head.activation == "softmax" else out

    def finish(self, out: int, finals: list) -> bytes:
        model = self.model
        outputs = [("output", out)]
        exposed = set()
        if model.return_state:
            bidi = model.layers[-1].bidirectional
            for d, r in enumerate(finals[-1]):
                suffix = f"_{DIRECTION_NAMES[d]}" if bidi else ""
                outputs += [(f"state_h{suffix}", r.h), (f"state_c{suffix}", r.c)]
                exposed.add((len(finals) - 1, d))
        if self.act16:
            outputs = self._outputs16(outputs)
        elif self.micro:
            outputs = [
                (name, self.ops.quantize(t, q))
                for (name, t), q in zip(outputs, self.out_quant, strict=True)
            ]
        for k, results in enumerate(finals):
            if self.micro:
                break
            for d, r in enumerate(results):
                prefix = f"layer{k}/{DIRECTION_NAMES[d]}"
                if (k, d) in exposed:
                    suffix = f"_{DIRECTION_NAMES[d]}" if len(results) > 1 else ""
                    fh, fc = f"state_h{suffix}", f"state_c{suffix}"
                else:
                    fh, fc = f"{prefix}/final_h", f"{prefix}/final_c"
                    outputs += [(fh, r.h), (fc, r.c)]
                entry = {"layer": k, "direction": d, "final_h": fh, "final_c": fc}
                if self.streaming:
                    entry.update(initial_h=f"{prefix}/initial_h", initial_c=f"{prefix}/initial_c")
                self.state_io.append(entry)
        for name, tensor in outputs:
            self.g.add_output(name, tensor)
        meta = build_metadata(
            model, self.options, time_major=self.time_major, outputs=[n for n, _ in outputs]
        )
        meta["lowering"] = {
            "kind": "unfused",
            "schedule": self.schedule,
            "steps_per_trip": self.chunk,
            "segment": self.segment,
            "quantize": self.options.quantize,
        }
        if self.act16:
            meta["options"]["quantize"] = meta["lowering"]["quantize"] = "int16x8"
        if self.micro:  # which gate arithmetic the TFLM profile chose (inspect shows it)
            meta["lowering"]["gates"] = "int16" if self.iq is not None else "float32"
        if self.iq is not None and self.options.int8.weight_planes > 1:
            meta["lowering"]["weight_planes"] = self.options.int8.weight_planes
        # state_io: the streaming form's state inputs and outputs; final_states: a
        # stateless file's final states (outputs only, the initial state is in the graph)
        meta["state_io" if self.streaming else "final_states"] = self.state_io
        self.g.add_metadata(METADATA_NAME, encode_metadata(meta))
        return self.g.finish()

    def _outputs16(self, outputs: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """int16 outputs at their own scales (a tensor named twice, e.g. ``output`` and
        ``state_h`` of the last step, gets a same-scale QUANTIZE copy), or float ones."""
        if not self.options.int8.io:
            return [(name, self.ops.dequantize(t)) for name, t in outputs]
        seen: set[int] = set()
        out = []
        for name, t in outputs:
            u = self.ops.quantize(t, self.ops.quant[t], "int16") if t in seen else t
            seen.add(u)
            out.append((name, u))
        return out


def to_tflite_unfused(
    model: LSTMModel | LSTMWeights,
    options: CompileOptions | None = None,
    gates: str = "float32",
    activations: str = "int8",
) -> bytes:
    """Compile ``model`` with the unfused lowering (see the module docstring).

    ``options.unfused`` (:class:`~edgelstm.ir.options.UnfusedOptions`) gives the schedule:
    "auto" (:func:`choose_schedule`), "unrolled" (needs ``options.seq_len``) or "while"
    with ``chunk`` steps per trip (a divisor of T) and output ``segment`` (a multiple of
    ``chunk`` dividing T); None picks them (:func:`while_plan`).
    ``options.quantize`` "int8" calibrates on ``options.calibration`` ([N, T, I]).
    ``gates`` "int16" (TFLite Micro profile only): the all-integer cell (:mod:`.icell`);
    with ``activations="int16"`` its graph input and outputs are int16 too (or float with
    QUANTIZE/DEQUANTIZE when not ``options.int8.io``): ``quantize="int16x8"``.
    """
    model = LSTMModel.of(model)
    options = options if options is not None else CompileOptions()
    if options.target == "tflm" and (options.quantize != "int8" or options.batch is None):
        raise UnsupportedError(
            "tflite-unfused", "the tflm profile needs quantize='int8' and a fixed batch"
        )
    chosen = options.unfused
    schedule, chunk, segment = chosen.schedule, chosen.chunk, chosen.segment
    steps = options.seq_len
    if schedule == "auto":
        schedule, chunk, segment = choose_schedule(model, steps, options.quantize, options.batch)
    elif schedule == "unrolled":
        if steps is None:
            raise UnsupportedError(
                "tflite-unfused", "an unrolled recurrence needs a fixed sequence length (seq_len)"
            )
        chunk, segment = steps, None
    else:
        if steps is None and chunk not in (None, 1):
            raise UnsupportedError(
                "tflite-unfused", "a dynamic sequence length needs 1 step per WHILE trip"
            )
        if steps is not None and chunk is not None and (chunk < 1 or steps % chunk):
            raise UnsupportedError(
                "tflite-unfused", f"steps per trip {chunk} must divide the sequence length {steps}"
            )
        chunk, auto_segment = while_plan(model, steps, options.quantize, options.batch, chunk)
        segment = auto_segment if segment is None else segment
        if steps is not None and (segment % chunk or steps % segment):
            raise UnsupportedError(
                "tflite-unfused",
                f"segment {segment} must divide T={steps} and be a multiple of {chunk}",
            )
    statics = None
    if activations not in ("int8", "int16") or (activations == "int16" and gates != "int16"):
        raise ValueError(f"activations {activations!r}: 'int8', or 'int16' with int16 gates")
    if gates == "int16":
        if options.target != "tflm":
            raise UnsupportedError("tflite-unfused", "int16 gate math is the tflm profile's")
        from edgelstm.targets.tflite.unfused.iranges import int_params

        statics = {"int16": int_params(model, options, input16=activations == "int16")}
    elif options.quantize == "int8":
        from edgelstm.targets.tflite.unfused.ranges import static_params

        statics = static_params(model, options)
    lowering = _Lowering(model, options, schedule, chunk, statics, segment)
    if lowering.micro and not lowering.act16:
        from edgelstm.targets.tflite.unfused.ranges import output_params

        lowering.out_quant = output_params(model, options)
    return lowering.build()


__all__ = ["SCHEDULES", "StaticQuant", "choose_schedule", "to_tflite_unfused", "while_plan"]

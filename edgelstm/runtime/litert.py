"""Run a .tflite file (fused LSTM with state variables) on LiteRT or TensorFlow's interpreter.

``run(x)`` resets every state variable, optionally sets initial states, invokes once and
returns the outputs in the file's signature order (the ``serving_default`` SignatureDef as
written, i.e. ``output`` then any states). ``invoke_chunk(x)`` does not reset: the state
variables carry over, so feeding a sequence in chunks equals one invoke over all of it.
``reset()`` zeroes the states.

How states are set: the fused op's ``output_state`` (h) and ``cell_state`` (c) are variable
tensors; after ``reset_all_variables()``, ``set_tensor(index, value)`` on them sets the initial
state for the next ``invoke()``. Resizing an input re-allocates tensors, which zeroes
variables, so the runner saves and restores them around a resize.

Unfused graphs (:mod:`edgelstm.targets.tflite.unfused`) have no variable tensors. In their
streaming form the state is graph inputs ``.../initial_h|c`` and outputs (metadata
``state_io`` says which); the runner keeps that state itself: ``run`` feeds zeros (or
``initial_states``), ``invoke_chunk`` feeds the previous call's final states, and only the
model's own outputs are returned, so both kinds of file behave alike. The stateless form
(the default for non-stateful models) builds its zero state in the graph and has no state
inputs (metadata ``final_states`` names its final-state outputs, read by :meth:`state`):
initial states and ``invoke_chunk`` are refused there, naming the streaming option.

Integer tensors (full-int8 models with int8 I/O, int8 h and int16 c states): float values
given for them are quantized with that tensor's own scale and zero point (round to nearest,
saturate); integer values of the right dtype pass through. Outputs are returned as stored;
``output_quantization`` gives each output's (scale, zero point) to dequantize.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgelstm.errors import InputDataError, ModelFileError, UnsupportedError
from edgelstm.quant.tensor import from_codes, to_codes

BACKENDS = ("litert", "tf")
_LSTM_BUILTIN = 44  # BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
_ADD_BUILTIN = 0  # BuiltinOperator.ADD
_OUTPUT_STATE_INPUT, _CELL_STATE_INPUT = 18, 19
_STATELESS = (
    "this file is a stateless unfused graph (zero initial state built in, no state inputs); "
    "compile with UnfusedOptions(state_inputs=True) for the streaming form"
)


def _edgelstm_metadata(model: Any) -> dict[str, Any]:
    """The ``edgelstm`` metadata entry as a dict ({} when absent or unreadable)."""
    import json

    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"edgelstm":
            try:
                meta = json.loads(bytes(model.Buffers(entry.Buffer()).DataAsNumpy()).decode())
            except (ValueError, TypeError):
                return {}
            return meta if isinstance(meta, dict) else {}
    return {}


def _scan(data: bytes) -> tuple[list[tuple[int, int]], bool, list[tuple[str, int]] | None]:
    """(h, c) indices of each fused LSTM op in operator order, its time_major option and the
    signature's (name, tensor index) outputs (None without a signature)."""
    pairs, time_major, outputs, _, _ = _scan_all(data)
    return pairs, time_major, outputs


def _scan_all(data: bytes) -> tuple[list, bool, list | None, list | None, list[dict]]:
    """:func:`_scan` plus the signature's (name, index) inputs and the metadata state_io."""
    from edgelstm.targets.tflite.schema import schema

    try:
        model = schema.Model.GetRootAs(data, 0)
        codes = [model.OperatorCodes(i).BuiltinCode() for i in range(model.OperatorCodesLength())]
        graph = model.Subgraphs(0)
        pairs, time_major = [], False
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if codes[op.OpcodeIndex()] != _LSTM_BUILTIN:
                continue
            pairs.append((op.Inputs(_OUTPUT_STATE_INPUT), op.Inputs(_CELL_STATE_INPUT)))
            table = op.BuiltinOptions()
            if table is not None:
                opts = schema.UnidirectionalSequenceLSTMOptions()
                opts.Init(table.Bytes, table.Pos)
                time_major = bool(opts.TimeMajor())
        outputs = inputs = None
        if model.SignatureDefsLength():
            sig = model.SignatureDefs(0)
            outputs = [
                (sig.Outputs(i).Name().decode(), sig.Outputs(i).TensorIndex())
                for i in range(sig.OutputsLength())
            ]
            inputs = [
                (sig.Inputs(i).Name().decode(), sig.Inputs(i).TensorIndex())
                for i in range(sig.InputsLength())
            ]
        state_io: list[dict] = []
        if not pairs:  # an unfused graph: state and layout from its metadata
            meta = _edgelstm_metadata(model)
            entries = meta.get("state_io") or meta.get("final_states") or []
            state_io = [e for e in entries if isinstance(e, dict)]
            if state_io:
                time_major = bool((meta.get("model") or {}).get("time_major"))
    except Exception as exc:  # noqa: BLE001 - any flatbuffer decoding failure
        raise ModelFileError(f"model: corrupted TFLite flatbuffer ({exc})") from None
    return pairs, time_major, outputs, inputs, state_io


def reset_variables(data: bytes, states: Sequence[int]) -> dict[int, tuple[int, int]]:
    """State variable -> (initial, zero) variables of the ADD that writes it before the LSTM.

    Files of non-stateful models reset their states in the graph on every invoke (see
    :func:`edgelstm.targets.tflite.lstm_op._add_state_reset`): an initial state, or the state
    carried from the previous invoke, is set on ``initial``; {} for stateful files.
    """
    from edgelstm.targets.tflite.schema import schema

    wanted, found = set(states), {}
    model = schema.Model.GetRootAs(data, 0)
    codes = [model.OperatorCodes(i).BuiltinCode() for i in range(model.OperatorCodesLength())]
    graph = model.Subgraphs(0)
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if codes[op.OpcodeIndex()] == _ADD_BUILTIN and op.OutputsLength() == 1:
            out = op.Outputs(0)
            if out in wanted and op.InputsLength() == 2:
                found[out] = (op.Inputs(0), op.Inputs(1))
    return found


def _to_dtype(value: Any, detail: dict[str, Any], what: str) -> np.ndarray:
    """``value`` in the tensor's dtype, quantizing floats for integer tensors."""
    dtype = np.dtype(detail["dtype"])
    arr = np.asarray(value)
    if arr.dtype == dtype:
        return arr
    if np.issubdtype(dtype, np.integer) and np.issubdtype(arr.dtype, np.floating):
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if not scale:
            raise InputDataError(f"{what}: integer tensor without a quantization scale")
        return to_codes(arr.astype(np.float64), scale, zero_point, dtype.name)
    return arr.astype(dtype)


def _is_pair(entry: Any) -> bool:
    return (
        isinstance(entry, tuple | list)
        and len(entry) == 2
        and all(isinstance(a, np.ndarray) for a in entry)
    )


class LiteRTRunner:
    """A small stateful wrapper around ``Interpreter`` (see the module docstring).

    ``model`` is a path or the file's bytes; ``backend`` "litert" uses
    ``ai_edge_litert.interpreter.Interpreter``, "tf" uses ``tf.lite.Interpreter``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | bytes,
        num_threads: int = 1,
        backend: str = "litert",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, found {backend!r}")
        if isinstance(model, bytes | bytearray):
            data = bytes(model)
        else:
            from edgelstm._io import read_bytes

            data = read_bytes(Path(model), "TFLite model")
        if data[4:8] != b"TFL3":
            raise ModelFileError("model: not a TFLite flatbuffer (identifier is not TFL3)")
        if backend == "litert":
            from ai_edge_litert.interpreter import Interpreter
        else:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        try:
            self.interpreter: Any = Interpreter(model_content=data, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"model: the interpreter rejected it ({exc})") from None
        self.backend = backend
        self._data = data
        self.states, self.time_major, signature_outputs, signature_inputs, state_io = _scan_all(
            data
        )
        self.resets = reset_variables(data, [i for pair in self.states for i in pair])
        """State variable -> (initial, zero): present when the file resets its state."""
        """(h, c) variable-tensor indices per LSTM op in operator order."""
        details = self.interpreter.get_input_details()
        by_index = {d["index"]: d for d in self.interpreter.get_output_details()}
        named = signature_outputs or [(d["name"], i) for i, d in by_index.items()]
        self._state_io: list[tuple[int, int, int, int]] = []
        """Unfused graphs: (initial h, initial c, final h, final c) tensor indices; the
        initial ones are -1 in a stateless file (zero state built in the graph)."""
        if state_io:
            ins, outs = dict(signature_inputs or []), dict(named)
            try:
                self._state_io = [
                    (
                        ins[e["initial_h"]] if "initial_h" in e else -1,
                        ins[e["initial_c"]] if "initial_c" in e else -1,
                        outs[e["final_h"]],
                        outs[e["final_c"]],
                    )
                    for e in state_io
                ]
            except KeyError as exc:
                raise ModelFileError(f"model: state_io names a missing tensor {exc}") from None
            hidden = {e["final_h"] for e in state_io} | {e["final_c"] for e in state_io}
            named = [(n, i) for n, i in named if n not in hidden or n.startswith("state_")]
            details = [d for d in details if d["index"] == ins.get("input", details[0]["index"])]
            self._carry: list[np.ndarray | None] = [None] * (2 * len(self._state_io))
            self._fed: list[np.ndarray | None] = list(self._carry)
        self._streaming = all(h0 >= 0 for h0, _, _, _ in self._state_io)
        """False for a stateless unfused file: it has no state inputs to carry state into."""
        if len(details) != 1:
            raise ModelFileError(f"model: expected 1 input, found {len(details)}")
        self._input = details[0]
        self._outputs = [by_index[i] for _, i in named if i in by_index]
        self.output_names = [n for n, i in named if i in by_index]
        """Output names in the order :meth:`run` returns them (the signature's)."""
        self.output_quantization = [tuple(d.get("quantization", (0.0, 0))) for d in self._outputs]
        """(scale, zero point) per output; (0.0, 0) for float outputs."""
        self._details = {d["index"]: d for d in self.interpreter.get_tensor_details()}

    # -- state -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Zero every state variable."""
        self.interpreter.reset_all_variables()
        if self._state_io:
            self._carry = [None] * len(self._carry)

    def _state_values(self) -> list[np.ndarray]:
        if self._state_io:
            return []
        return [self.interpreter.get_tensor(i).copy() for pair in self.states for i in pair]

    def _set_initial_states(self, initial_states: Sequence[Any]) -> None:
        flat: list[Any] = []
        for entry in initial_states:
            if entry is None or _is_pair(entry):
                flat.append(entry)  # flat: one (h, c) per op
            else:
                flat.extend(entry)  # nested: [layer][direction] = (h, c)
        if not self._streaming and any(v is not None for v in flat):
            raise InputDataError(f"initial states: {_STATELESS}")  # like a stateless ONNX file
        count = len(self._state_io) if self._state_io else len(self.states)
        if len(flat) != count:
            raise InputDataError(
                f"initial_states: expected {count} (h, c) pairs (one per LSTM "
                f"direction), found {len(flat)}"
            )
        if self._state_io:
            for k, value in enumerate(flat):
                if value is not None:
                    for j, given in enumerate(value):
                        self._carry[2 * k + j] = np.asarray(given, dtype=np.float32)
            return
        for pair, value in zip(self.states, flat, strict=True):
            if value is None:
                continue
            for index, given in zip(pair, value, strict=True):
                want = tuple(self.interpreter.get_tensor(index).shape)
                arr = _to_dtype(given, self._details[index], "initial state")
                if arr.size != int(np.prod(want)):
                    raise InputDataError(
                        f"initial state: expected shape {list(want)}, found {list(arr.shape)}"
                    )
                target = self.resets.get(index, (index,))[0]
                self.interpreter.set_tensor(target, arr.reshape(want))

    def _carry_over(self) -> None:
        """A file that resets its state: start the next invoke from the current state."""
        for state, (initial, _) in self.resets.items():
            self.interpreter.set_tensor(initial, self.interpreter.get_tensor(state))

    # -- invoking --------------------------------------------------------------------------
    def _prepare_input(self, x: np.ndarray) -> np.ndarray:
        arr = _to_dtype(x, self._input, "input")
        current = tuple(self.interpreter.get_tensor(self._input["index"]).shape)
        if arr.shape == current:
            return arr
        if arr.ndim != len(current):
            raise InputDataError(f"input: expected rank {len(current)}, found shape {arr.shape}")
        saved = self._state_values()
        try:
            self.interpreter.resize_tensor_input(self._input["index"], list(arr.shape), strict=True)
            batch_axis = self._batch_axis()
            new_batch = arr.shape[batch_axis]
            if new_batch != current[batch_axis]:
                for h0, c0, _, _ in self._state_io if self._streaming else ():
                    for index in (h0, c0):
                        width = self.interpreter.get_tensor(index).shape[-1]
                        self.interpreter.resize_tensor_input(index, [new_batch, width], strict=True)
                    self._carry = [None] * len(self._carry)
                for pair in self.states:
                    for index in pair:
                        width = self.interpreter.get_tensor(index).shape[-1]
                        for t in (index, *self.resets.get(index, ())):
                            self.interpreter.resize_tensor_input(t, [new_batch, width], strict=True)
            self.interpreter.allocate_tensors()
            if self._state_io:
                self._fed = [None] * len(self._fed)
        except (ValueError, RuntimeError) as exc:
            raise InputDataError(
                f"input: cannot use shape {list(arr.shape)} with this model ({exc})"
            ) from None
        if arr.shape[self._batch_axis()] == current[self._batch_axis()]:
            flat = [i for pair in self.states for i in pair]
            for index, value in zip(flat, saved, strict=True):
                self.interpreter.set_tensor(index, value)
        return arr

    def _batch_axis(self) -> int:
        return 1 if self.time_major else 0

    def _invoke(self, arr: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self._input["index"], arr)
        if self._state_io and self._streaming:
            self._feed_states()
        self.interpreter.invoke()
        if self._state_io:
            finals = [i for _, _, fh, fc in self._state_io for i in (fh, fc)]
            self._carry = [self.interpreter.get_tensor(i).copy() for i in finals]
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self._outputs]

    def _feed_states(self) -> None:
        """Set the unfused graph's initial-state inputs from the carried state (zeros when
        none); a zero state already in place is not set again."""
        inputs = [i for h0, c0, _, _ in self._state_io for i in (h0, c0)]
        for k, index in enumerate(inputs):
            value = self._carry[k]
            if value is None:
                if self._fed[k] is not None and not self._fed[k].any():
                    continue
                value = np.zeros(self.interpreter.get_tensor(index).shape, np.float32)
            want = tuple(self.interpreter.get_tensor(index).shape)
            if value.size != int(np.prod(want)):
                raise InputDataError(
                    f"initial state: expected shape {list(want)}, found {list(value.shape)}"
                )
            value = value.reshape(want)
            self.interpreter.set_tensor(index, value)
            self._fed[k] = value

    def run(self, x: np.ndarray, initial_states: Sequence[Any] | None = None) -> list[np.ndarray]:
        """Reset states (then set ``initial_states`` if given), invoke once on ``x``.

        ``initial_states`` is ``[layer][direction] = (h, c)`` (like ``reference_model``) or a
        flat list of (h, c) per LSTM op in operator order; None entries keep zeros.
        """
        arr = self._prepare_input(x)
        self.reset()
        if initial_states is not None:
            self._set_initial_states(initial_states)
        return self._invoke(arr)

    def invoke_chunk(self, x: np.ndarray) -> list[np.ndarray]:
        """Invoke on the next chunk of a stream: states carry over from the previous call."""
        if not self._streaming:
            raise UnsupportedError("streaming in chunks (invoke_chunk)", _STATELESS)
        arr = self._prepare_input(x)
        self._carry_over()
        return self._invoke(arr)

    def state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Current (h, c) of every LSTM op, in operator order."""
        if self._state_io:
            shapes = [i for e in self._state_io for i in (e[:2] if self._streaming else e[2:])]
            vals = [
                v if v is not None else np.zeros(self.interpreter.get_tensor(i).shape, np.float32)
                for v, i in zip(self._carry, shapes, strict=True)
            ]
            return [(vals[2 * k], vals[2 * k + 1]) for k in range(len(self._state_io))]
        return [
            (self.interpreter.get_tensor(h).copy(), self.interpreter.get_tensor(c).copy())
            for h, c in self.states
        ]

    def float_state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`state` as float32: int8/int16 states dequantized with their own parameters."""
        tensors = [(fh, fc) for _, _, fh, fc in self._state_io] if self._state_io else self.states
        return [
            (self._dequantize(h, ih), self._dequantize(c, ic))
            for (h, c), (ih, ic) in zip(self.state(), tensors, strict=True)
        ]

    def _dequantize(self, value: np.ndarray, index: int) -> np.ndarray:
        scale, zero_point = self._details[index].get("quantization", (0.0, 0))
        if value.dtype.kind not in "iu" or not scale:
            return np.asarray(value, dtype=np.float32)
        return from_codes(value, scale, zero_point, "float32")

"""Read fused-LSTM .tflite files back into an :class:`LSTMModel`.

Weights are recovered per op input role (via :mod:`edgelstm.ir.roles`): float32/float16 as is,
quantized tensors (hybrid int8, full-int8 int8/int16/int32) dequantized, constants behind a
DEQUANTIZE op followed. Files written by edgelstm carry an ``edgelstm`` metadata entry that
gives the exact structure and provenance. Other files (e.g. the legacy TF converter's fused
Keras LSTM) are read by walking the graph: LSTM ops in order are layers; two ops reading the
same tensor, one through REVERSE_V2, form a bidirectional layer; one reading a reversed
input alone is ``go_backwards``; a rank-2 first output means ``return_sequences=False``;
FULLY_CONNECTED (+ SOFTMAX) after the last LSTM is the head; extra outputs that are the last
layer's state variables mean ``return_state``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgelstm._io import read_bytes
from edgelstm.errors import EdgeLSTMError, ModelFileError, UnsupportedError
from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
from edgelstm.ir.roles import (
    CELL_STATE_INDEX,
    INPUT_INDEX,
    N_INPUTS,
    N_INPUTS_NO_LAYER_NORM,
    OUTPUT_STATE_INDEX,
    WEIGHT_ROLES,
)
from edgelstm.ir.weights import LSTMWeights
from edgelstm.targets.tflite.metadata import read_metadata, refuse_linked
from edgelstm.targets.tflite.schema import (
    NAME_OF_ACTIVATION,
    NUMPY_OF_TYPE,
    BuiltinOperator,
    builtin_name,
    decode_model,
    schema,
)

WHERE = "tflite"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


class _Graph:
    """The first subgraph of a model with producer/consumer lookups and constant reading.

    Every index read from the file (opcode, tensor, buffer, op input position) is checked
    against the vector it indexes before use: a bad one is a ModelFileError naming it.
    """

    def __init__(self, model: schema.ModelT, data: bytes, where: str) -> None:
        if not model.subgraphs:
            raise ModelFileError(f"{where}: the model has no subgraph")
        self.model = model
        self.data = data
        self.where = where
        self.graph = model.subgraphs[0]
        self.tensors = self.graph.tensors or []
        self.ops = self.graph.operators or []
        self.codes = [
            max(int(c.builtinCode), int(c.deprecatedBuiltinCode))
            for c in (model.operatorCodes or [])
        ]
        for k, op in enumerate(self.ops):
            i = int(op.opcodeIndex)
            if not 0 <= i < len(self.codes):
                raise ModelFileError(
                    f"{where}: operator #{k} has opcode index {i}, but the model has "
                    f"{len(self.codes)} operator code(s)"
                )
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for k, op in enumerate(self.ops):
            for t in _ints(op.outputs):
                self.producer[t] = k
            for t in _ints(op.inputs):
                self.consumers.setdefault(t, []).append(k)

    def code(self, op_index: int) -> int:
        return self.codes[self.ops[op_index].opcodeIndex]

    def ops_of(self, builtin: int) -> list[int]:
        return [k for k in range(len(self.ops)) if self.code(k) == builtin]

    def tensor(self, t: int, what: str) -> schema.TensorT:
        """Tensor ``t``, which must exist (a -1 "absent" index is refused too)."""
        if not 0 <= t < len(self.tensors):
            raise ModelFileError(
                f"{self.where}: {what} is tensor index {t}, but the subgraph has "
                f"{len(self.tensors)} tensor(s)"
            )
        return self.tensors[t]

    def input_of(self, op_index: int, position: int, what: str) -> int:
        """The (existing) tensor index at input ``position`` of operator ``op_index``."""
        inputs = _ints(self.ops[op_index].inputs)
        name = builtin_name(self.code(op_index))
        if position >= len(inputs):
            raise ModelFileError(
                f"{self.where}: {name} op #{op_index} has {len(inputs)} input(s), no input "
                f"{position} ({what})"
            )
        self.tensor(inputs[position], f"{what} (input {position} of {name} op #{op_index})")
        return inputs[position]

    def lstm_inputs(self, op_index: int) -> list[int]:
        """The inputs of an LSTM op, whose count must match the role table."""
        inputs = _ints(self.ops[op_index].inputs)
        if len(inputs) not in (N_INPUTS_NO_LAYER_NORM, N_INPUTS):
            raise ModelFileError(
                f"{self.where}: LSTM op #{op_index} has {len(inputs)} input(s); "
                f"UNIDIRECTIONAL_SEQUENCE_LSTM takes {N_INPUTS_NO_LAYER_NORM} or {N_INPUTS}"
            )
        return inputs

    def name(self, t: int, what: str = "tensor") -> str:
        return _text(self.tensor(t, what).name)

    def rank(self, t: int, what: str = "tensor") -> int:
        return len(_ints(self.tensor(t, what).shape))

    def raw(self, t: int, what: str) -> bytes | None:
        b = int(self.tensor(t, what).buffer)
        buffers = self.model.buffers or []
        if not 0 <= b < len(buffers):
            raise ModelFileError(
                f"{self.where}: {what} ({self.name(t)!r}) refers to buffer {b}, but the model "
                f"has {len(buffers)} buffer(s)"
            )
        buf = buffers[b]
        if buf.data is not None and len(buf.data):
            return np.asarray(buf.data, dtype=np.uint8).tobytes()
        offset, size = int(getattr(buf, "offset", 0) or 0), int(buf.size or 0)
        if offset and size:
            if offset < 0 or size < 0 or offset + size > len(self.data):
                raise ModelFileError(
                    f"{self.where}: {what} ({self.name(t)!r}): buffer {b} spans bytes "
                    f"{offset}..{offset + size}, outside the {len(self.data)}-byte file"
                )
            return self.data[offset : offset + size]
        return None

    def constant(self, t: int, what: str) -> np.ndarray:
        """The float32 value of constant tensor ``t`` (dequantized when quantized)."""
        seen: set[int] = set()
        raw = self.raw(t, what)
        while raw is None:  # follow DEQUANTIZE producers back to the stored constant
            producer = self.producer.get(t)
            if producer is None or self.code(producer) != BuiltinOperator.DEQUANTIZE:
                raise ModelFileError(
                    f"{self.where}: {what} ({self.name(t)!r}) has no constant data"
                )
            if producer in seen:
                raise ModelFileError(f"{self.where}: {what}: DEQUANTIZE ops form a cycle")
            seen.add(producer)
            t = self.input_of(producer, 0, what)
            raw = self.raw(t, what)
        tensor = self.tensors[t]
        dtype = NUMPY_OF_TYPE.get(tensor.type)
        if dtype is None:
            raise UnsupportedError(
                "tflite reader", f"{what}: tensor type {tensor.type} is not readable"
            )
        shape = _ints(tensor.shape)
        try:
            arr = np.frombuffer(raw, dtype=dtype).reshape(shape)
        except (ValueError, OverflowError):
            raise ModelFileError(
                f"{self.where}: {what} buffer holds {len(raw)} bytes, not {shape} of {dtype}"
            ) from None
        q = tensor.quantization
        scale = _floats(q.scale) if q is not None else []
        if np.issubdtype(dtype, np.integer) and not scale:
            raise ModelFileError(
                f"{self.where}: {what} ({self.name(t)!r}) is {dtype.name} without a "
                "quantization scale: its float value is unknown"
            )
        if np.issubdtype(dtype, np.integer):
            zero = _ints(q.zeroPoint) or [0] * len(scale)
            if len(zero) != len(scale):
                raise ModelFileError(
                    f"{self.where}: {what} ({self.name(t)!r}) has {len(scale)} quantization "
                    f"scale(s) but {len(zero)} zero point(s)"
                )
            if len(scale) == 1:
                return ((arr.astype(np.float64) - zero[0]) * scale[0]).astype(np.float32)
            axis = int(q.quantizedDimension)
            if not 0 <= axis < arr.ndim or arr.shape[axis] != len(scale):
                raise ModelFileError(
                    f"{self.where}: {what} ({self.name(t)!r}) has {len(scale)} per-channel "
                    f"scales along dimension {axis}, but its shape is {list(arr.shape)}"
                )
            bshape = [1] * arr.ndim
            bshape[axis] = len(scale)
            s = np.reshape(scale, bshape)
            z = np.reshape(zero, bshape)
            return ((arr.astype(np.float64) - z) * s).astype(np.float32)
        return arr.astype(np.float32)

    def trace_input(self, t: int) -> tuple[int, bool]:
        """Follow REVERSE_V2 producers back: (source tensor, reversed?)."""
        reversed_ = False
        seen: set[int] = set()
        while t in self.producer and self.code(self.producer[t]) == BuiltinOperator.REVERSE_V2:
            k = self.producer[t]
            if k in seen:
                raise ModelFileError(f"{self.where}: REVERSE_V2 ops form a cycle")
            seen.add(k)
            t = self.input_of(k, 0, "reversed tensor")
            reversed_ = not reversed_
        return t, reversed_


def _ints(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _floats(values: Any) -> list[float]:
    return [] if values is None else [float(v) for v in values]


def _lstm_options(g: _Graph, op_index: int) -> schema.UnidirectionalSequenceLSTMOptionsT:
    opts = g.ops[op_index].builtinOptions
    if opts is None:
        return schema.UnidirectionalSequenceLSTMOptionsT()
    if not isinstance(opts, schema.UnidirectionalSequenceLSTMOptionsT):
        raise ModelFileError(
            f"{g.where}: LSTM op #{op_index} has options of another operator "
            f"({type(opts).__name__.removesuffix('T')})"
        )
    return opts


def _clip(stored: float, recorded: Any) -> float:
    """The op stores clips as float32: prefer the metadata's value when it rounds to it."""
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        try:
            if np.float32(recorded) == np.float32(stored):
                return float(recorded)
        except OverflowError:  # an int beyond float range: not the stored value
            pass
    return float(stored)


def _direction(g: _Graph, op_index: int, recorded: dict[str, Any] | None = None) -> LSTMWeights:
    """Canonical weights of one fused LSTM op (``recorded``: its metadata spec, if any)."""
    inputs = g.lstm_inputs(op_index)
    where = f"{g.where}: LSTM op #{op_index}"
    tensors: dict[str, np.ndarray] = {}
    for role in WEIGHT_ROLES:
        if role.index < len(inputs) and inputs[role.index] >= 0:
            tensors[role.name] = g.constant(inputs[role.index], f"{where} {role.name}")
    opts = _lstm_options(g, op_index)
    activation = NAME_OF_ACTIVATION.get(int(opts.fusedActivationFunction))
    if activation is None:
        raise UnsupportedError(
            "tflite reader",
            f"LSTM op #{op_index}: fused activation {opts.fusedActivationFunction} has no "
            "LSTM cell equivalent",
        )
    try:
        return LSTMWeights.from_tensors(
            tensors,
            cell_clip=_clip(opts.cellClip, (recorded or {}).get("cell_clip")),
            proj_clip=_clip(opts.projClip, (recorded or {}).get("proj_clip"))
            if "projection_weights" in tensors
            else 0.0,
            activation=activation,
        )
    except EdgeLSTMError as exc:
        raise ModelFileError(f"{where}: {exc}") from None


def _state_prefix(g: _Graph, op_index: int) -> str:
    what = f"LSTM op #{op_index} output state"
    name = g.name(g.lstm_inputs(op_index)[OUTPUT_STATE_INDEX], what)
    return name.rsplit("/", 1)[0]


def _head(g: _Graph, after: set[int], activation: str | None) -> DenseHead | None:
    fcs = [k for k in g.ops_of(BuiltinOperator.FULLY_CONNECTED) if k in after]
    if not fcs:
        return None
    if len(fcs) > 1:
        raise UnsupportedError("tflite reader", "more than one FULLY_CONNECTED after the LSTMs")
    inputs = _ints(g.ops[fcs[0]].inputs)
    kernel = g.constant(g.input_of(fcs[0], 1, "head kernel"), "head kernel")
    if kernel.ndim != 2:
        raise ModelFileError(
            f"{g.where}: head kernel: expected 2-D [units, features], found {list(kernel.shape)}"
        )
    bias = (
        g.constant(g.input_of(fcs[0], 2, "head bias"), "head bias")
        if len(inputs) > 2 and inputs[2] >= 0
        else np.zeros(kernel.shape[0], np.float32)
    )
    if activation is None:
        activation = "softmax" if g.ops_of(BuiltinOperator.SOFTMAX) else "linear"
    return DenseHead(kernel, bias, activation)


def _downstream(g: _Graph, start: int) -> set[int]:
    """Operator indices reachable from operator ``start``'s outputs."""
    seen: set[int] = set()
    frontier = list(_ints(g.ops[start].outputs))
    while frontier:
        t = frontier.pop()
        for k in g.consumers.get(t, []):
            if k not in seen:
                seen.add(k)
                frontier.extend(_ints(g.ops[k].outputs))
    return seen


def _from_metadata(g: _Graph, lstm_ops: list[int], meta: dict[str, Any]) -> LSTMModel:
    by_prefix = {_state_prefix(g, k): k for k in lstm_ops}
    info = meta.get("model") or {}  # field types checked by decode_metadata
    layers = []
    for k, layer in enumerate(info.get("layers", [])):
        dirs = []
        for d in layer.get("directions", []):
            if d.get("prefix") not in by_prefix:
                raise ModelFileError(
                    f"{g.where}: metadata names LSTM {d.get('prefix')!r}, not in the graph"
                )
            dirs.append(_direction(g, by_prefix[d["prefix"]], d.get("spec")))
        if not dirs:
            raise ModelFileError(f"{g.where}: metadata layer {k} has no direction")
        layers.append(
            LSTMLayer(
                dirs[0],
                dirs[1] if len(dirs) > 1 else None,
                go_backwards=bool(layer.get("go_backwards")),
                reverse=bool(layer.get("reverse")),
            )
        )
    if not layers:
        raise ModelFileError(f"{g.where}: metadata lists no layer")
    head = None
    if info.get("head") is not None:
        last = lstm_ops[-1]
        head = _head(g, _downstream(g, last), info["head"].get("activation", "linear"))
        if head is None:
            raise ModelFileError(
                f"{g.where}: metadata records a dense head, but no FULLY_CONNECTED op follows "
                "the last LSTM"
            )
    return LSTMModel(
        tuple(layers),
        head=head,
        return_sequences=bool(info.get("return_sequences", True)),
        return_state=bool(info.get("return_state", False)),
        stateful=bool(info.get("stateful", False)),
        time_major=bool(info.get("time_major", False)),
        provenance=dict(meta.get("provenance") or {}),
    )


def _from_graph(g: _Graph, lstm_ops: list[int], description: str) -> LSTMModel:
    groups: dict[int, list[tuple[int, bool]]] = {}
    for k in lstm_ops:
        source, rev = g.trace_input(g.input_of(k, INPUT_INDEX, "LSTM input"))
        groups.setdefault(source, []).append((k, rev))
    layers = []
    for members in groups.values():
        fwd = [k for k, rev in members if not rev]
        bwd = [k for k, rev in members if rev]
        if len(members) == 2 and len(fwd) == 1 and len(bwd) == 1:
            layers.append(LSTMLayer(_direction(g, fwd[0]), _direction(g, bwd[0])))
        elif len(members) == 1:
            k, rev = members[0]
            layers.append(LSTMLayer(_direction(g, k), go_backwards=rev))
        else:
            raise UnsupportedError(
                "tflite reader",
                f"{len(members)} LSTM ops read the same tensor; only uni- and bidirectional "
                "layers are understood",
            )
    outputs = _ints(g.graph.outputs)
    if not outputs:
        raise ModelFileError(f"{g.where}: the graph has no output")
    last_ops = [k for k, _ in list(groups.values())[-1]]
    last_states = {
        t
        for k in last_ops
        for t in (g.lstm_inputs(k)[i] for i in (OUTPUT_STATE_INDEX, CELL_STATE_INDEX))
    }
    extra = outputs[1:]
    return_state = bool(extra) and set(extra) <= last_states and len(extra) == len(last_states)
    downstream: set[int] = set()
    for k in last_ops:
        downstream |= _downstream(g, k)
    time_major = bool(_lstm_options(g, lstm_ops[0]).timeMajor)
    return LSTMModel(
        tuple(layers),
        head=_head(g, downstream, None),
        return_sequences=g.rank(outputs[0], "graph output 0") == 3,
        return_state=return_state,
        time_major=time_major,
        provenance={"source": "tflite", "tflite_description": description},
    )


def model_from_bytes(data: bytes, where: str = WHERE) -> LSTMModel:
    """Parse .tflite bytes into an :class:`LSTMModel` (see the module docstring)."""
    model = decode_model(data, where)
    refuse_linked(model, where)
    g = _Graph(model, data, where)
    lstm_ops = g.ops_of(BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM)
    if not lstm_ops:
        found = sorted({builtin_name(g.code(k)) for k in range(len(g.ops))})
        raise UnsupportedError(
            "tflite reader",
            f"no UNIDIRECTIONAL_SEQUENCE_LSTM op in {where} (ops: {', '.join(found) or 'none'}); "
            "only fused-LSTM files can be read",
        )
    meta = read_metadata(model, where)
    if meta is not None:
        return _from_metadata(g, lstm_ops, meta)
    return _from_graph(g, lstm_ops, _text(model.description))


def from_tflite(path: str | os.PathLike[str]) -> LSTMModel:
    """Load a fused-LSTM .tflite file (ours or the TF converter's) as an :class:`LSTMModel`."""
    return model_from_bytes(read_bytes(path, "TFLite model"), where=str(path))

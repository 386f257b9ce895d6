"""A small, deterministic TFLite graph builder on the schema's object API.

One main subgraph (plus, via :meth:`GraphBuilder.add_subgraph`, further subgraphs such as
WHILE cond/body that share its buffers and opcodes), constant buffers (16-byte aligned, like
the TF converter writes them), tensors, operators with builtin options, named graph
inputs/outputs, one signature def and metadata entries. Buffer 0 is the empty sentinel;
variable tensors get no buffer data. The same calls in the same order always give
byte-identical output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flatbuffers
import numpy as np

from edgelstm.targets.tflite.schema import (
    FILE_IDENTIFIER,
    NUMPY_OF_TYPE,
    SCHEMA_VERSION,
    schema,
    tensor_type,
)

BUFFER_ALIGNMENT = 16


class _AlignedBufferT(schema.BufferT):
    """A BufferT whose data vector starts on a 16-byte boundary in the file."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data_offset = None
        if self.data is not None:
            raw = bytes(self.data)
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            builder.vectorNumElems = len(raw)
            data_offset = builder.EndVector()
        schema.BufferStart(builder)
        if data_offset is not None:
            schema.BufferAddData(builder, data_offset)
        return schema.BufferEnd(builder)


@dataclass(frozen=True)
class Quantization:
    """Quantization parameters of one tensor (per-tensor when ``scale`` has one entry)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int = 0

    def to_schema(self) -> schema.QuantizationParametersT:
        q = schema.QuantizationParametersT()
        q.scale = [float(s) for s in self.scale]
        q.zeroPoint = [int(z) for z in self.zero_point]
        q.quantizedDimension = int(self.quantized_dimension)
        return q


class GraphBuilder:
    """Accumulates one TFLite subgraph and serializes it with :meth:`finish`."""

    def __init__(self, description: str = "") -> None:
        self.description = description
        self._buffers: list[schema.BufferT] = [_AlignedBufferT()]
        self._tensors: list[schema.TensorT] = []
        self._names: set[str] = set()
        self._opcodes: list[tuple[int, int]] = []
        self._operators: list[schema.OperatorT] = []
        self._inputs: list[tuple[str, int]] = []
        self._outputs: list[tuple[str, int]] = []
        self._metadata: list[tuple[str, int]] = []
        self._subgraphs: list[tuple[str, GraphBuilder]] = []

    # -- subgraphs -------------------------------------------------------------------------
    def add_subgraph(self, name: str) -> tuple[int, GraphBuilder]:
        """A further subgraph (e.g. a WHILE cond or body) written after the main one.

        Returns (its subgraph index, a builder for it). The builder shares this model's
        buffers and operator codes; its tensors, operators, inputs and outputs are its own
        (``add_input``/``add_output`` declare the subgraph's inputs/outputs; only the main
        subgraph gets a signature and metadata).
        """
        sub = GraphBuilder(self.description)
        sub._buffers = self._buffers
        sub._opcodes = self._opcodes
        self._subgraphs.append((name, sub))
        return len(self._subgraphs), sub

    def _subgraph_t(self, name: str) -> schema.SubGraphT:
        sub = schema.SubGraphT()
        sub.name = name
        sub.tensors = self._tensors
        sub.operators = self._operators
        sub.inputs = [t for _, t in self._inputs]
        sub.outputs = [t for _, t in self._outputs]
        return sub

    # -- tensors ---------------------------------------------------------------------------
    def add_buffer(self, data: bytes | None) -> int:
        """Append a buffer (None: an empty one) and return its index."""
        buf = _AlignedBufferT()
        if data is not None:
            buf.data = data
        self._buffers.append(buf)
        return len(self._buffers) - 1

    def add_tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: str | np.dtype | int = "float32",
        *,
        data: np.ndarray | None = None,
        quantization: Quantization | None = None,
        is_variable: bool = False,
        shape_signature: Sequence[int] | None = None,
    ) -> int:
        """Add a tensor; ``data`` (a constant) is stored in its own buffer in ``dtype``.

        ``shape_signature`` (with -1 for dynamic dimensions) is written only when it differs
        from ``shape``. Names must be unique (the reader and runner look tensors up by name).
        """
        if name in self._names:
            raise ValueError(f"duplicate tensor name {name!r}")
        self._names.add(name)
        t = schema.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = tensor_type(dtype)
        t.isVariable = bool(is_variable)
        if shape_signature is not None and list(shape_signature) != t.shape:
            t.shapeSignature = [int(d) for d in shape_signature]
        if quantization is not None:
            t.quantization = quantization.to_schema()
        if data is not None:
            if is_variable:
                raise ValueError(f"{name}: a variable tensor cannot have constant data")
            arr = np.array(data, dtype=NUMPY_OF_TYPE[t.type], order="C")  # keeps 0-d scalars
            if list(arr.shape) != t.shape:
                raise ValueError(f"{name}: data shape {arr.shape} != tensor shape {t.shape}")
            t.buffer = self.add_buffer(arr.tobytes())
        else:
            t.buffer = 0
        self._tensors.append(t)
        return len(self._tensors) - 1

    def add_constant(
        self,
        name: str,
        array: np.ndarray,
        dtype: str | np.dtype | int | None = None,
        quantization: Quantization | None = None,
    ) -> int:
        """A constant tensor holding ``array`` (dtype defaults to the array's)."""
        arr = np.asarray(array)
        return self.add_tensor(
            name,
            arr.shape,
            dtype if dtype is not None else arr.dtype,
            data=arr,
            quantization=quantization,
        )

    def tensor_shape(self, index: int) -> list[int]:
        return list(self._tensors[index].shape)

    def tensor_signature(self, index: int) -> list[int]:
        t = self._tensors[index]
        return list(t.shapeSignature if t.shapeSignature is not None else t.shape)

    # -- operators -------------------------------------------------------------------------
    def _opcode_index(self, builtin: int, version: int) -> int:
        key = (int(builtin), int(version))
        if key not in self._opcodes:
            self._opcodes.append(key)
        return self._opcodes.index(key)

    def add_operator(
        self,
        builtin: int,
        inputs: Sequence[int],
        outputs: Sequence[int],
        options_type: int = 0,
        options: object | None = None,
        *,
        version: int = 1,
        intermediates: Sequence[int] | None = None,
    ) -> int:
        """Append an operator (inputs of -1 mark absent optional inputs)."""
        op = schema.OperatorT()
        op.opcodeIndex = self._opcode_index(builtin, version)
        op.inputs = [int(i) for i in inputs]
        op.outputs = [int(o) for o in outputs]
        op.builtinOptionsType = int(options_type)
        op.builtinOptions = options
        if intermediates:
            op.intermediates = [int(i) for i in intermediates]
        self._operators.append(op)
        return len(self._operators) - 1

    # -- graph interface -------------------------------------------------------------------
    def add_input(self, name: str, tensor: int) -> None:
        """Declare a graph input (its signature name is ``name``)."""
        self._inputs.append((name, tensor))

    def add_output(self, name: str, tensor: int) -> None:
        """Declare a graph output (its signature name is ``name``)."""
        self._outputs.append((name, tensor))

    def add_metadata(self, name: str, data: bytes) -> None:
        """Attach a named metadata entry (stored in its own buffer)."""
        self._metadata.append((name, self.add_buffer(data)))

    def finish(self, signature_key: str = "serving_default") -> bytes:
        """Serialize the model (file identifier TFL3, schema version 3)."""
        sub = self._subgraph_t("main")

        sig = schema.SignatureDefT()
        sig.signatureKey = signature_key
        sig.subgraphIndex = 0
        sig.inputs = [_tensor_map(n, t) for n, t in self._inputs]
        sig.outputs = [_tensor_map(n, t) for n, t in self._outputs]

        model = schema.ModelT()
        model.version = SCHEMA_VERSION
        model.description = self.description
        model.subgraphs = [sub] + [b._subgraph_t(n) for n, b in self._subgraphs]
        model.buffers = self._buffers
        model.signatureDefs = [sig]
        model.operatorCodes = []
        for builtin, version in self._opcodes:
            code = schema.OperatorCodeT()
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127)
            code.version = version
            model.operatorCodes.append(code)
        if self._metadata:
            model.metadata = []
            for name, buffer in self._metadata:
                m = schema.MetadataT()
                m.name = name
                m.buffer = buffer
                model.metadata.append(m)
        fb = flatbuffers.Builder(1 << 16)
        fb.Finish(model.Pack(fb), file_identifier=FILE_IDENTIFIER)
        return bytes(fb.Output())


def _tensor_map(name: str, tensor: int) -> schema.TensorMapT:
    m = schema.TensorMapT()
    m.name = name
    m.tensorIndex = int(tensor)
    return m

""".tflite to :class:`~edgelstm.inspect.info.ModelInfo`, without an interpreter.

The file is read with the flatbuffer object API of ai-edge-litert's schema bindings (no
interpreter, no TensorFlow), imported on first use. Every look-up by a file-supplied index
is checked (see :mod:`edgelstm.inspect.decode` for how odd fields are shown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgelstm.errors import ModelFileError
from edgelstm.inspect.decode import as_text, decode_metadata, enum_names, item_at, plain
from edgelstm.inspect.info import (
    FC_INPUTS,
    LSTM_INTERMEDIATES,
    LSTM_OP,
    SMALL_VALUES,
    ModelInfo,
    OpInfo,
    TensorInfo,
)
from edgelstm.ir.roles import ROLES

_NP_DTYPES = {
    "float32": "<f4",
    "float16": "<f2",
    "int32": "<i4",
    "int64": "<i8",
    "int16": "<i2",
    "int8": "i1",
    "uint8": "u1",
}


def inspect_tflite(path: Path, data: bytes) -> ModelInfo:
    """Describe the .tflite bytes ``data`` (read from ``path``); ModelFileError if corrupt."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(f"{path}: not a .tflite file (no TFL3 identifier)")
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # noqa: BLE001 - a corrupt flatbuffer fails in arbitrary ways
        raise ModelFileError(f"{path}: corrupted .tflite file ({type(exc).__name__})") from None
    if not model.subgraphs or model.subgraphs[0].inputs is None:
        raise ModelFileError(f"{path}: corrupted .tflite file (no subgraph)")
    try:
        return _tflite_info(path, data, schema, model)
    except Exception as exc:  # noqa: BLE001 - last line of defence: name the file
        raise ModelFileError(f"{path}: corrupted .tflite file ({type(exc).__name__})") from None


def _out_of_range(what: str, index: int) -> TensorInfo:
    return TensorInfo(name=f"<out of range: {what} {index}>", shape=[], dtype="?", index=index)


def _tensor_quantization(q: Any) -> dict[str, Any] | None:
    if q is None or q.scale is None or not len(q.scale):
        return None
    return {
        "scale": [float(s) for s in q.scale],
        "zero_point": [int(z) for z in q.zeroPoint] if q.zeroPoint is not None else [0],
        "axis": int(q.quantizedDimension),
    }


def _tensor_shape(t: Any) -> list[int]:
    """The shape signature (-1 for dynamic dims) when the file has one, else the shape."""
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    sig = t.shapeSignature
    if sig is not None and len(sig):
        shape = [int(d) for d in sig]
    return shape


def _small_value(raw: Any, dtype: str) -> list[Any] | None:
    """The values of a constant of at most :data:`SMALL_VALUES` elements (None otherwise)."""
    np_dtype = _NP_DTYPES.get(dtype)
    if np_dtype is None:
        return None
    import numpy as np

    raw = bytes(raw)
    if len(raw) % np.dtype(np_dtype).itemsize == 0:
        values = np.frombuffer(raw, dtype=np_dtype)
        if values.size <= SMALL_VALUES:
            return values.tolist()
    return None


class _Reader:
    """One parsed flatbuffer with its enum tables: tensors and ops looked up by index."""

    def __init__(self, data: bytes, schema: Any, model: Any) -> None:
        self.data = data
        self.dtypes = enum_names(schema.TensorType)
        self.opnames = enum_names(schema.BuiltinOperator)
        self.acts = enum_names(schema.ActivationFunctionType)
        self.buffers = model.buffers or []
        self.codes = model.operatorCodes or []

    def buffer_bytes(self, index: int) -> Any:
        """The bytes of buffer ``index`` (inline or at an offset); None when it has none."""
        buf = item_at(self.buffers, index) if index > 0 else None
        if buf is not None:
            if buf.data is not None:
                return buf.data
            if buf.offset > 1 and buf.size:
                return self.data[buf.offset : buf.offset + buf.size]
        return None

    def tensor(
        self, sg: Any, index: int, role: str | None = None, optional: bool = False
    ) -> TensorInfo | None:
        index = int(index)
        if optional and index < 0:
            return None
        t = item_at(sg.tensors, index)
        if t is None:
            info = _out_of_range("tensor", index)
            info.role = role
            return info
        raw = self.buffer_bytes(t.buffer)
        quant = _tensor_quantization(t.quantization)
        shape = _tensor_shape(t)
        dtype = self.dtypes.get(t.type)
        dtype = dtype.lower() if dtype else f"type {t.type} (unknown)"
        info = TensorInfo(
            name=as_text(t.name) or f"t{index}",
            shape=shape,
            dtype=dtype,
            index=index,
            role=role,
            constant=raw is not None,
            variable=bool(t.isVariable),
            nbytes=len(raw) if raw is not None else 0,
            quantization=quant,
        )
        if raw is not None and 0 < info.nbytes <= 64:
            info.value = _small_value(raw, dtype)
        return info

    def opcode(self, index: int) -> tuple[str, int | None]:
        """(op name, version) of operator code ``index``."""
        code = item_at(self.codes, int(index))
        if code is None:
            return f"<out of range: opcode {index}>", None
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        name = self.opnames.get(builtin, str(builtin))
        if name == "CUSTOM":
            name = f"CUSTOM:{as_text(code.customCode)}"
        return name, int(code.version)

    def options(self, op: Any) -> dict[str, Any]:
        """The builtin options as plain JSON, the fused activation by name."""
        options = plain(op.builtinOptions) if op.builtinOptions is not None else {}
        if not isinstance(options, dict):
            options = {"value": options}
        fused = options.get("fused_activation_function")
        if isinstance(fused, int):
            options["fused_activation_function"] = self.acts.get(fused, fused)
        return options

    def op(self, s: int, k: int, sg: Any, op: Any) -> OpInfo:
        """Operator ``k`` of subgraph ``s``, its inputs named by role where the op is known."""
        name, version = self.opcode(op.opcodeIndex)
        if name == LSTM_OP:
            roles = [r.name for r in ROLES]
        elif name == "FULLY_CONNECTED":
            roles = list(FC_INPUTS)
        else:
            roles = []
        inputs = [
            self.tensor(sg, i, roles[j] if j < len(roles) else None, optional=True)
            for j, i in enumerate(op.inputs if op.inputs is not None else [])
        ]
        options = self.options(op)
        inter_names = LSTM_INTERMEDIATES if name == LSTM_OP else ()
        inter = [
            self.tensor(sg, i, inter_names[j] if j < len(inter_names) else None, optional=True)
            for j, i in enumerate(op.intermediates if op.intermediates is not None else [])
        ]
        outputs = [self.tensor(sg, i) for i in (op.outputs if op.outputs is not None else [])]
        return OpInfo(
            index=k,
            op=name,
            version=version,
            inputs=inputs,
            outputs=[t for t in outputs if t is not None],
            options=options,
            intermediates=[t for t in inter if t is not None],
            subgraph=s,
        )


def _tflite_info(path: Path, data: bytes, schema: Any, model: Any) -> ModelInfo:
    reader = _Reader(data, schema, model)
    ops = [
        reader.op(s, k, sg, op)
        for s, sg in enumerate(model.subgraphs or [])
        for k, op in enumerate(sg.operators or [])
    ]
    main = model.subgraphs[0]
    metadata: dict[str, Any] = {}
    for m in model.metadata or []:
        raw = reader.buffer_bytes(m.buffer)
        metadata[as_text(m.name)] = "" if raw is None else decode_metadata(bytes(raw))
    weight_bytes = sum(len(b.data) for b in reader.buffers if b.data is not None)
    inputs = [reader.tensor(main, i) for i in main.inputs]
    outputs = [reader.tensor(main, i) for i in (main.outputs if main.outputs is not None else [])]
    return ModelInfo(
        path=str(path),
        format="tflite",
        size_bytes=len(data),
        producer=as_text(model.description),
        inputs=[t for t in inputs if t is not None],
        outputs=[t for t in outputs if t is not None],
        ops=ops,
        metadata=metadata,
        weight_bytes=weight_bytes,
        quantization=_tflite_quantization(inputs, ops, metadata),
    )


def _tflite_quantization(
    inputs: list[TensorInfo | None], ops: list[OpInfo], metadata: dict[str, Any] | None = None
) -> str:
    """Full integer when the LSTM (or, without one, the graph) takes integer input, even if
    QUANTIZE/DEQUANTIZE ops give the file a float interface; "int16x8" when the activations
    are int16 (edgelstm's record, or a foreign file's int16 graph input)."""
    meta = (metadata or {}).get("edgelstm")
    recorded = meta.get("options", {}).get("quantize") if isinstance(meta, dict) else None
    if recorded == "int16x8":
        return "int16x8"
    if recorded is None and any(t is not None and t.dtype == "int16" for t in inputs):
        return "int16x8"
    consts = [t for o in ops for t in o.inputs if t is not None and t.constant]
    lstm_inputs = [o.inputs[0] for o in ops if o.op == LSTM_OP and o.inputs]
    if any(t is not None and t.dtype in ("int8", "uint8", "int16") for t in lstm_inputs or inputs):
        return "int8"
    if any(t.dtype in ("int8", "uint8") for t in consts):
        return "dynamic"
    if any(t.dtype == "float16" for t in consts):
        return "float16"
    return "float"

"""Parsers behind :func:`edgelstm.inspect.info.inspect_model`: .tflite and .onnx to ModelInfo.

TFLite is read with the flatbuffer object API of ai-edge-litert's schema bindings (no
interpreter, no TensorFlow), ONNX with the onnx protobuf; both are imported on first use.

Untrusted files. Everything read from a file goes through the small accessor layer below
(:func:`_text`, :func:`_decode_metadata`, :func:`_onnx_dtype`, :func:`_onnx_initializer`
and ``tensor()`` / ``opcode`` look-ups by index), so a corrupted or adversarial file either
raises :class:`~edgelstm.errors.ModelFileError` naming the problem, or, when only one field
is odd and the rest of the file is readable, is described with that field shown as what it
is (``inspect`` is most useful on exactly the files other tools refuse):

- a file the flatbuffer / protobuf decoder cannot parse, or a .tflite without a subgraph or
  an .onnx with an empty graph: ``ModelFileError``; any other failure while walking the
  decoded file is also turned into ``ModelFileError`` naming the file and the exception type;
- a metadata value that is not UTF-8: ``"<invalid utf-8: N bytes>"``; JSON nested deeper
  than :data:`MAX_JSON_DEPTH`: ``"<JSON nested deeper than 64 levels: N bytes>"`` (never
  parsed, so no recursion); other non-JSON values are kept as text when printable, else
  ``"<N bytes>"``. Names and op types that are not UTF-8 are decoded with U+FFFD;
- a TFLite tensor / opcode index out of range: a placeholder tensor named
  ``"<out of range: tensor 99>"`` (dtype ``"?"``) / op ``"<out of range: opcode 9>"``; a
  buffer index out of range: the tensor is shown as non-constant; an empty zero_point list
  is kept empty (the text shows ``zp=?``);
- an unknown or undefined ONNX elem_type / data_type: dtype ``"elem_type 33 (unknown)"`` /
  ``"elem_type 0 (undefined)"``; an initializer whose data does not match its dims keeps its
  dims and gets ``TensorInfo.note`` (e.g. ``"raw_data 8 bytes, dims imply 16"``), its size is
  what the file actually stores, and no values are shown; external data is never read
  (``"external data (not read)"``); an unreadable attribute: ``"<unreadable attribute
  (type N)>"``.

:class:`~edgelstm.inspect.info.ModelInfo` checks the shape of the JSON it derives
provenance from (a 'model' that is not an object, 'layers' that is not a list are ignored).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edgelstm.errors import ModelFileError
from edgelstm.inspect.info import (
    FC_INPUTS,
    LSTM_INTERMEDIATES,
    LSTM_OP,
    ONNX_DQ_LSTM_INPUTS,
    ONNX_LSTM_INPUTS,
    SMALL_VALUES,
    ModelInfo,
    OpInfo,
    TensorInfo,
)
from edgelstm.ir.roles import ROLES

MAX_JSON_DEPTH = 64
"""Metadata JSON nested deeper than this is shown as a placeholder, not parsed."""

# --------------------------------------------------------------------------- safe accessors


def _text(value: Any) -> str:
    """A name read from a file as str (protobuf hands back bytes when it is not UTF-8)."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _enum_names(cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON-friendly copy of a flatbuffer object-API / protobuf value (arrays -> lists)."""
    if depth > MAX_JSON_DEPTH:
        value = "<nested too deep>"
    elif hasattr(value, "tolist"):
        value = value.tolist()
    elif isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    elif isinstance(value, (list, tuple)):
        value = [_plain(v, depth + 1) for v in value]
    elif hasattr(value, "DESCRIPTOR"):  # a protobuf message (onnx TensorProto, TypeProto, ...)
        value = f"<{type(value).__name__}>"
    elif hasattr(value, "__dict__"):
        value = {_snake(k): _plain(v, depth + 1) for k, v in vars(value).items()}
    return value


def _json_depth(text: str) -> int:
    """Deepest ``[`` / ``{`` nesting of ``text`` outside strings (a linear scan)."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def _decode_metadata(raw: bytes | str) -> Any:
    """A metadata value: parsed JSON, else text, else a placeholder saying what it is."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    raw = bytes(raw)
    try:
        decoded = raw.rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        return f"<invalid utf-8: {len(raw)} bytes>"
    if _json_depth(decoded) > MAX_JSON_DEPTH:
        return f"<JSON nested deeper than {MAX_JSON_DEPTH} levels: {len(raw)} bytes>"
    try:
        return json.loads(decoded)
    except (ValueError, RecursionError):
        return decoded if decoded.isprintable() else f"<{len(raw)} bytes>"


def _at(seq: Any, index: int) -> Any:
    """``seq[index]`` for a file-supplied index, None when out of range (or negative)."""
    if seq is None or not 0 <= index < len(seq):
        return None
    return seq[index]


# --------------------------------------------------------------------------- TFLite


def inspect_tflite(path: Path, data: bytes) -> ModelInfo:
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


def _tflite_info(path: Path, data: bytes, schema: Any, model: Any) -> ModelInfo:
    dtypes = _enum_names(schema.TensorType)
    opnames = _enum_names(schema.BuiltinOperator)
    acts = _enum_names(schema.ActivationFunctionType)
    buffers = model.buffers or []

    def buffer_bytes(index: int) -> Any:
        buf = _at(buffers, index) if index > 0 else None
        if buf is not None:
            if buf.data is not None:
                return buf.data
            if buf.offset > 1 and buf.size:
                return data[buf.offset : buf.offset + buf.size]
        return None

    def tensor(
        sg: Any, index: int, role: str | None = None, optional: bool = False
    ) -> TensorInfo | None:
        index = int(index)
        if optional and index < 0:
            return None
        t = _at(sg.tensors, index)
        if t is None:
            info = _out_of_range("tensor", index)
            info.role = role
            return info
        raw = buffer_bytes(t.buffer)
        q = t.quantization
        quant = None
        if q is not None and q.scale is not None and len(q.scale):
            quant = {
                "scale": [float(s) for s in q.scale],
                "zero_point": [int(z) for z in q.zeroPoint] if q.zeroPoint is not None else [0],
                "axis": int(q.quantizedDimension),
            }
        shape = [int(d) for d in (t.shape if t.shape is not None else [])]
        sig = t.shapeSignature
        if sig is not None and len(sig):
            shape = [int(d) for d in sig]
        dtype = dtypes.get(t.type)
        dtype = dtype.lower() if dtype else f"type {t.type} (unknown)"
        info = TensorInfo(
            name=_text(t.name) or f"t{index}",
            shape=shape,
            dtype=dtype,
            index=index,
            role=role,
            constant=raw is not None,
            variable=bool(t.isVariable),
            nbytes=len(raw) if raw is not None else 0,
            quantization=quant,
        )
        np_dtype = _NP_DTYPES.get(dtype)
        if raw is not None and 0 < info.nbytes <= 64 and np_dtype is not None:
            import numpy as np

            raw = bytes(raw)
            if len(raw) % np.dtype(np_dtype).itemsize == 0:
                values = np.frombuffer(raw, dtype=np_dtype)
                if values.size <= SMALL_VALUES:
                    info.value = values.tolist()
        return info

    ops: list[OpInfo] = []
    codes = model.operatorCodes or []
    for s, sg in enumerate(model.subgraphs or []):
        for k, op in enumerate(sg.operators or []):
            code = _at(codes, int(op.opcodeIndex))
            if code is None:
                name = f"<out of range: opcode {op.opcodeIndex}>"
                version = None
            else:
                builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
                name = opnames.get(builtin, str(builtin))
                if name == "CUSTOM":
                    name = f"CUSTOM:{_text(code.customCode)}"
                version = int(code.version)
            if name == LSTM_OP:
                roles = [r.name for r in ROLES]
            elif name == "FULLY_CONNECTED":
                roles = list(FC_INPUTS)
            else:
                roles = []
            inputs = [
                tensor(sg, i, roles[j] if j < len(roles) else None, optional=True)
                for j, i in enumerate(op.inputs if op.inputs is not None else [])
            ]
            options = _plain(op.builtinOptions) if op.builtinOptions is not None else {}
            if not isinstance(options, dict):
                options = {"value": options}
            fused = options.get("fused_activation_function")
            if isinstance(fused, int):
                options["fused_activation_function"] = acts.get(fused, fused)
            inter_names = LSTM_INTERMEDIATES if name == LSTM_OP else ()
            inter = [
                tensor(sg, i, inter_names[j] if j < len(inter_names) else None, optional=True)
                for j, i in enumerate(op.intermediates if op.intermediates is not None else [])
            ]
            outputs = [tensor(sg, i) for i in (op.outputs if op.outputs is not None else [])]
            ops.append(
                OpInfo(
                    index=k,
                    op=name,
                    version=version,
                    inputs=inputs,
                    outputs=[t for t in outputs if t is not None],
                    options=options,
                    intermediates=[t for t in inter if t is not None],
                    subgraph=s,
                )
            )
    main = model.subgraphs[0]
    metadata: dict[str, Any] = {}
    for m in model.metadata or []:
        raw = buffer_bytes(m.buffer)
        metadata[_text(m.name)] = "" if raw is None else _decode_metadata(bytes(raw))
    weight_bytes = sum(len(b.data) for b in buffers if b.data is not None)
    inputs = [tensor(main, i) for i in main.inputs]
    outputs = [tensor(main, i) for i in (main.outputs if main.outputs is not None else [])]
    return ModelInfo(
        path=str(path),
        format="tflite",
        size_bytes=len(data),
        producer=_text(model.description),
        inputs=[t for t in inputs if t is not None],
        outputs=[t for t in outputs if t is not None],
        ops=ops,
        metadata=metadata,
        weight_bytes=weight_bytes,
        quantization=_tflite_quantization(inputs, ops),
    )


_NP_DTYPES = {
    "float32": "<f4",
    "float16": "<f2",
    "int32": "<i4",
    "int64": "<i8",
    "int16": "<i2",
    "int8": "i1",
    "uint8": "u1",
}


def _tflite_quantization(inputs: list[TensorInfo | None], ops: list[OpInfo]) -> str:
    """Full integer when the LSTM (or, without one, the graph) takes integer input, even if
    QUANTIZE/DEQUANTIZE ops give the file a float interface."""
    consts = [t for o in ops for t in o.inputs if t is not None and t.constant]
    lstm_inputs = [o.inputs[0] for o in ops if o.op == LSTM_OP and o.inputs]
    if any(t is not None and t.dtype in ("int8", "uint8", "int16") for t in lstm_inputs or inputs):
        return "int8"
    if any(t.dtype in ("int8", "uint8") for t in consts):
        return "dynamic"
    if any(t.dtype == "float16" for t in consts):
        return "float16"
    return "float"


# --------------------------------------------------------------------------- ONNX

_ONNX_QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
_SUB_BYTE_BITS = {"int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}


def _onnx_dtype(code: int) -> tuple[str, Any]:
    """(dtype name, numpy dtype or None) of an ONNX elem_type / data_type code."""
    from onnx import helper

    if code == 0:
        return "elem_type 0 (undefined)", None
    try:
        np_dtype = helper.tensor_dtype_to_np_dtype(code)
    except (KeyError, ValueError, TypeError):
        return f"elem_type {code} (unknown)", None
    return np_dtype.name, np_dtype


def _onnx_initializer(t: Any, name: str, role: str | None) -> TensorInfo:
    """An initializer described from its fields, checked before any data is decoded."""
    from onnx import TensorProto, numpy_helper

    dims = [int(d) for d in t.dims]
    dtype, np_dtype = _onnx_dtype(int(t.data_type))
    info = TensorInfo(name, dims, dtype, role=role, constant=True)
    count = math.prod(dims) if all(d >= 0 for d in dims) else None
    raw = t.raw_data if t.HasField("raw_data") else None
    if t.data_location == TensorProto.EXTERNAL:
        info.note = "external data (not read)"
    elif count is None:
        info.note = "negative dims"
    if np_dtype is None or info.note is not None:
        info.nbytes = len(raw) if raw is not None else 0
        return info
    if raw is not None:
        bits = _SUB_BYTE_BITS.get(dtype)
        expected = -(-count * bits // 8) if bits else count * np_dtype.itemsize
        info.nbytes = len(raw)
        if len(raw) != expected:
            info.note = f"raw_data {len(raw)} bytes, dims imply {expected}"
            return info
    if count > SMALL_VALUES and raw is not None:
        return info
    try:
        arr = numpy_helper.to_array(t)
    except Exception as exc:  # noqa: BLE001 - typed *_data fields of the wrong length etc.
        info.note = f"data does not match dims {dims} ({type(exc).__name__})"
        return info
    info.nbytes = int(arr.nbytes)
    if arr.size <= SMALL_VALUES:
        info.value = _plain(arr.reshape(-1).tolist())
    return info


def inspect_onnx(path: Path, data: bytes) -> ModelInfo:
    import onnx

    try:
        model = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors have no common base
        raise ModelFileError(f"{path}: not a valid .onnx file ({type(exc).__name__})") from None
    graph = model.graph
    if not graph.node and not graph.input:
        raise ModelFileError(f"{path}: not a valid .onnx file (empty graph)")
    try:
        return _onnx_info(path, data, model)
    except Exception as exc:  # noqa: BLE001 - last line of defence: name the file
        raise ModelFileError(f"{path}: corrupted .onnx file ({type(exc).__name__})") from None


def _onnx_info(path: Path, data: bytes, model: Any) -> ModelInfo:
    import onnx
    from onnx import helper

    graph = model.graph
    inits = {_text(t.name): t for t in graph.initializer}
    shapes: dict[str, Any] = {}
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        tt = vi.type.tensor_type
        dims = [
            int(d.dim_value) if d.HasField("dim_value") else (_text(d.dim_param) or -1)
            for d in tt.shape.dim
        ]
        shapes[_text(vi.name)] = (dims, _onnx_dtype(int(tt.elem_type))[0])
    opsets = {_text(o.domain) or "ai.onnx": int(o.version) for o in model.opset_import}
    described: dict[tuple[str, str | None], TensorInfo] = {}

    def tensor(name: Any, role: str | None = None) -> TensorInfo | None:
        name = _text(name)
        if not name:
            return None
        if name in inits:
            key = (name, role)
            if key not in described:
                described[key] = _onnx_initializer(inits[name], name, role)
            return described[key]
        dims, dtype = shapes.get(name, ([], "?"))
        return TensorInfo(name, dims, dtype, role=role)

    ops: list[OpInfo] = []
    for k, node in enumerate(graph.node):
        op_type, domain = _text(node.op_type), _text(node.domain)
        roles: tuple[str, ...] = ()
        if op_type == "LSTM":
            roles = ONNX_LSTM_INPUTS
        elif op_type == "DynamicQuantizeLSTM":
            roles = ONNX_DQ_LSTM_INPUTS
        options: dict[str, Any] = {}
        for a in node.attribute:
            try:
                value = helper.get_attribute_value(a)
            except Exception:  # noqa: BLE001 - attribute type the helper does not know
                value = f"<unreadable attribute (type {int(a.type)})>"
            if isinstance(value, onnx.GraphProto):
                value = f"<subgraph {_text(value.name)}: {len(value.node)} nodes>"
            options[_text(a.name)] = _plain(value)
        ops.append(
            OpInfo(
                index=k,
                op=op_type,
                version=opsets.get(domain or "ai.onnx"),
                inputs=[
                    tensor(n, roles[j] if j < len(roles) else None)
                    for j, n in enumerate(node.input)
                ],
                outputs=[t for t in (tensor(n) for n in node.output) if t is not None],
                options=options,
                domain=domain or "ai.onnx",
            )
        )
    metadata: dict[str, Any] = {}
    for prop in model.metadata_props:
        metadata[_text(prop.key)] = _decode_metadata(prop.value)
    inputs = [tensor(i.name) for i in graph.input if _text(i.name) not in inits]
    outputs = [tensor(o.name) for o in graph.output]
    init_infos = [t for t in (tensor(n) for n in inits) if t is not None]
    op_types = {o.op for o in ops}
    if "DynamicQuantizeLSTM" in op_types or op_types & {"MatMulInteger", "DynamicQuantizeMatMul"}:
        kind = "dynamic"
    elif op_types & set(_ONNX_QUANT_OPS):
        kind = "qdq"
    elif any(t.dtype == "float16" for t in init_infos):
        kind = "float16"
    else:
        kind = "float"
    producer = " ".join(p for p in (_text(model.producer_name), _text(model.producer_version)) if p)
    return ModelInfo(
        path=str(path),
        format="onnx",
        size_bytes=len(data),
        producer=producer,
        inputs=[t for t in inputs if t is not None],
        outputs=[t for t in outputs if t is not None],
        ops=ops,
        metadata=metadata,
        weight_bytes=sum(t.nbytes for t in init_infos),
        quantization=kind,
        warnings=_saturation_warnings(model) if kind == "dynamic" else [],
    )


def _saturation_warnings(model: Any) -> list[str]:
    """int8 weights onnxruntime's u8 x s8 kernels would saturate on (x86 without VNNI)."""
    from edgelstm.targets.onnx.weight_schemes import PAIR_LIMIT, pair_sums

    worst = pair_sums(model)
    bad = sorted(n for n, v in worst.items() if v > PAIR_LIMIT)
    if not bad:
        return []
    shown = ", ".join(_text(n) for n in bad[:3]) + (
        f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    )
    return [
        f"int8 weights {shown}: adjacent weight pairs sum to up to "
        f"{max(worst[n] for n in bad)} > {PAIR_LIMIT}; onnxruntime's u8 x s8 kernels saturate "
        "on x86 CPUs without VNNI (AVX2, AVX-512BW): large errors there. Re-quantize with "
        "edgelstm (pair-safe int8) or ORT's reduce_range."
    ]

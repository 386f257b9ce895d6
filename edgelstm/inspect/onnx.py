""".onnx to :class:`~edgelstm.inspect.info.ModelInfo`, from the protobuf alone.

The onnx package is imported on first use. Initializers are described from their fields
and checked before any data is decoded; external data is never read (see
:mod:`edgelstm.inspect.decode` for how odd fields are shown).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgelstm.errors import ModelFileError
from edgelstm.inspect.decode import as_text, decode_metadata, plain
from edgelstm.inspect.info import (
    ONNX_DQ_LSTM_INPUTS,
    ONNX_LSTM_INPUTS,
    SMALL_VALUES,
    ModelInfo,
    OpInfo,
    TensorInfo,
)

_ONNX_QUANT_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear")
_SUB_BYTE_BITS = {"int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}


def inspect_onnx(path: Path, data: bytes) -> ModelInfo:
    """Describe the .onnx bytes ``data`` (read from ``path``); ModelFileError if corrupt."""
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
        info.value = plain(arr.reshape(-1).tolist())
    return info


class _Tensors:
    """Tensor look-up by name: initializers (described once per role) and typed values."""

    def __init__(self, graph: Any) -> None:
        self.inits = {as_text(t.name): t for t in graph.initializer}
        self.shapes: dict[str, Any] = {}
        for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
            tt = vi.type.tensor_type
            dims = [
                int(d.dim_value) if d.HasField("dim_value") else (as_text(d.dim_param) or -1)
                for d in tt.shape.dim
            ]
            self.shapes[as_text(vi.name)] = (dims, _onnx_dtype(int(tt.elem_type))[0])
        self.described: dict[tuple[str, str | None], TensorInfo] = {}

    def __call__(self, name: Any, role: str | None = None) -> TensorInfo | None:
        name = as_text(name)
        if not name:
            return None
        if name in self.inits:
            key = (name, role)
            if key not in self.described:
                self.described[key] = _onnx_initializer(self.inits[name], name, role)
            return self.described[key]
        dims, dtype = self.shapes.get(name, ([], "?"))
        return TensorInfo(name, dims, dtype, role=role)


def _node_options(node: Any) -> dict[str, Any]:
    """A node's attributes as plain JSON (subgraphs summarized, unreadable ones named)."""
    import onnx
    from onnx import helper

    options: dict[str, Any] = {}
    for a in node.attribute:
        try:
            value = helper.get_attribute_value(a)
        except Exception:  # noqa: BLE001 - attribute type the helper does not know
            value = f"<unreadable attribute (type {int(a.type)})>"
        if isinstance(value, onnx.GraphProto):
            value = f"<subgraph {as_text(value.name)}: {len(value.node)} nodes>"
        options[as_text(a.name)] = plain(value)
    return options


def _node_op(k: int, node: Any, tensor: _Tensors, opsets: dict[str, int]) -> OpInfo:
    """Node ``k``, the inputs of LSTM / DynamicQuantizeLSTM named by role."""
    op_type, domain = as_text(node.op_type), as_text(node.domain)
    roles: tuple[str, ...] = ()
    if op_type == "LSTM":
        roles = ONNX_LSTM_INPUTS
    elif op_type == "DynamicQuantizeLSTM":
        roles = ONNX_DQ_LSTM_INPUTS
    options = _node_options(node)
    return OpInfo(
        index=k,
        op=op_type,
        version=opsets.get(domain or "ai.onnx"),
        inputs=[tensor(n, roles[j] if j < len(roles) else None) for j, n in enumerate(node.input)],
        outputs=[t for t in (tensor(n) for n in node.output) if t is not None],
        options=options,
        domain=domain or "ai.onnx",
    )


def _onnx_quantization(ops: list[OpInfo], init_infos: list[TensorInfo]) -> str:
    op_types = {o.op for o in ops}
    if "DynamicQuantizeLSTM" in op_types or op_types & {"MatMulInteger", "DynamicQuantizeMatMul"}:
        return "dynamic"
    if op_types & set(_ONNX_QUANT_OPS):
        return "qdq"
    if any(t.dtype == "float16" for t in init_infos):
        return "float16"
    return "float"


def _onnx_info(path: Path, data: bytes, model: Any) -> ModelInfo:
    graph = model.graph
    tensor = _Tensors(graph)
    opsets = {as_text(o.domain) or "ai.onnx": int(o.version) for o in model.opset_import}
    ops = [_node_op(k, node, tensor, opsets) for k, node in enumerate(graph.node)]
    metadata: dict[str, Any] = {}
    for prop in model.metadata_props:
        metadata[as_text(prop.key)] = decode_metadata(prop.value)
    inputs = [tensor(i.name) for i in graph.input if as_text(i.name) not in tensor.inits]
    outputs = [tensor(o.name) for o in graph.output]
    init_infos = [t for t in (tensor(n) for n in tensor.inits) if t is not None]
    kind = _onnx_quantization(ops, init_infos)
    nodes, graph_time_major = _lstm_nodes_and_layout(model)
    producer = " ".join(
        p for p in (as_text(model.producer_name), as_text(model.producer_version)) if p
    )
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
        lstm_nodes=nodes,
        graph_time_major=graph_time_major,
    )


def lstm_nodes(model: Any) -> list[dict[str, Any]]:
    """Every LSTM node with its path, features and what each target can do with it.

    Weights in external files are not read (inspect never opens other files)."""
    return _lstm_nodes_and_layout(model)[0]


def _lstm_nodes_and_layout(model: Any) -> tuple[list[dict[str, Any]], bool | None]:
    """:func:`lstm_nodes`, and whether the graph input is time-major [T, B, I] when the whole
    graph is one LSTM chain (None otherwise): what a runner must feed a foreign file."""
    if not any(n.op_type in ("LSTM", "DynamicQuantizeLSTM") for n in _all_nodes(model.graph)):
        return [], None
    if any(t.data_location == 1 for t in model.graph.initializer):  # EXTERNAL
        return [{"note": "weights in external data files: compile to see the LSTM nodes"}], None
    from edgelstm.errors import EdgeLSTMError
    from edgelstm.importers.onnx_intake import find_lstms
    from edgelstm.importers.onnx_lstm import from_onnx

    time_major = None
    try:
        time_major = bool(from_onnx(model).time_major)
        whole = None
    except EdgeLSTMError as exc:
        whole = str(exc)
    out = []
    for site in find_lstms(model):
        entry: dict[str, Any] = {"name": site.name, "path": site.path or "main graph"}
        entry |= site.features()
        if site.notes:
            entry["notes"] = list(site.notes)
        if site.problem is None:
            try:
                from_onnx(model, lstm=site.where)
            except EdgeLSTMError as exc:
                site.error = exc
        if site.problem is not None:
            entry["tflite"] = entry["onnx"] = f"refused: {site.problem}"
        else:
            how = "whole graph (no --lstm needed)" if whole is None else f"--lstm {site.where}"
            entry["tflite"] = f"fused LSTM op: {how}"
            entry["onnx"] = f"fused or composite LSTM: {how}" + (
                "" if whole is None else "; or -o OUT.onnx rewrites the whole graph"
            )
        out.append(entry)
    return out, time_major


def _all_nodes(graph: Any) -> list[Any]:
    nodes = list(graph.node)
    for node in graph.node:
        for attr in node.attribute:
            subs = [attr.g] if attr.type == 5 else list(attr.graphs) if attr.type == 10 else []
            for sub in subs:
                nodes.extend(_all_nodes(sub))
    return nodes


def _saturation_warnings(model: Any) -> list[str]:
    """int8 weights onnxruntime's u8 x s8 kernels would saturate on (x86 without VNNI), and
    what that costs: simulated (:func:`~edgelstm.targets.onnx.scheme_choice.saturation_cost`)
    and, for edgelstm's files, the errors measured when the scheme was chosen."""
    import json

    from edgelstm.targets.onnx.scheme_choice import SCHEME_KEY, SHARP_COST, saturation_cost
    from edgelstm.targets.onnx.weight_schemes import PAIR_LIMIT, int8_weights, max_pair_sum

    weights = int8_weights(model)
    worst = {n: max_pair_sum(q) for n, q in weights.items()}
    bad = sorted(n for n, v in worst.items() if v > PAIR_LIMIT)
    if not bad:
        return []
    costs = {n: saturation_cost(weights[n]) for n in bad}
    top = max(bad, key=lambda n: costs[n])
    shown = ", ".join(as_text(n) for n in bad[:3]) + (
        f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    )
    if costs[top] > SHARP_COST:
        verdict = "costs accuracy: more than re-quantizing 7-bit would"
    elif costs[top] > 0.0:
        verdict = "costs some accuracy, less than re-quantizing 7-bit would"
    else:
        verdict = "never happens there (no accuracy lost)"
    text = (
        f"int8 weights {shown}: adjacent weight pairs sum to up to "
        f"{max(worst[n] for n in bad)} > {PAIR_LIMIT}; onnxruntime's u8 x s8 kernels saturate "
        "on x86 CPUs without VNNI (AVX2, AVX-512BW). Simulated on uniform uint8 activations, "
        f"the saturation error is {costs[top]:.2f}x the 8-bit weight rounding error "
        f"(worst: {as_text(top)}): it {verdict}."
    )
    props = {as_text(p.key): as_text(p.value) for p in model.metadata_props}
    try:
        record = json.loads(props.get(SCHEME_KEY, "null"))
        chosen, rmse = record["chosen"], record["rmse"]
        expected = record.get("rmse_without_vnni", {}).get(chosen)
        text += (
            f" edgelstm chose this scheme ({chosen}) by measured RMSE {rmse[chosen]:.2e}"
            + (f", {expected:.2e} expected without VNNI" if expected is not None else "")
            + f" (safe int8-pair: {rmse.get('int8-pair', float('nan')):.2e})"
            + _policy_note(record)
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        text += " Re-quantize with edgelstm (it measures the schemes) or ORT's reduce_range."
    return [text]


def _policy_note(record: dict[str, Any]) -> str:
    """The policy that chose a saturating scheme, whether ORT's guarantee held, the way out."""
    policy = record.get("policy")
    if policy is None:  # files written before the policies
        return "."
    held = (record.get("guarantee") or {}).get("held")
    said = {True: "held", False: "NOT held", None: "no int8 bar"}.get(held, "unknown")
    out = f"; policy {policy}, never-less-accurate-than-ORT's-defaults guarantee: {said}."
    if policy == "accuracy":
        out += (
            " For the scheme most accurate without VNNI (it may measure less accurate than "
            "ORT's defaults on a VNNI CPU): --onnx-dynamic-priority portable."
        )
    return out

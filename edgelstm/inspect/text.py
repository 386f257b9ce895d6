"""The human-readable form of a ModelInfo: what ``edgelstm inspect`` prints.

A ModelInfo may describe a damaged file (see :mod:`edgelstm.inspect.decode`): the text
tolerates any quantization list lengths (an empty zero_point list prints ``zp=?``), prints
``TensorInfo.note`` after the tensor, and never indexes a list the file supplied.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgelstm.inspect.info import LSTM_OP, ModelInfo, TensorInfo
from edgelstm.inspect.tflm import Measured, tflm_verdict
from edgelstm.ir.roles import ROLES


def _shape(t: TensorInfo) -> str:
    return "[" + ", ".join("?" if d in (-1, None, "") else str(d) for d in t.shape) + "]"


def _scale(s: float) -> str:
    """A scale, as ``2^k`` when it is an exact power of two (the int16 cell state's must be)."""
    mant, exp = math.frexp(s)
    return f"2^{exp - 1}" if s > 0 and mant == 0.5 and math.isfinite(s) else f"{s:.6g}"


def _quant(q: dict[str, Any] | None) -> str:
    if not q:
        return ""
    scales, zps = list(q.get("scale") or []), list(q.get("zero_point") or [])
    if not scales:
        return "scale=?"
    if len(scales) == 1:
        return f"scale={_scale(scales[0])} zp={zps[0] if zps else '?'}"
    lo, hi = min(scales), max(scales)
    text = f"per-axis {q.get('axis')}: {len(scales)} scales in [{lo:.3g}, {hi:.3g}]"
    if len(zps) not in (1, len(scales)):
        text += f" ({len(zps)} zero points)"
    return text


def _tensor_line(slot: str, t: TensorInfo | None) -> str:
    if t is None:
        return f"    {slot:<34} (absent)"
    kind = "var" if t.variable else ("const" if t.constant else "")
    extra = _quant(t.quantization)
    if t.value is not None:
        extra = (extra + " " if extra else "") + "value=" + json.dumps(t.value)
    if t.note:
        extra = (extra + " " if extra else "") + f"({t.note})"
    return f"    {slot:<34} {t.dtype:<8} {_shape(t):<14} {kind:<5} {extra}".rstrip()


STATE_WORDS = {
    "reset": "reset in the graph on every invoke (the same input gives the same answer; "
    "set an initial state on the '<state>/initial' variables)",
    "carried": "carried across invokes (stateful / streaming: call reset_all_variables() "
    "between independent sequences)",
    "mixed": "reset for some LSTM ops and carried for others",
    "built": "zero initial state built in the graph (the same input gives the same answer "
    "on every invoke)",
    "inputs": "initial state as required graph inputs, final state as outputs (streaming: "
    "the caller feeds the state back)",
}
"""What each :attr:`ModelInfo.state_across_invokes` means for someone using the file."""


def _lstm_node_lines(nodes: list[dict[str, Any]]) -> list[str]:
    lines = []
    for n in nodes:
        if "note" in n:
            lines.append(f"  {n['note']}")
            continue
        states = ", ".join(f"{k} {v}" for k, v in n["states"].items()) or "-"
        lines.append(
            f"  {n['name']} in {n['path']}: {n['op']} {n['direction']} "
            f"{n['input_size']}->{n['hidden_size']}, layout {n['layout']}"
            f"{', peephole' if n['peephole'] else ''}; states: {states}"
        )
        lines.extend(f"    note: {note}" for note in n.get("notes", []))
        lines.append(f"    tflite: {n['tflite']}")
        lines.append(f"    onnx: {n['onnx']}")
    return lines


def _segment_lines(segments: Any) -> list[str]:
    """A linked whole model: which ops came from which converter, and how the parts join."""
    parts = segments.get("segments") if isinstance(segments, dict) else None
    if not isinstance(parts, list) or len(parts) < 2:
        return []
    lines = [f"segments: {len(parts)} parts linked into one graph"]
    for part in parts:
        if not isinstance(part, dict):
            continue
        ops = part.get("ops") or [None, None]
        what = "edgelstm (fused LSTMs)" if part.get("kind") == "edgelstm" else "TFLite converter"
        lines.append(f"  [{part.get('index')}] {what}: ops {ops[0]}..{ops[1]} ")
    for b in segments.get("boundaries") or []:
        if isinstance(b, dict) and b.get("link") != "direct":
            lines.append(f"  boundary {b.get('producer')} -> {b.get('consumer')}: {b.get('link')}")
    return [line.rstrip() for line in lines]


def format_info(info: ModelInfo, tflm_arena: Measured = None) -> str:
    """Human-readable report (what ``edgelstm inspect`` prints). ``tflm_arena``: the arena
    measured on TFLite Micro (bytes) or the error it raised; None prints the estimate."""
    lines = [
        f"{info.path}: {info.format}, {info.size_bytes:,} bytes "
        f"(weights {info.weight_bytes:,}), quantization: {info.quantization}",
    ]
    if info.producer:
        lines.append(f"producer: {info.producer}")
    lines.extend(f"warning: {w}" for w in info.warnings)
    if info.state_across_invokes is not None:
        lines.append(f"state: {STATE_WORDS[info.state_across_invokes]}")
    if info.format == "tflite":
        lines.extend(_segment_lines(info.metadata.get("edgelstm.segments")))
        lines.append(tflm_verdict(info, tflm_arena))
    for label, tensors in (("inputs", info.inputs), ("outputs", info.outputs)):
        lines.append(f"{label}:")
        lines.extend(_tensor_line(t.name, t) for t in tensors)
    if info.lstm_nodes:
        lines.append("LSTM nodes (what edgelstm can compile):")
        lines.extend(_lstm_node_lines(info.lstm_nodes))
    counts: dict[str, int] = {}
    for op in info.ops:
        counts[op.op] = counts.get(op.op, 0) + 1
    lines.append("ops: " + ", ".join(f"{n} x{c}" if c > 1 else n for n, c in counts.items()))
    for op in info.ops:
        where = f"subgraph {op.subgraph} " if op.subgraph else ""
        lines.append(
            f"  [{where}{op.index}] {op.op} (version {op.version}, {op.domain or 'builtin'})"
        )
        if op.options:
            opts = ", ".join(f"{k}={v}" for k, v in op.options.items())
            lines.append(f"    options: {opts}")
        detailed = op in info.lstm_ops or len(info.ops) <= 12
        if not detailed:
            continue
        for j, t in enumerate(op.inputs):
            label = (t.role or t.name) if t is not None else ""
            slot = f"{j:>2} {label}".rstrip()
            if t is None and op.op == LSTM_OP:
                slot = f"{j:>2} {ROLES[j].name}" if j < len(ROLES) else str(j)
            lines.append(_tensor_line(slot, t))
        for t in op.intermediates:
            lines.append(_tensor_line(f"intermediate {t.role or ''}".rstrip(), t))
        for t in op.outputs:
            lines.append(_tensor_line(f"-> {t.name}", t))
    if info.metadata:
        lines.append("metadata:")
        for key, value in info.metadata.items():
            text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
            lines.append(f"  {key}: {text}")
    return "\n".join(lines)

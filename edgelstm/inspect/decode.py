"""Safe reads of untrusted fields, shared by the .tflite and .onnx parsers of ``inspect``.

Everything :mod:`edgelstm.inspect.tflite` and :mod:`edgelstm.inspect.onnx` read from a file
goes through this small accessor layer (:func:`as_text`, :func:`decode_metadata`,
:func:`item_at`, and the parsers' own dtype / initializer look-ups), so a corrupted or
adversarial file either raises :class:`~edgelstm.errors.ModelFileError` naming the problem,
or, when only one field is odd and the rest of the file is readable, is described with that
field shown as what it is (``inspect`` is most useful on exactly the files other tools refuse):

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
from typing import Any

MAX_JSON_DEPTH = 64
"""Metadata JSON nested deeper than this is shown as a placeholder, not parsed."""


def as_text(value: Any) -> str:
    """A name read from a file as str (protobuf hands back bytes when it is not UTF-8)."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def enum_names(cls: type) -> dict[int, str]:
    """Value -> name of a flatbuffer enum class (the schema bindings keep them as ints)."""
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def plain(value: Any, depth: int = 0) -> Any:
    """JSON-friendly copy of a flatbuffer object-API / protobuf value (arrays -> lists)."""
    if depth > MAX_JSON_DEPTH:
        value = "<nested too deep>"
    elif hasattr(value, "tolist"):
        value = value.tolist()
    elif isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    elif isinstance(value, (list, tuple)):
        value = [plain(v, depth + 1) for v in value]
    elif hasattr(value, "DESCRIPTOR"):  # a protobuf message (onnx TensorProto, TypeProto, ...)
        value = f"<{type(value).__name__}>"
    elif hasattr(value, "__dict__"):
        value = {_snake(k): plain(v, depth + 1) for k, v in vars(value).items()}
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


def decode_metadata(raw: bytes | str) -> Any:
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


def item_at(seq: Any, index: int) -> Any:
    """``seq[index]`` for a file-supplied index, None when out of range (or negative)."""
    if seq is None or not 0 <= index < len(seq):
        return None
    return seq[index]

"""Provenance metadata stored in the TFLite ``metadata`` table (entry ``edgelstm``, JSON).

It records the edgelstm version, the source, the compile options, the model structure (layers,
directions with their spec, tensor-name prefix and weights digest, head, flags) and the
model's own provenance (e.g. a forget bias an importer folded into ``forget_gate_bias``).
The JSON is canonical (sorted keys, no timestamps), so files stay byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgelstm.errors import ModelFileError, UnsupportedError
from edgelstm.ir.model import DIRECTION_NAMES, LSTMModel
from edgelstm.ir.options import CompileOptions
from edgelstm.targets.tflite.schema import decode_model, schema

METADATA_NAME = "edgelstm"
SEGMENTS_NAME = "edgelstm.segments"
"""Entry of a file linked from several segments (see :mod:`edgelstm.targets.tflite.link`)."""
FORMAT = "edgelstm-tflite"
FORMAT_VERSION = 1


def direction_prefix(layer: int, direction: int) -> str:
    """Tensor-name prefix of one direction's LSTM op, e.g. ``layer0/backward``."""
    return f"layer{layer}/{DIRECTION_NAMES[direction]}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def build_metadata(
    model: LSTMModel, options: CompileOptions, *, time_major: bool, outputs: list[str]
) -> dict[str, Any]:
    """The metadata dict for ``model`` compiled with ``options``."""
    from edgelstm._version import __version__

    provenance = dict(model.provenance)
    layers = []
    for visit in model.walk_layers():
        layers.append(
            {
                "go_backwards": visit.layer.go_backwards,
                "reverse": visit.layer.reverse,
                "directions": [
                    {
                        "name": v.name,
                        "prefix": direction_prefix(v.k, v.d),
                        "spec": v.weights.spec.to_dict(),
                        "weights_digest": v.weights.digest(),
                    }
                    for v in visit.directions
                ],
            }
        )
    head = None
    if model.head is not None:
        head = {"units": model.head.units, "activation": model.head.activation}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "edgelstm_version": __version__,
        "source": options.source,
        "options": {
            "batch": options.batch,
            "seq_len": options.seq_len,
            "time_major": time_major,
            "quantize": options.quantize,
        },
        "model": {
            "layers": layers,
            "head": head,
            "return_sequences": model.return_sequences,
            "return_state": model.return_state,
            "stateful": model.stateful,
            "time_major": time_major,
        },
        "folded_forget_bias": provenance.get("forget_bias", provenance.get("folded_forget_bias")),
        "provenance": provenance,
        "outputs": outputs,
    }


def encode_metadata(meta: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of ``meta``."""
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), default=_jsonable).encode()


MAX_DEPTH = 32
"""Deepest nesting of JSON objects/lists accepted in the metadata (ours is at most ~6 deep;
provenance copied from other formats may add a few levels)."""


def _kind(value: Any) -> str:
    """The JSON type of a parsed value: object, list, string, bool, number or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "list", str: "string"}.get(type(value), type(value).__name__)


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


class _Checker:
    """Type checks of the metadata fields the reader uses, each error naming the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, expected: tuple[str, ...], value: Any) -> ModelFileError:
        return ModelFileError(
            f"{self.where}: edgelstm metadata: {path!r} must be {' or '.join(expected)}, "
            f"found {_kind(value)}"
        )

    def item(self, value: Any, path: str, *kinds: str) -> Any:
        if _kind(value) not in kinds:
            raise self.fail(path, kinds, value)
        return value

    def field(self, obj: dict[str, Any], key: str, path: str, *kinds: str) -> Any:
        """``obj[key]`` (None when absent) after checking its JSON type is one of ``kinds``."""
        if key not in obj:
            return None
        return self.item(obj[key], f"{path}.{key}" if path else key, *kinds)


def _check_structure(meta: dict[str, Any], where: str) -> None:
    c = _Checker(where)
    c.field(meta, "format_version", "", "number")
    c.field(meta, "provenance", "", "object", "null")
    c.field(meta, "options", "", "object", "null")
    c.field(meta, "outputs", "", "list", "null")
    model = c.field(meta, "model", "", "object")
    if model is None:
        return
    for flag in ("return_sequences", "return_state", "stateful", "time_major"):
        c.field(model, flag, "model", "bool")
    head = c.field(model, "head", "model", "object", "null")
    if head is not None:
        c.field(head, "activation", "model.head", "string")
    for k, layer in enumerate(c.field(model, "layers", "model", "list") or []):
        path = f"model.layers[{k}]"
        c.item(layer, path, "object")
        for flag in ("go_backwards", "reverse"):
            c.field(layer, flag, path, "bool")
        for d, direction in enumerate(c.field(layer, "directions", path, "list") or []):
            dpath = f"{path}.directions[{d}]"
            c.item(direction, dpath, "object")
            c.field(direction, "prefix", dpath, "string")
            spec = c.field(direction, "spec", dpath, "object", "null")
            for clip in ("cell_clip", "proj_clip") if spec is not None else ():
                c.field(spec, clip, f"{dpath}.spec", "number", "null")


def decode_metadata(data: bytes, where: str = "tflite") -> dict[str, Any]:
    """Parse an ``edgelstm`` metadata entry; a malformed one is a ModelFileError.

    Beyond valid JSON: nesting is bounded (:data:`MAX_DEPTH`) and every field the reader
    uses has the JSON type the writer gives it (objects, lists, strings, booleans, numbers).
    """
    try:
        meta = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{where}: edgelstm metadata is not JSON ({exc})") from None
    except RecursionError:
        raise ModelFileError(
            f"{where}: edgelstm metadata is nested too deeply (more than {MAX_DEPTH} levels)"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{where}: edgelstm metadata has an unknown format")
    if _depth(meta) > MAX_DEPTH:
        raise ModelFileError(
            f"{where}: edgelstm metadata is nested too deeply (more than {MAX_DEPTH} levels)"
        )
    _check_structure(meta, where)
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(
            f"{where}: edgelstm metadata format_version {meta.get('format_version')} is newer "
            f"than this edgelstm reads ({FORMAT_VERSION})"
        )
    return meta


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def refuse_linked(model: schema.ModelT, where: str) -> None:
    """A whole model linked from several segments is not an LSTM-only file: never read half."""
    segments = read_segments(model)
    parts = (segments or {}).get("segments") or []
    if len(parts) > 1:
        raise UnsupportedError(
            "tflite reader",
            f"{where} is a whole model linked from {len(parts)} segments (LSTMs between other "
            "layers); from_tflite reads LSTM-only files. Run it with edgelstm.open_runner / "
            "'edgelstm verify', list its parts with 'edgelstm inspect', or compile the LSTM "
            "alone from the source model",
        )


def read_metadata(model: schema.ModelT | bytes, where: str = "tflite") -> dict[str, Any] | None:
    """The ``edgelstm`` metadata dict of a model (object or bytes), None when absent."""
    if isinstance(model, bytes | bytearray):
        model = decode_model(bytes(model), where)
    buffers = model.buffers or []
    for entry in model.metadata or []:
        if _text(entry.name) == METADATA_NAME:
            if not 0 <= int(entry.buffer) < len(buffers):
                raise ModelFileError(
                    f"{where}: edgelstm metadata refers to buffer {entry.buffer}, but the "
                    f"model has {len(buffers)} buffer(s)"
                )
            buf = buffers[int(entry.buffer)]
            raw = b"" if buf.data is None else np.asarray(buf.data, dtype=np.uint8).tobytes()
            return decode_metadata(raw, where)
    return None


def read_segments(data: bytes | schema.ModelT) -> dict[str, Any] | None:
    """The ``edgelstm.segments`` entry of a linked file (None for a file not linked here)."""
    model = decode_model(bytes(data)) if isinstance(data, bytes | bytearray) else data
    for m in model.metadata or []:
        if _text(m.name) == SEGMENTS_NAME and 0 <= int(m.buffer) < len(model.buffers):
            raw = model.buffers[int(m.buffer)].data
            try:
                value = json.loads(bytes(memoryview(raw).cast("B")).decode())
            except (TypeError, ValueError):
                return None
            return value if isinstance(value, dict) else None
    return None

"""Initial and final LSTM states for :meth:`edgelstm.runtime.select.Runner.run`.

Users give and get states in one shape whatever the file: ``[layer][direction] = (h, c)``,
float, batch-major ``h`` [B, P] and ``c`` [B, N] (the layout of
:func:`edgelstm.reference.reference_model`). A one-layer, one-direction model also takes the
simple form ``(h, c)``. Each runner stores them its own way (TFLite variable tensors in
operator order, quantized in int8 files; unfused-graph or ONNX inputs and outputs), so this
module only translates between the two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgelstm.errors import InputDataError
from edgelstm.inspect import ModelInfo

State = tuple[np.ndarray, np.ndarray]
Nested = list[list[State | None]]

_ONNX_STATE = re.compile(r"^layer(\d+)(\.backward)?\.([hc])$")
_ONNX_INITIAL = re.compile(r"^layer(\d+)(\.backward)?\.([hc])0$")


def directions_per_layer(info: ModelInfo, count: int) -> list[int]:
    """How many directions each layer has, for a file with ``count`` (h, c) pairs in operator
    order: edgelstm's metadata says; a foreign file is read as one direction per layer."""
    meta = info.metadata.get("edgelstm")
    layers = meta.get("model", {}).get("layers") if isinstance(meta, dict) else None
    if isinstance(layers, list) and layers:
        sizes = [len(layer.get("directions") or []) for layer in layers if isinstance(layer, dict)]
        if sum(sizes) == count and all(sizes):
            return sizes
    return [1] * count


def normalize(initial_state: Any, sizes: Sequence[int]) -> Nested:
    """``initial_state`` as ``[layer][direction] = (h, c)`` (None entries keep zeros).

    Accepts that form, or ``(h, c)`` for a one-layer, one-direction model.
    """
    if not sizes:
        raise InputDataError("initial_state: this file has no LSTM states to set")
    if _is_simple(initial_state):
        if list(sizes) != [1]:
            raise InputDataError(
                f"initial_state: (h, c) is the form for a one-layer, one-direction model; this "
                f"one has {len(sizes)} layer(s) with {list(sizes)} direction(s): pass "
                "[layer][direction] = (h, c)"
            )
        return [[_pair(initial_state, "initial_state")]]
    try:
        layers = list(initial_state)
    except TypeError:
        raise InputDataError(
            f"initial_state: expected (h, c) or [layer][direction] = (h, c), "
            f"found {type(initial_state).__name__}"
        ) from None
    if len(layers) != len(sizes):
        raise InputDataError(
            f"initial_state: expected one entry per layer ({len(sizes)}), found {len(layers)}"
        )
    nested: Nested = []
    for k, (layer, n) in enumerate(zip(layers, sizes, strict=True)):
        entries = [None] * n if layer is None else list(layer)
        if len(entries) != n:
            raise InputDataError(
                f"initial_state[{k}]: expected {n} direction(s), found {len(entries)}"
            )
        nested.append(
            [
                None if e is None else _pair(e, f"initial_state[{k}][{d}]")
                for d, e in enumerate(entries)
            ]
        )
    return nested


def _is_simple(value: Any) -> bool:
    """(h, c) of 2-D arrays rather than a list of layers."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        return False
    if all(isinstance(v, np.ndarray) for v in value):
        return True
    try:
        return all(np.asarray(v).ndim == 2 for v in value)
    except ValueError:  # ragged: a nested form
        return False


def _pair(value: Any, what: str) -> State:
    try:
        h, c = (np.asarray(v, dtype=np.float32) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputDataError(f"{what}: expected a pair (h, c) of arrays ({exc})") from None
    for name, arr in (("h", h), ("c", c)):
        if arr.ndim != 2:
            raise InputDataError(
                f"{what} {name}: expected a 2-D [batch, width] array, found shape {list(arr.shape)}"
            )
    return h, c


def group(flat: Sequence[State], sizes: Sequence[int]) -> list[list[State]]:
    """Flat operator-order pairs -> ``[layer][direction]``."""
    out, start = [], 0
    for n in sizes:
        out.append(list(flat[start : start + n]))
        start += n
    return out


def onnx_layout(names: Sequence[str]) -> list[int]:
    """Directions per layer from an ONNX file's state input/output names ([] if none)."""
    seen: dict[int, set[int]] = {}
    for name in names:
        m = _ONNX_STATE.match(name) or _ONNX_INITIAL.match(name)
        if m:
            seen.setdefault(int(m.group(1)), set()).add(1 if m.group(2) else 0)
    return [len(seen.get(k, ())) for k in range(max(seen) + 1)] if seen else []


def onnx_finals(names: Sequence[str], outputs: Sequence[np.ndarray]) -> list[list[State]] | None:
    """Final states from an ONNX file's ``layer{k}[.backward].h|c`` outputs (None if absent)."""
    found: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for name, value in zip(names, outputs, strict=False):
        m = _ONNX_STATE.match(name)
        if m:
            key = (int(m.group(1)), 1 if m.group(2) else 0)
            found.setdefault(key, {})[m.group(3)] = np.asarray(value, dtype=np.float32)
    if not found or any(len(v) != 2 for v in found.values()):
        return None
    layers = max(k for k, _ in found) + 1
    nested = [
        [(found[(k, d)]["h"], found[(k, d)]["c"]) for d in (0, 1) if (k, d) in found]
        for k in range(layers)
    ]
    return nested if all(nested) else None


def pad_h(pair: State | None, impl: Any, k: int) -> State | None:
    """(h, c) for op ``k`` of a padded int8 file: h widened with zero columns to the state
    tensor's width (exact: the padded features are zero at every step by construction)."""
    if pair is None or not getattr(impl, "states", None):
        return pair
    h, c = pair
    width = int(impl.interpreter.get_tensor(impl.states[k][0]).shape[-1])
    if h.shape[-1] < width:
        h = np.concatenate([h, np.zeros((h.shape[0], width - h.shape[-1]), h.dtype)], axis=-1)
    return h, c

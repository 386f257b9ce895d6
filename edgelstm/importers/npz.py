"""The .npz weights format: TFLiteLSTMCell's "separated, transposed" weights, as a file.

Single layer (a plain forward direction, default options): one float32 array per role of
:mod:`edgelstm.ir.roles`, keys exactly the role names, plus 0-d ``cell_clip``, ``proj_clip``
(absent or 0 = none) and ``activation`` (string, default "tanh"). A missing role key means
that optional tensor is absent (CIFG: no input-gate tensors).

Model files (stacked, bidirectional, options or a head) prefix the same keys:
``layer{k}.<role>`` / ``layer{k}.cell_clip`` ... for the forward direction of layer k,
``layer{k}.backward.<...>`` for its backward direction, ``layer{k}.go_backwards`` and
``layer{k}.reverse`` (0-d bools);
``head.kernel`` [units, features], ``head.bias``, ``head.activation``; and 0-d
``return_sequences``, ``return_state``, ``stateful``, ``time_major``, ``provenance`` (JSON).
Loading never unpickles (``allow_pickle=False``).
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile
from typing import Any

import numpy as np

from edgelstm._io import atomic_path, read_bytes
from edgelstm.errors import ModelFileError, SpecError, WeightsError
from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
from edgelstm.ir.roles import WEIGHT_NAMES
from edgelstm.ir.weights import LSTMWeights

_SCALARS = ("cell_clip", "proj_clip", "activation")
_OPTIONS = ("return_sequences", "return_state", "stateful", "time_major")
_LAYER_KEY = re.compile(r"^layer(\d{1,6})\.(backward\.)?(.+)$")


def _direction_arrays(weights: LSTMWeights) -> dict[str, np.ndarray]:
    spec = weights.spec
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in weights.tensors.items()}
    arrays["cell_clip"] = np.array(spec.cell_clip, dtype=np.float32)
    arrays["proj_clip"] = np.array(spec.proj_clip, dtype=np.float32)
    arrays["activation"] = np.array(spec.activation)
    return arrays


def to_npz_arrays(model: LSTMModel | LSTMWeights) -> dict[str, np.ndarray]:
    """The arrays :func:`save_npz` writes (single-layer keys when the model allows it)."""
    model = LSTMModel.of(model)
    if model.is_single and not model.provenance:
        return _direction_arrays(model.layers[0].forward)
    arrays: dict[str, np.ndarray] = {}
    for k, layer in enumerate(model.layers):
        for prefix, weights in (
            (f"layer{k}.", layer.forward),
            (f"layer{k}.backward.", layer.backward),
        ):
            if weights is not None:
                arrays.update({prefix + n: a for n, a in _direction_arrays(weights).items()})
        arrays[f"layer{k}.go_backwards"] = np.array(layer.go_backwards)
        arrays[f"layer{k}.reverse"] = np.array(layer.reverse)
    if model.head is not None:
        arrays["head.kernel"] = model.head.kernel
        arrays["head.bias"] = model.head.bias
        arrays["head.activation"] = np.array(model.head.activation)
    for name in _OPTIONS:
        arrays[name] = np.array(bool(getattr(model, name)))
    provenance = {str(k): v for k, v in model.provenance.items()}
    arrays["provenance"] = np.array(json.dumps(provenance, sort_keys=True, default=str))
    return arrays


def save_npz(model: LSTMModel | LSTMWeights, path: str | os.PathLike[str]) -> None:
    """Write ``model`` as an .npz (atomically; see the module docstring for keys)."""
    arrays = to_npz_arrays(model)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _scalar(arrays: dict[str, np.ndarray], key: str, kind: type, default: Any) -> Any:
    if key not in arrays:
        return default
    arr = arrays[key]
    if arr.shape != ():
        raise WeightsError(f"{key}: expected a 0-d scalar, found shape {list(arr.shape)}")
    if kind is str:
        if arr.dtype.kind != "U":
            raise WeightsError(f"{key}: expected a string, found dtype {arr.dtype}")
        return str(arr)
    if kind is bool:
        if arr.dtype != np.bool_:
            raise WeightsError(f"{key}: expected a bool, found dtype {arr.dtype}")
        return bool(arr)
    if arr.dtype.kind not in "iuf":  # complex, bool, strings, dates: not a clip value
        raise WeightsError(f"{key}: expected a real number, found dtype {arr.dtype}")
    return float(arr)


def _direction(arrays: dict[str, np.ndarray], where: str) -> LSTMWeights:
    unknown = sorted(set(arrays) - WEIGHT_NAMES - set(_SCALARS))
    if unknown:
        raise WeightsError(f"{where}: unknown key(s) {unknown}")
    tensors = {k: v for k, v in arrays.items() if k in WEIGHT_NAMES}
    try:
        return LSTMWeights.from_tensors(
            tensors,
            cell_clip=_scalar(arrays, "cell_clip", float, 0.0),
            proj_clip=_scalar(arrays, "proj_clip", float, 0.0),
            activation=_scalar(arrays, "activation", str, "tanh"),
        )
    except (WeightsError, SpecError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def from_npz_arrays(arrays: dict[str, np.ndarray], where: str = "npz") -> LSTMModel:
    """Build the model from already-loaded arrays (inverse of :func:`to_npz_arrays`)."""
    if not any(k.startswith("layer") for k in arrays):
        return LSTMModel.of(_direction(arrays, where))
    per_layer: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    top: dict[str, np.ndarray] = {}
    for key, arr in arrays.items():
        m = _LAYER_KEY.match(key)
        if m:
            side = "backward" if m.group(2) else "forward"
            per_layer.setdefault(int(m.group(1)), {}).setdefault(side, {})[m.group(3)] = arr
        else:
            top[key] = arr
    if sorted(per_layer) != list(range(len(per_layer))):
        raise WeightsError(f"{where}: layer indices {sorted(per_layer)} are not 0..n-1")
    layers = []
    for k in range(len(per_layer)):
        sides = per_layer[k]
        fw = dict(sides.get("forward", {}))
        go_back = _scalar(fw, "go_backwards", bool, False)
        reverse = _scalar(fw, "reverse", bool, False)
        fw.pop("go_backwards", None)
        fw.pop("reverse", None)
        bw = sides.get("backward")
        layers.append(
            LSTMLayer(
                _direction(fw, f"{where} layer{k}"),
                _direction(bw, f"{where} layer{k}.backward") if bw is not None else None,
                go_backwards=go_back,
                reverse=reverse,
            )
        )
    known_top = {"head.kernel", "head.bias", "head.activation", "provenance", *_OPTIONS}
    unknown = sorted(set(top) - known_top)
    if unknown:
        raise WeightsError(f"{where}: unknown key(s) {unknown}")
    head = None
    if "head.kernel" in top:
        head = DenseHead(
            top["head.kernel"],
            top.get("head.bias", np.zeros(top["head.kernel"].shape[:1], np.float32)),
            _scalar(top, "head.activation", str, "linear"),
        )
    try:
        provenance = json.loads(_scalar(top, "provenance", str, "{}"))
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise WeightsError(f"{where}: provenance is not JSON ({detail})") from None
    if not isinstance(provenance, dict):
        raise WeightsError(f"{where}: provenance must be a JSON object")
    options = {n: _scalar(top, n, bool, n == "return_sequences") for n in _OPTIONS}
    return LSTMModel(tuple(layers), head=head, provenance=provenance, **options)


def load_npz_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read every array of an .npz without unpickling; file problems become ModelFileError."""
    data = read_bytes(path, "weights file")
    if not data.startswith(b"PK"):
        raise ModelFileError(f"{path}: not an .npz (zip) archive")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ModelFileError(
                f"{path}: contains pickled (object) arrays; refusing to unpickle"
            ) from None
        raise ModelFileError(f"{path}: corrupted .npz ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: truncated or corrupted .npz ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - zlib/struct errors from a corrupted archive
        raise ModelFileError(f"{path}: corrupted .npz ({type(exc).__name__}: {exc})") from None
    _check_entry_count(data, len(arrays), path)
    return arrays


def _check_entry_count(data: bytes, listed: int, path: str | os.PathLike[str]) -> None:
    """The end record's entry count must match the central directory zipfile walked: a
    corrupted length in one directory entry can swallow the entries after it (e.g.
    ``head.activation``), which would otherwise load as their defaults, silently."""
    end = data.rfind(b"PK\x05\x06")
    if end < 0 or end + 12 > len(data):
        return  # zipfile has already refused such an archive
    (count,) = struct.unpack_from("<H", data, end + 10)
    if count not in (0xFFFF, listed):  # 0xFFFF: the count is in the zip64 record
        raise ModelFileError(
            f"{path}: corrupted .npz (the archive's end record lists {count} entries, "
            f"its central directory {listed})"
        )


def from_npz(path: str | os.PathLike[str]) -> LSTMModel:
    """Load a .npz weights file (single layer or model) as an :class:`LSTMModel`."""
    return from_npz_arrays(load_npz_arrays(path), where=str(path))

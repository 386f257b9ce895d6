"""PyTorch importer: ``nn.LSTM``, its ``state_dict()`` or a ``.pt``/``.pth`` file -> LSTMModel.

PyTorch stacks the gates i,f,g,o along dim 0 (``weight_ih_l{k}`` [4H, I], ``weight_hh_l{k}``
[4H, P or H]) and keeps two biases; we sum them, since only their sum ever enters a gate.
``proj_size`` adds ``weight_hr_l{k}`` [P, H] (no projection bias). Files are loaded with
``torch.load(weights_only=True)`` only: nothing but tensors and containers is unpickled.
Torch is imported lazily, inside the calls that need it.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from edgelstm._io import read_bytes
from edgelstm.errors import (
    MissingDependencyError,
    ModelFileError,
    SpecError,
    UnsupportedError,
    WeightsError,
)
from edgelstm.ir.gate_orders import unstack
from edgelstm.ir.model import DenseHead, LSTMLayer, LSTMModel
from edgelstm.ir.weights import LSTMWeights

TARGET = "torch importer"
_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|weight_hr|bias_ih|bias_hh)_l(?P<layer>\d+)(?P<rev>_reverse)?$"
)


def from_torch(
    obj: Any,
    *,
    batch_first: bool | None = None,
    prefix: str | None = None,
    head: str | None = None,
) -> LSTMModel:
    """Import a PyTorch LSTM as a canonical :class:`LSTMModel` (inference semantics).

    ``obj`` is an ``nn.LSTM``, a state dict, or a path to a file holding one. Sizes,
    ``num_layers``, ``bidirectional``, ``proj_size`` and ``bias`` are derived from key names
    and shapes; ``batch_first`` cannot be, so pass it for a state dict or file (default
    False, PyTorch's default, which gives a time-major model). ``prefix`` selects one LSTM
    in a larger module's state dict (e.g. ``"encoder.lstm."``). Dropout is an inference
    no-op and is ignored. The model's output is the ``output`` sequence of ``nn.LSTM``;
    ``h_n``/``c_n`` equal the final states ``reference_model`` reports for each layer.
    ``head`` names an ``nn.Linear`` in the same state dict (e.g. ``"fc."``: ``fc.weight``
    [units, features], ``fc.bias``) applied to every output step, as a linear dense head.
    """
    provenance: dict[str, Any] = {"source": "torch"}
    if isinstance(obj, (str, os.PathLike)):
        state = _load_file(obj)
        provenance["file"] = os.fspath(obj)
        module_batch_first = None
    elif isinstance(obj, Mapping):
        state = obj
        module_batch_first = None
    else:
        state, module_batch_first = _module_state(obj, provenance)
    if module_batch_first is not None:
        if batch_first is not None and bool(batch_first) != module_batch_first:
            raise SpecError(
                f"batch_first: the nn.LSTM has batch_first={module_batch_first}, "
                f"found batch_first={batch_first} passed"
            )
        batch_first = module_batch_first
    if batch_first is not None and not isinstance(batch_first, bool):
        raise SpecError(f"batch_first: expected a bool, found {batch_first!r}")
    head_prefix = _head_prefix(head)
    params, used_prefix = _select(state, prefix, head_prefix)
    layers, bias = _layers(params)
    dense = _linear(state, head_prefix) if head_prefix is not None else None
    provenance.update(
        prefix=used_prefix,
        biases="bias_ih + bias_hh summed" if bias else "none (bias=False)",
        batch_first=bool(batch_first),
    )
    if head_prefix is not None:
        provenance["head"] = head_prefix
    return LSTMModel(
        layers=tuple(layers),
        head=dense,
        return_sequences=True,
        time_major=not batch_first,
        provenance=provenance,
    )


def _head_prefix(head: str | None) -> str | None:
    """``"fc"`` or ``"fc."`` -> ``"fc."``; ``""`` means a bare ``weight``/``bias`` pair."""
    if head is None:
        return None
    if not isinstance(head, str):
        raise SpecError(f"head: expected a key prefix such as 'fc.', found {head!r}")
    return head if head == "" or head.endswith(".") else head + "."


def _linear(state: Mapping[str, Any], prefix: str) -> DenseHead:
    """The ``nn.Linear`` stored under ``prefix`` as a linear :class:`DenseHead`."""
    if f"{prefix}weight" not in state:
        found = _linear_candidates(state)
        raise SpecError(
            f"head: no nn.Linear weight {prefix + 'weight'!r} in the state_dict; "
            f"Linear-like prefixes found: {found or 'none'} (pass --head / head= one of them)"
        )
    weight = _array(f"{prefix}weight", state[f"{prefix}weight"])
    if weight.ndim != 2:
        raise WeightsError(
            f"{prefix}weight: expected 2-D [units, features] (an nn.Linear), "
            f"found {list(weight.shape)}"
        )
    if f"{prefix}bias" in state:
        bias = _array(f"{prefix}bias", state[f"{prefix}bias"])
    else:  # nn.Linear(bias=False)
        bias = np.zeros(weight.shape[0], np.float64)
    return DenseHead(weight, bias, "linear")


def _linear_candidates(state: Mapping[str, Any]) -> list[str]:
    """Prefixes ``p`` with a 2-D ``p + 'weight'`` outside any LSTM (possible heads)."""
    found = []
    for key, value in state.items():
        name = str(key)
        if (
            name.endswith("weight")
            and _KEY.match(name) is None
            and len(getattr(value, "shape", ())) == 2
        ):
            found.append(name[: -len("weight")])
    return sorted(found)


def _module_state(obj: Any, provenance: dict[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The state dict and ``batch_first`` of an ``nn.LSTM``; other modules are refused."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is an optional dependency
        raise UnsupportedError(
            TARGET, f"cannot import a {type(obj).__name__}: PyTorch is not installed"
        ) from None
    nn = torch.nn
    if not isinstance(obj, nn.Module):
        raise UnsupportedError(
            TARGET,
            f"expected an nn.LSTM, a state_dict or a .pt/.pth path, found {type(obj).__name__}",
        )
    if isinstance(obj, (nn.GRU, nn.RNN, nn.GRUCell, nn.RNNCell)):
        raise UnsupportedError(TARGET, f"{type(obj).__name__} is not an LSTM (only nn.LSTM)")
    if isinstance(obj, nn.LSTMCell):
        raise UnsupportedError(
            TARGET, "nn.LSTMCell is stepped by user code; wrap its weights in an nn.LSTM"
        )
    if not isinstance(obj, nn.LSTM):
        raise UnsupportedError(
            TARGET,
            f"expected an nn.LSTM, found {type(obj).__name__}; pass the LSTM submodule, or "
            "the module's state_dict() with prefix= naming the LSTM",
        )
    if type(obj).forward is not nn.LSTM.forward:
        raise UnsupportedError(
            TARGET, f"{type(obj).__name__} overrides nn.LSTM.forward; its math is unknown"
        )
    provenance.update(module=type(obj).__name__, dropout=float(obj.dropout))
    return obj.state_dict(), bool(obj.batch_first)


def _load_file(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """``torch.load(weights_only=True)``; a pickled module or a damaged file is refused."""
    data = read_bytes(path, "PyTorch file")
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            f"{path}: reading .pt/.pth files needs PyTorch: pip install 'edgelstm[torch]'"
        ) from None
    try:
        with warnings.catch_warnings():  # TorchScript archives warn before being refused
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise _load_error(path, exc) from None
    if not isinstance(obj, Mapping):
        raise ModelFileError(
            f"{path}: expected a state_dict (a mapping of tensors), found {type(obj).__name__}"
        )
    return obj


# How torch's weights-only unpickler names a global it refused (wording varies by version).
_REFUSED_GLOBAL = re.compile(
    r"(?:Unsupported global: GLOBAL|unsupported GLOBAL|Unsupported class"
    r"|allowlisted via `add_safe_globals`,? but got) `?([\w.]+)"
)


def _load_error(path: str | os.PathLike[str], exc: Exception) -> ModelFileError:
    """What ``torch.load(weights_only=True)`` failing on ``path`` means, in edgelstm's words.

    torch's own text advises retrying with ``weights_only=False`` (arbitrary code execution
    on an untrusted file): that advice is never repeated, only the specific cause.
    """
    text = str(exc)
    found = _REFUSED_GLOBAL.search(text)
    if found:
        return ModelFileError(
            f"{path}: holds pickled Python objects ({found.group(1)}; e.g. a whole nn.Module "
            "saved with torch.save(module)), which edgelstm never unpickles; save "
            "module.state_dict() instead and import that"
        )
    if "TorchScript" in text:
        return ModelFileError(
            f"{path}: is a TorchScript archive; save the nn.LSTM's state_dict() instead"
        )
    detail = text.split("WeightsUnpickler error:", 1)[-1]
    lines = [
        line.strip()
        for line in detail.splitlines()
        if line.strip()
        and not re.search(r"weights.only|safe_globals|documentation of torch\.load", line, re.I)
    ]
    first = lines[0].split(". ", 1)[0].rstrip(".")[:160] if lines else type(exc).__name__
    return ModelFileError(f"{path}: not a readable PyTorch file (truncated or corrupted?): {first}")


def _select(
    state: Mapping[str, Any], prefix: str | None, head: str | None = None
) -> tuple[dict[tuple, Any], str]:
    """The LSTM parameters as {(kind, layer, reverse): value}, for one key prefix."""
    groups: dict[str, dict[tuple, Any]] = {}
    others = []
    head_keys = {f"{head}weight", f"{head}bias"} if head is not None else set()
    for key, value in state.items():
        if str(key) in head_keys:
            continue
        m = _KEY.match(str(key))
        if m is None:
            others.append(str(key))
            continue
        k = (m["kind"], int(m["layer"]), bool(m["rev"]))
        groups.setdefault(m["prefix"], {})[k] = value
    if prefix is not None:
        wanted = prefix if prefix == "" or prefix.endswith(".") else prefix + "."
        if wanted not in groups:
            raise SpecError(
                f"prefix: no LSTM parameters under {wanted!r}; found prefixes {sorted(groups)} "
                "(pass one as --prefix / prefix=)"
            )
        return groups[wanted], wanted
    if not groups:
        raise WeightsError(
            "state_dict: no nn.LSTM parameters (weight_ih_l0, ...) found; "
            f"keys are {sorted(others)[:8]}"
        )
    if len(groups) > 1:
        raise SpecError(
            f"state_dict: holds several LSTMs (prefixes {sorted(groups)}); pick one with "
            f"--prefix PREFIX on the command line (prefix= in Python), e.g. --prefix {min(groups)}"
        )
    (only,) = groups
    if others:
        heads = _linear_candidates(state)
        hint = (
            f", or take the nn.Linear {heads[0]!r} as the dense head with --head {heads[0]} "
            f"(head={heads[0]!r})"
            if len(heads) == 1 and head is None
            else ""
        )
        raise SpecError(
            f"state_dict: also holds non-LSTM parameters {sorted(others)[:6]}, which would be "
            f"dropped; pass --prefix {only} (prefix={only!r}) to import just the LSTM{hint}"
        )
    return groups[only], only


def _layers(params: dict[tuple, Any]) -> tuple[list[LSTMLayer], bool]:
    """Build every layer; returns (layers, whether biases are present)."""
    present = sorted({layer for _, layer, _ in params})
    n_layers = len(present)
    if present != list(range(n_layers)):
        raise WeightsError(f"state_dict: layers {present[:8]} are not numbered 0..{n_layers - 1}")
    reverse = any(rev for _, _, rev in params)
    bias = any(kind.startswith("bias") for kind, _, _ in params)
    projection = any(kind == "weight_hr" for kind, _, _ in params)
    kinds = ["weight_ih", "weight_hh"]
    kinds += ["bias_ih", "bias_hh"] if bias else []
    kinds += ["weight_hr"] if projection else []
    expected = {
        (k, layer, rev) for k in kinds for layer in range(n_layers) for rev in {False, reverse}
    }
    missing = sorted(expected - set(params))
    if missing:
        names = [f"{k}_l{layer}{'_reverse' if rev else ''}" for k, layer, rev in missing]
        raise WeightsError(f"state_dict: incomplete nn.LSTM, missing {names}")
    layers = []
    for layer in range(n_layers):
        dirs = [
            _direction(params, layer, rev, bias, projection) for rev in (False, True)[: 1 + reverse]
        ]
        layers.append(LSTMLayer(dirs[0], dirs[1] if reverse else None))
    return layers, bias


def _direction(
    params: dict[tuple, Any], layer: int, rev: bool, bias: bool, proj: bool
) -> LSTMWeights:
    """One direction's canonical weights (PyTorch gate order i,f,g,o)."""
    suffix = f"_l{layer}{'_reverse' if rev else ''}"

    def get(kind: str) -> np.ndarray:
        return _array(f"{kind}{suffix}", params[(kind, layer, rev)])

    w_ih, w_hh = get("weight_ih"), get("weight_hh")
    if w_ih.ndim != 2 or w_hh.ndim != 2:
        raise WeightsError(
            f"weight_ih{suffix} / weight_hh{suffix}: expected 2-D, found {list(w_ih.shape)} / "
            f"{list(w_hh.shape)}"
        )
    w_hr = get("weight_hr") if proj else None
    n_cell = int(w_hr.shape[1]) if w_hr is not None and w_hr.ndim == 2 else int(w_hh.shape[1])
    rows = int(w_ih.shape[0])
    if rows != 4 * n_cell:
        if rows == 3 * n_cell:
            raise UnsupportedError(TARGET, f"weight_ih{suffix} has 3 gates: an nn.GRU, not an LSTM")
        if rows == n_cell:
            raise UnsupportedError(TARGET, f"weight_ih{suffix} has 1 gate: an nn.RNN, not an LSTM")
        raise WeightsError(
            f"weight_ih{suffix}: expected {4 * n_cell} rows (4 gates x hidden {n_cell}), "
            f"found {rows}"
        )
    b = None
    if bias:
        b_ih, b_hh = get("bias_ih"), get("bias_hh")
        if b_ih.shape != (rows,) or b_hh.shape != (rows,):
            raise WeightsError(
                f"bias_ih{suffix} / bias_hh{suffix}: expected [{rows}], "
                f"found {list(b_ih.shape)} / {list(b_hh.shape)}"
            )
        b = b_ih.astype(np.float64) + b_hh.astype(np.float64)
    tensors = unstack("torch", w_ih, w_hh, b)
    if w_hr is not None:
        tensors["projection_weights"] = w_hr
    return LSTMWeights.from_tensors(tensors)


def _array(name: str, value: Any) -> np.ndarray:
    """A torch tensor or array-like as a float numpy array (bf16/half widened)."""
    try:
        if hasattr(value, "detach"):
            import torch

            value = value.detach().to(device="cpu", dtype=torch.float64).numpy()
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - quantized/meta tensors fail in many ways
        raise WeightsError(f"{name}: cannot be read as a float array ({exc})") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise WeightsError(f"{name}: expected a real numeric tensor, found dtype {arr.dtype}")
    return arr

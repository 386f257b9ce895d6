"""Run a source file in its own framework, so verify can show the framework's error too.

A user comparing a compiled model to "the original" wants to know whether a difference
comes from edgelstm or was already there (e.g. the framework's own float32 rounding), so
the source runs on exactly the inputs the compiled model saw. Frameworks are imported
inside each call (TensorFlow and PyTorch take seconds to import).
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from pathlib import Path

import numpy as np

from edgelstm.errors import ModelFileError, UnsupportedError
from edgelstm.importers.quiet import framework_quiet

_TORCH_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|weight_hr|bias_ih|bias_hh)_l(?P<layer>\d+)"
    r"(?P<rev>_reverse)?$"
)


def run_framework(
    path: str | os.PathLike[str], x: np.ndarray, threads: int = 1
) -> tuple[str, np.ndarray]:
    """(framework name, first output) for batch-major ``x`` [N, T, I]."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".keras", ".h5"):
        return _keras(p, x)
    if suffix in (".pt", ".pth"):
        return "torch", _torch(p, x)
    if suffix in (".onnx", ".tflite"):
        from edgelstm.runtime.feeding import run_model
        from edgelstm.runtime.select import open_runner

        with open_runner(p, "auto", threads) as runner:
            return f"{runner.backend} ({p.name})", run_model(runner, x)
    raise UnsupportedError("framework", f"no framework runs {suffix} files")


def _keras(path: Path, x: np.ndarray) -> tuple[str, np.ndarray]:
    """Keras 3 first (it reads .keras and legacy .h5), then tf-keras for old .h5 files."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF's C++ start-up chatter
    errors = []
    for module in ("keras", "tf_keras"):
        try:
            with warnings.catch_warnings(), framework_quiet():
                warnings.simplefilter("ignore")
                keras = __import__(module)
                model = keras.models.load_model(path, compile=False)
        except ImportError as exc:
            errors.append(f"{module}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - Keras loaders raise anything
            errors.append(f"{module}: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            continue
        batch = model.inputs[0].shape[0] if getattr(model, "inputs", None) else None
        outs = []
        step = batch or x.shape[0]
        for start in range(0, x.shape[0], step):
            part = x[start : start + step]
            pad = step - part.shape[0]
            if pad:
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
            if hasattr(model, "reset_states"):
                with contextlib.suppress(Exception):  # non-stateful models may refuse
                    model.reset_states()
            try:
                y = model(part, training=False)
            except Exception as exc:  # noqa: BLE001 - shape/dtype errors from any layer
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                reason = f"{module} cannot run the inputs: {first}"
                raise UnsupportedError("framework", reason) from None
            y = y[0] if isinstance(y, (list, tuple)) else y
            outs.append(np.asarray(y)[: step - pad])
        return module, np.concatenate(outs)
    raise ModelFileError(f"{path}: no Keras could load it ({'; '.join(errors)})")


def _torch(path: Path, x: np.ndarray) -> np.ndarray:
    """Rebuild an ``nn.LSTM`` from a state dict (weights_only load) and run it batch-first."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types
        raise ModelFileError(f"{path}: not a weights-only torch file ({exc})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UnsupportedError("framework", f"{path.name} holds no state dict")
    parsed = {k: _TORCH_KEY.match(k) for k in state}
    if not parsed or not all(parsed.values()):
        raise UnsupportedError("framework", f"{path.name} holds more than one nn.LSTM's weights")
    prefixes = {m.group("prefix") for m in parsed.values() if m}
    if len(prefixes) != 1:
        raise UnsupportedError("framework", f"{path.name} holds several LSTMs")
    prefix = prefixes.pop()
    w = {k[len(prefix) :]: v for k, v in state.items()}
    layers = 1 + max(int(m.group("layer")) for m in parsed.values() if m)
    hidden = w["weight_ih_l0"].shape[0] // 4
    proj = w["weight_hr_l0"].shape[0] if "weight_hr_l0" in w else 0
    lstm = torch.nn.LSTM(
        w["weight_ih_l0"].shape[1],
        hidden,
        layers,
        bias="bias_ih_l0" in w,
        batch_first=True,
        bidirectional=any(k.endswith("_reverse") for k in w),
        proj_size=proj,
    )
    lstm.load_state_dict(w)
    lstm.eval()
    with torch.no_grad():
        y, _ = lstm(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return y.numpy()

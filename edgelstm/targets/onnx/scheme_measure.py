"""What the dynamic-int8 weight schemes are measured on, and what saturation would cost.

:mod:`.scheme_choice` builds the candidate files and applies the policy; this module gives it
the measurement inputs (the calibration sequences, else seeded inputs in the model's shapes),
runs a model on onnxruntime, and simulates the non-VNNI u8 x s8 kernel's int16 pair
saturation exactly (:func:`saturation_cost`), so a scheme is never judged by this CPU alone.
"""

from __future__ import annotations

import json

import numpy as np
import onnx

SHARP_COST = float(np.sqrt(3.0))
"""A :func:`saturation_cost` above this loses more than 7-bit weights (2x the rounding)."""
DEFAULT_DIM = 8
"""Dynamic dimensions of the seeded inputs."""
MAX_SEQUENCES = 8
"""Calibration sequences used for the measurement (one feed each)."""
SEED = 0


def _dims(value_info: onnx.ValueInfoProto) -> list[int]:
    return [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else DEFAULT_DIM
        for d in value_info.type.tensor_type.shape.dim
    ]


def _inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def default_feeds(model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """Seeded N(0, 1) float inputs in the model's input shapes (dynamic dims
    :data:`DEFAULT_DIM`); integer inputs (sequence lengths, trip counts) :data:`DEFAULT_DIM`,
    booleans True."""
    rng = np.random.default_rng(SEED)
    feeds: dict[str, np.ndarray] = {}
    for i in _inputs(model):
        dtype = onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
        shape = _dims(i)
        if dtype.kind == "f":
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[i.name] = np.ones(shape, dtype)
        else:
            feeds[i.name] = np.full(shape, DEFAULT_DIM, dtype)
    return [feeds]


def calibration_feeds(
    model: onnx.ModelProto, calibration: np.ndarray, time_major: bool | None = None
) -> list[dict[str, np.ndarray]]:
    """Up to :data:`MAX_SEQUENCES` of the [N, T, I] ``calibration`` sequences, one per feed
    (batch 1), into the model's rank-3 float input of width I; other inputs as
    :func:`default_feeds` but zero (initial states). ``time_major`` None: from edgelstm's
    metadata, else batch-major. [] when no input takes them."""
    data = np.asarray(calibration, np.float32)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        return []
    if time_major is None:
        props = {p.key: p.value for p in model.metadata_props}
        try:
            time_major = bool(json.loads(props.get("edgelstm.options", "{}")).get("time_major"))
        except (ValueError, AttributeError):
            time_major = False
    base = {
        k: (np.zeros_like(v) if v.dtype.kind == "f" else v)
        for k, v in default_feeds(model)[0].items()
    }
    target = next(
        (
            i.name
            for i in _inputs(model)
            if base[i.name].ndim == 3
            and base[i.name].dtype.kind == "f"
            and _dims(i)[-1] == data.shape[-1]
        ),
        None,
    )
    if target is None:
        return []
    dtype = base[target].dtype
    seqs = data[:MAX_SEQUENCES, :, None, :] if time_major else data[:MAX_SEQUENCES, None]
    return [base | {target: s.astype(dtype)} for s in seqs]


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_all(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Every float output of every feed, flattened into one float64 vector."""
    sess = _session(model)
    outs = [o for f in feeds for o in sess.run(None, f)]
    return np.concatenate(
        [np.ravel(o).astype(np.float64) for o in outs if np.asarray(o).dtype.kind == "f"]
    )


def rmse(want: np.ndarray, got: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(want - got)))) if want.size else 0.0


def saturation_cost(
    q: np.ndarray, rows: int = 16, seed: int = SEED, activations: np.ndarray | None = None
) -> float:
    """What int16 pair saturation (x86 u8 x s8 without VNNI: ``vpmaddubsw``) costs the int8
    weights ``q`` [.., K, N] (K reduced), simulated exactly: on ``activations`` [M, K] uint8
    when given, else on ``rows`` seeded uniform uint8 rows (the whole 0..255 range dynamic
    quantization maps each row onto). The RMS error of the saturated products over the RMS
    error 8-bit weight rounding adds to the same products (rounded weights: uniform +-0.5
    codes). 0: never saturates there; above :data:`SHARP_COST`: worse than requantizing
    7-bit (twice the rounding error)."""
    blocks = q.reshape(-1, *q.shape[-2:]) if q.ndim > 2 else q[None]
    k = blocks.shape[1]
    if activations is None:
        activations = np.random.default_rng(seed).integers(0, 256, (rows, k))
    x = np.asarray(activations).astype(np.int32)
    if k % 2:
        x = np.concatenate([x, np.zeros_like(x[:, :1])], axis=1)
    err2 = 0.0
    count = 0
    for b in blocks:
        w = b.astype(np.int32)
        if k % 2:
            w = np.concatenate([w, np.zeros_like(w[:1])])
        for j in range(0, w.shape[1], 256):
            wj = w[:, j : j + 256]
            pairs = x[:, 0::2, None] * wj[None, 0::2] + x[:, 1::2, None] * wj[None, 1::2]
            diff = np.clip(pairs, -32768, 32767).sum(1) - pairs.sum(1)
            err2 += float(np.square(diff.astype(np.float64)).sum())
            count += diff.size
    rounding = np.sqrt(np.mean(np.square(x[:, :k].astype(np.float64))) * k / 12.0)
    return float(np.sqrt(err2 / max(count, 1)) / rounding) if rounding else 0.0

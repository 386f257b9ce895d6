"""Dynamic int8: the weight scheme chosen by measured error, never worse than ORT's defaults.

No weight scheme wins everywhere. edgelstm's pair-safe int8 can never saturate
onnxruntime's u8 x s8 kernels (x86 without VNNI add adjacent products in int16), but on
trained weights with a few large values it is coarser than ORT's own full-range defaults
(measured RMSE 0.031 vs 0.021 on a trained VAD LSTM). So every candidate file is built and
run on onnxruntime against the float model on the same inputs:

* ``int8-pair`` / ``int8-7bit`` / ``uint8``: ORT's 7-bit ``quantize_dynamic`` graph with
  every weight re-derived by :func:`~edgelstm.targets.onnx.weight_schemes.requantize`;
* ``int8-full``: edgelstm's graph with ORT's full-range weights;
* ``ort-default``: ``quantize_dynamic`` with its defaults, unchanged (the bar to beat; it
  leaves Scan/Loop bodies float, so a composite LSTM's recurrent weights stay float32).

A candidate is *safe* when no int8 weight pair sums above :data:`PAIR_LIMIT` (exact: no
input can then saturate the kernel, on any CPU). One that is not must not win just because
this CPU has VNNI: it competes with its measured error grown by :func:`saturation_cost`
(the non-VNNI kernel's int16 pair saturation simulated exactly in numpy, on uniform uint8
activations: pessimistic for most data) — :attr:`Candidate.bound`. The winner has the
smallest such error, so it is never above ``ort-default``'s measured error when ORT's
defaults are safe, nor above their simulated non-VNNI error when they are not (the metadata
then says ``ort_default_saturates``).

Measurement inputs: the calibration sequences when given (up to :data:`MAX_SEQUENCES`), else
:func:`default_feeds` (seeded N(0, 1) floats in the model's input shapes, dynamic dims
:data:`DEFAULT_DIM`). uint8 weights run on slower u8 x u8 kernels (~1.4x), so an int8 scheme
within :data:`FAST_TIE` of it wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from edgelstm.targets.onnx.weight_schemes import (
    PAIR_LIMIT,
    int8_weights,
    max_pair_sum,
    requantize,
    walk_graphs,
)

SCHEME_KEY = "edgelstm.quantize.scheme"
ORDER = ("int8-pair", "int8-full", "ort-default", "int8-7bit", "uint8")
"""Candidates; equal errors go to the earlier one."""
SHARP_COST = float(np.sqrt(3.0))
"""A :func:`saturation_cost` above this loses more than 7-bit weights (2x the rounding)."""
FAST_TIE = 0.05
DEFAULT_DIM = 8
MAX_SEQUENCES = 8
SEED = 0

Quantizer = Callable[..., bytes]


@dataclass
class Candidate:
    """One dynamic-int8 file and what was measured on it."""

    name: str
    model: onnx.ModelProto | None
    error: float | None = None
    worst_pair: int = 0
    cost: float = 0.0
    note: str = ""
    float_lstms: int = 0
    """LSTM nodes the file leaves float (ORT's defaults skip If/Loop/Scan bodies)."""

    @property
    def safe(self) -> bool:
        return self.model is not None and self.worst_pair <= PAIR_LIMIT

    @property
    def bound(self) -> float | None:
        """The error to expect on a CPU without VNNI: the measured error grown by the
        simulated saturation cost (:func:`saturation_cost`) of the worst weight."""
        return None if self.error is None else self.error * float(np.hypot(1.0, self.cost))


def build_candidates(
    model: onnx.ModelProto, quantize: Quantizer, **base: object
) -> list[Candidate]:
    """Every candidate of :data:`ORDER` for the float ``model``; ``quantize(model, **options)``
    is ORT's ``quantize_dynamic`` (bytes); ``base``: options of edgelstm's graph (subgraphs,
    op types). A failing 7-bit run raises (nothing to offer); any other failure drops that
    candidate with a note."""
    seven = _load(quantize(model, reduce_range=True, **base))
    out = []
    for name in ORDER:
        try:
            if name == "int8-full":
                proto = _load(quantize(model, reduce_range=False, **base))
            elif name == "ort-default":
                proto = _load(quantize(model))
            else:
                proto = onnx.ModelProto()
                proto.CopyFrom(seven)
                requantize(proto, model, name)
        except Exception as exc:  # noqa: BLE001 - a candidate ORT cannot build is skipped
            out.append(Candidate(name, None, note=f"not built ({type(exc).__name__})"))
            continue
        out.append(_assessed(name, proto))
    fewest = min((c.float_lstms for c in out if c.model is not None), default=0)
    for c in out:
        if c.model is not None and c.float_lstms > fewest:
            c.note = f"leaves {c.float_lstms} LSTM node(s) float: not a candidate, only the bar"
    return out


def _float_lstms(proto: onnx.ModelProto) -> int:
    return sum(n.op_type == "LSTM" for g in walk_graphs(proto.graph) for n in g.node)


def _assessed(name: str, proto: onnx.ModelProto) -> Candidate:
    """A candidate with its worst pair sum and, if above the limit, its saturation cost."""
    weights = int8_weights(proto)
    sums = {n: max_pair_sum(q) for n, q in weights.items()}
    risky = [weights[n] for n, v in sums.items() if v > PAIR_LIMIT]
    cost = max((saturation_cost(q) for q in risky), default=0.0)
    return Candidate(
        name,
        proto,
        worst_pair=max(sums.values(), default=0),
        cost=cost,
        float_lstms=_float_lstms(proto),
    )


def _load(data: bytes) -> onnx.ModelProto:
    """A quantizer's file, its shape notes dropped: inside Scan bodies they can be wrong
    (it cannot see outer-scope constants) and onnxruntime then refuses the graph; and the
    opset import of a domain (com.microsoft) it used only inside If/Loop/Scan bodies, which
    it forgets to declare (onnx's checker refuses the file without it)."""
    proto = onnx.load_model_from_string(data)
    for g in walk_graphs(proto.graph):
        del g.value_info[:]
    domains = {n.domain for g in walk_graphs(proto.graph) for n in g.node if n.domain}
    imported = {o.domain for o in proto.opset_import}
    for domain in sorted(domains - imported - {"ai.onnx"}):  # ops it put only in subgraphs
        proto.opset_import.append(onnx.helper.make_opsetid(domain, 1))
    return proto


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


def _run(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Every float output of every feed, flattened into one float64 vector."""
    sess = _session(model)
    outs = [o for f in feeds for o in sess.run(None, f)]
    return np.concatenate(
        [np.ravel(o).astype(np.float64) for o in outs if np.asarray(o).dtype.kind == "f"]
    )


def rmse(want: np.ndarray, got: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(want - got)))) if want.size else 0.0


def measure(
    model: onnx.ModelProto, candidates: list[Candidate], feeds: list[dict[str, np.ndarray]]
) -> None:
    """Set each built candidate's RMSE vs the float ``model`` on ``feeds`` (onnxruntime)."""
    want = _run(model, feeds)
    for c in candidates:
        if c.model is None:
            continue
        try:
            c.error = rmse(want, _run(c.model, feeds))
        except Exception as exc:  # noqa: BLE001 - a candidate ORT cannot run is skipped
            c.note = f"does not run ({type(exc).__name__})"


def choose(candidates: list[Candidate]) -> Candidate:
    """The candidate with the smallest error on a CPU without VNNI (:attr:`Candidate.bound`;
    ties to a safe one, then to :data:`ORDER`) — unless that is uint8: onnxruntime's uint8
    weight kernels run ~1.5x slower than its int8 ones (bench_anchors: 0.38 vs 0.24 ms at 256
    units, 4.5 vs 3.1 ms at 1024), so the most accurate safe int8 candidate wins whenever it
    keeps the guarantee (no worse than ``ort-default`` on a CPU without VNNI), or, with no
    such bar, when it is within :data:`FAST_TIE` of the uint8 one. Nothing measured:
    ``int8-pair``."""
    by_name = {c.name: c for c in candidates}
    fewest = min((c.float_lstms for c in candidates if c.model is not None), default=0)
    ranked = sorted(  # a file that leaves an LSTM float is the bar, not an answer
        (c for c in candidates if c.bound is not None and c.float_lstms <= fewest),
        key=lambda c: (c.bound, not c.safe, candidates.index(c)),
    )
    if not ranked:
        return by_name["int8-pair"]
    best = ranked[0]
    bar = by_name.get("ort-default")
    bar_bound = None  # the guarantee: no worse than ORT's defaults (on a CPU without VNNI)
    if bar is not None and bar.bound is not None and bar.float_lstms <= fewest:
        bar_bound = bar.bound
    for alt in ranked[1:]:
        if not best.name.startswith("uint8") or alt.name.startswith("uint8") or not alt.safe:
            continue
        assert alt.bound is not None and best.bound is not None
        if bar_bound is not None:  # int8 kernels are ~1.5x faster: take one that keeps it
            return alt if alt.bound <= bar_bound else best
        return alt if alt.bound <= best.bound * (1 + FAST_TIE) else best
    return best


def record(chosen: Candidate, candidates: list[Candidate], measured_on: str) -> str:
    """The :data:`SCHEME_KEY` metadata value (JSON)."""
    default = next((c for c in candidates if c.name == "ort-default"), None)
    return json.dumps(
        {
            "chosen": chosen.name,
            "measured_on": measured_on,
            "rmse": {c.name: c.error for c in candidates if c.error is not None},
            "rmse_without_vnni": {
                c.name: c.bound for c in candidates if c.bound is not None and not c.safe
            },
            "saturates_without_vnni": [c.name for c in candidates if c.model and not c.safe],
            "ort_default_saturates": bool(default and default.model and not default.safe),
            "ort_default_saturation_cost": round(default.cost, 3) if default else None,
            "notes": {c.name: c.note for c in candidates if c.note},
            "rule": "smallest RMSE vs float; for weights whose pairs sum > 128 (saturating "
            "onnxruntime's u8 x s8 kernels without VNNI) the RMSE grown by the simulated "
            "saturation cost (rmse_without_vnni); uint8 runs ~1.4x slower (u8 x u8 kernels), "
            f"so a safe int8 scheme within {FAST_TIE:.0%} of it wins",
        },
        sort_keys=True,
    )


def choose_scheme(
    model: onnx.ModelProto,
    quantize: Quantizer,
    calibration: np.ndarray | list[dict[str, np.ndarray]] | None = None,
    **base: object,
) -> tuple[onnx.ModelProto, str]:
    """(chosen dynamic-int8 model, :data:`SCHEME_KEY` value) for the float ``model``;
    ``calibration``: [N, T, I] sequences (:func:`calibration_feeds`) or ready feeds."""
    candidates = build_candidates(model, quantize, **base)
    feeds: list[dict[str, np.ndarray]] = []
    measured_on = f"seeded N(0, 1) inputs (seed {SEED}, dynamic dims {DEFAULT_DIM})"
    if isinstance(calibration, list):
        feeds, measured_on = calibration, f"{len(calibration)} given feed(s)"
    elif calibration is not None:
        feeds = calibration_feeds(model, calibration)
        measured_on = f"{len(feeds)} calibration sequence(s)"
    if not feeds:
        feeds = default_feeds(model)
    try:
        measure(model, candidates, feeds)
    except Exception as exc:  # noqa: BLE001 - the float model does not run on these inputs
        measured_on = f"not measured (float model: {type(exc).__name__}); pair-safe kept"
    chosen = choose(candidates)
    assert chosen.model is not None
    return chosen.model, record(chosen, candidates, measured_on)


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

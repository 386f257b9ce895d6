"""Dynamic int8: the weight scheme chosen by measured error, never worse than ORT's defaults.

No weight scheme wins everywhere. edgelstm's pair-safe int8 can never saturate
onnxruntime's u8 x s8 kernels (x86 without VNNI add adjacent products in int16), but on
trained weights with a few large values it is coarser than ORT's own full-range defaults
(measured RMSE 0.031 vs 0.021 on a trained VAD LSTM). So every candidate file is built and
run on onnxruntime against the float model on the same inputs:

* ``int8-pair`` / ``int8-7bit`` / ``uint8``: ORT's 7-bit ``quantize_dynamic`` graph with
  every weight re-derived by :func:`~edgelstm.targets.onnx.weight_schemes.requantize`;
* ``int8-full``: edgelstm's graph with ORT's full-range weights;
* ``ort-default``: ``quantize_dynamic`` with its defaults, unchanged (the bar to beat). It
  leaves If/Loop/Scan bodies float: an LSTM node there stays float32, and then it is no int8
  bar (nor an answer); a composite LSTM's recurrent MatMul (a Scan body) stays float32 too,
  and there it is both (more accurate than any all-int8 file: trained JapaneseVowels
  classifier RMSE 1.6e-3 vs 1.1e-2 full-range int8, and as fast).

A candidate is *safe* when no int8 weight pair sums above :data:`PAIR_LIMIT` (exact: no
input can then saturate the kernel, on any CPU). One that is not must not win just because
this CPU has VNNI: it is also judged by its measured error grown by :func:`saturation_cost`
(the non-VNNI kernel's int16 pair saturation simulated exactly in numpy, on uniform uint8
activations: pessimistic for most data) — :attr:`Candidate.bound`.

The policy (:data:`PRIORITIES`, ``OnnxOptions.dynamic_priority``; :func:`choose`):

* ``"accuracy"`` (default): the guarantee of issue 17 — the chosen file's measured error on
  this CPU is <= ``ort-default``'s AND its non-VNNI bound is <= theirs (``ort-default``
  keeps both itself, so it always holds when ORT's defaults quantize every LSTM); among the
  candidates that keep it, int8 before uint8 (onnxruntime's u8 x u8 kernels run ~1.5x
  slower), then the smallest bound; a scheme other than ORT's own weights must measure
  :data:`CLEAR_MARGIN` better than them (the inputs are a sample).
* ``"portable"`` (the policy before): the smallest bound, but a safe int8 candidate over a
  more accurate uint8 one whenever its bound is <= ``ort-default``'s. On a VNNI CPU, where
  ORT's full-range int8 does not saturate, it then measures less accurate than ORT's
  defaults (exporter corpus: 1.35x, geometric mean), at the same speed; without VNNI it is
  the more accurate.

Whether the guarantee held, and why not, is in the metadata (:func:`record`). ORT runs are
deterministic and every candidate runs on the same inputs, so the guarantee's comparison
takes no tolerance for noise; the margin (:data:`CLEAR_MARGIN`) is the other way, against
the inputs being one sample.

Measurement inputs: the calibration sequences or the whole graph's given feeds
(``--calibration``, :mod:`edgelstm.measure.feeds`) when given (up to :data:`MAX_SEQUENCES`), else
:func:`default_feeds` (seeded N(0, 1) floats in the model's input shapes, dynamic dims
:data:`DEFAULT_DIM`). When ORT's defaults leave an LSTM node float there is no int8 bar: the
smallest bound wins, a safe int8 scheme within :data:`FAST_TIE` of a uint8 one preferred
(both policies).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

import numpy as np
import onnx

from edgelstm.errors import SpecError
from edgelstm.ir.options import DYNAMIC_PRIORITIES as PRIORITIES
from edgelstm.ir.options import DynamicPriority
from edgelstm.targets.onnx.scheme_measure import (
    DEFAULT_DIM,
    MAX_SEQUENCES,
    SEED,
    SHARP_COST,
    calibration_feeds,
    default_feeds,
    rmse,
    run_all,
    saturation_cost,
)
from edgelstm.targets.onnx.scheme_policy import (
    CLEAR_MARGIN,
    FAST_TIE,
    Candidate,
    choose,
    guarantee,
)
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
Quantizer = Callable[..., bytes]
Derive = Callable[[onnx.ModelProto], int]
"""Re-derives, in place, weights of a copy of the ``int8-full`` file (an extra candidate)."""


def build_candidates(
    model: onnx.ModelProto,
    quantize: Quantizer,
    extra: Mapping[str, Derive] | None = None,
    **base: object,
) -> list[Candidate]:
    """Every candidate of :data:`ORDER` for the float ``model``, then one per ``extra`` entry
    (name -> a function re-deriving, in place, the weights of a copy of the ``int8-full``
    file, returning how many it changed; e.g. ``int8-comp``: :mod:`.compensate`);
    ``quantize(model, **options)`` is ORT's ``quantize_dynamic`` (bytes); ``base``: options
    of edgelstm's graph (subgraphs, op types). A failing 7-bit run raises (nothing to offer);
    any other failure drops that candidate with a note."""
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
    full = next((c.model for c in out if c.name == "int8-full" and c.model is not None), None)
    for name, derive in (extra or {}).items():
        if full is None:
            out.append(Candidate(name, None, note="not built (no int8-full file to derive)"))
            continue
        proto = onnx.ModelProto()
        proto.CopyFrom(full)
        try:
            changed = derive(proto)
        except Exception as exc:  # noqa: BLE001 - an extra scheme that fails is skipped
            out.append(Candidate(name, None, note=f"not built ({type(exc).__name__})"))
            continue
        if changed:
            out.append(_assessed(name, proto))
        else:
            out.append(Candidate(name, None, note="not built (no weight it applies to)"))
    fewest = min((c.float_lstms for c in out if c.model is not None), default=0)
    for c in out:
        if c.model is not None and c.float_lstms > fewest:
            c.note = f"leaves {c.float_lstms} LSTM node(s) float: neither a candidate nor the bar"
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


def measure(
    model: onnx.ModelProto, candidates: list[Candidate], feeds: list[dict[str, np.ndarray]]
) -> None:
    """Set each built candidate's RMSE vs the float ``model`` on ``feeds`` (onnxruntime)."""
    want = run_all(model, feeds)
    for c in candidates:
        if c.model is None:
            continue
        try:
            c.error = rmse(want, run_all(c.model, feeds))
        except Exception as exc:  # noqa: BLE001 - a candidate ORT cannot run is skipped
            c.note = f"does not run ({type(exc).__name__})"


def record(
    chosen: Candidate,
    candidates: list[Candidate],
    measured_on: str,
    priority: DynamicPriority = "accuracy",
) -> str:
    """The :data:`SCHEME_KEY` metadata value (JSON)."""
    default = next((c for c in candidates if c.name == "ort-default"), None)
    rules = {
        "accuracy": "the guarantee first: RMSE vs float <= ORT's quantize_dynamic defaults' "
        "on this CPU AND (rmse_without_vnni: RMSE grown by the simulated saturation of pairs "
        "summing > 128, onnxruntime's u8 x s8 kernels without VNNI) without VNNI; among the "
        "schemes keeping it int8 before uint8 (~1.5x slower u8 x u8 kernels), then the "
        "smallest RMSE without VNNI; a scheme other than ORT's own weights only when its RMSE is "
        f"{CLEAR_MARGIN:.0%} below theirs (the inputs are a sample)",
        "portable": "smallest RMSE without VNNI (rmse_without_vnni for pairs summing > 128), "
        "but a safe int8 scheme before a more accurate uint8 one whenever its RMSE is <= ORT's "
        "defaults' without VNNI (~1.5x faster kernels; on a VNNI CPU it may measure less "
        "accurate than ORT's defaults)",
    }
    return json.dumps(
        {
            "chosen": chosen.name,
            "policy": priority,
            "guarantee": guarantee(chosen, candidates),
            "measured_on": measured_on,
            "rmse": {c.name: c.error for c in candidates if c.error is not None},
            "rmse_without_vnni": {
                c.name: c.bound for c in candidates if c.bound is not None and not c.safe
            },
            "saturates_without_vnni": [c.name for c in candidates if c.model and not c.safe],
            "ort_default_saturates": bool(default and default.model and not default.safe),
            "ort_default_saturation_cost": round(default.cost, 3) if default else None,
            "notes": {c.name: c.note for c in candidates if c.note},
            "rule": f"{priority}: "
            + rules[priority]
            + f"; with no bar (ORT's defaults leave LSTMs float) the smallest RMSE without "
            f"VNNI, a safe int8 scheme within {FAST_TIE:.0%} of a uint8 one preferred",
        },
        sort_keys=True,
    )


def choose_scheme(
    model: onnx.ModelProto,
    quantize: Quantizer,
    calibration: np.ndarray | list[dict[str, np.ndarray]] | None = None,
    *,
    priority: DynamicPriority = "accuracy",
    extra: Mapping[str, Derive] | None = None,
    **base: object,
) -> tuple[onnx.ModelProto, str]:
    """(chosen dynamic-int8 model, :data:`SCHEME_KEY` value) for the float ``model``;
    ``calibration``: [N, T, I] sequences (:func:`calibration_feeds`) or ready feeds;
    ``priority``: the policy of :func:`choose`; ``extra``: more candidates
    (:func:`build_candidates`)."""
    if priority not in PRIORITIES:
        raise SpecError(
            f"dynamic priority: expected one of {PRIORITIES}, found {priority!r} "
            "(OnnxOptions(dynamic_priority=...), --onnx-dynamic-priority)"
        )
    candidates = build_candidates(model, quantize, extra, **base)
    feeds: list[dict[str, np.ndarray]] = []
    measured_on = f"seeded N(0, 1) inputs (seed {SEED}, dynamic dims {DEFAULT_DIM})"
    if isinstance(calibration, list):
        feeds = calibration[:MAX_SEQUENCES]
        measured_on = f"{len(feeds)} given feed(s)" + (
            f" (the first of {len(calibration)})" if len(calibration) > len(feeds) else ""
        )
    elif calibration is not None:
        feeds = calibration_feeds(model, calibration)
        measured_on = f"{len(feeds)} calibration sequence(s)"
    if not feeds:
        feeds = default_feeds(model)
    try:
        measure(model, candidates, feeds)
    except Exception as exc:  # noqa: BLE001 - the float model does not run on these inputs
        measured_on = f"not measured (float model: {type(exc).__name__}); pair-safe kept"
    chosen = choose(candidates, priority)
    assert chosen.model is not None
    return chosen.model, record(chosen, candidates, measured_on, priority)


__all__ = [
    "DEFAULT_DIM",
    "MAX_SEQUENCES",
    "SCHEME_KEY",
    "SEED",
    "SHARP_COST",
    "Candidate",
    "build_candidates",
    "calibration_feeds",
    "choose",
    "choose_scheme",
    "default_feeds",
    "measure",
    "record",
    "rmse",
    "saturation_cost",
]

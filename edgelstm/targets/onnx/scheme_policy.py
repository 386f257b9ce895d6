"""The dynamic-int8 scheme policy: which measured candidate a file gets.

:mod:`.scheme_choice` builds and measures the candidates (one :class:`Candidate` each);
this module holds what a candidate is and the two policies of
``OnnxOptions.dynamic_priority`` (:func:`choose`): "accuracy" keeps issue 17's guarantee
(never less accurate than onnxruntime's own ``quantize_dynamic`` defaults, on this CPU nor
simulated without VNNI) and takes the fastest scheme that does; "portable" judges by the
error simulated without VNNI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgelstm.errors import SpecError
from edgelstm.ir.options import DYNAMIC_PRIORITIES as PRIORITIES
from edgelstm.ir.options import DynamicPriority
from edgelstm.targets.onnx.weight_schemes import PAIR_LIMIT

FAST_TIE = 0.05
CLEAR_MARGIN = 0.05
""""accuracy": another scheme replaces ORT's own weights only when it measures this much more
accurate than they do. The errors are deterministic, but the inputs are one sample: between
seeded N(0, 1) draws the ratio of two schemes' errors moved by about +-5% at 128-256 units on
the exporter corpus (up to +-30% on its 7-unit models), and a 7-bit file chosen for measuring
0.5% better than ORT's defaults measured 1.24x worse on another draw."""


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
    """LSTM nodes the file leaves float (ORT's defaults skip If/Loop/Scan bodies); a file
    leaving more than another candidate is neither an answer nor the bar."""

    @property
    def safe(self) -> bool:
        return self.model is not None and self.worst_pair <= PAIR_LIMIT

    @property
    def bound(self) -> float | None:
        """The error to expect on a CPU without VNNI: the measured error grown by the
        simulated saturation cost (:func:`saturation_cost`) of the worst weight."""
        return None if self.error is None else self.error * float(np.hypot(1.0, self.cost))


def _fewest(candidates: list[Candidate]) -> int:
    return min((c.float_lstms for c in candidates if c.model is not None), default=0)


def bar_of(candidates: list[Candidate]) -> Candidate | None:
    """``ort-default`` when it was measured and quantizes every LSTM the others do: the file
    the guarantee is about (None: no int8 bar)."""
    bar = next((c for c in candidates if c.name == "ort-default"), None)
    if bar is None or bar.bound is None or bar.float_lstms > _fewest(candidates):
        return None
    return bar


def _at_most(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a <= b  # NaN: False


def keeps(c: Candidate, bar: Candidate) -> bool:
    """``c`` measured no less accurate than ``bar`` here AND on a CPU without VNNI."""
    return _at_most(c.error, bar.error) and _at_most(c.bound, bar.bound)


def _excess(c: Candidate, bar: Candidate) -> float:
    """How far ``c`` misses ``bar``: the larger of its two error ratios (inf: unmeasurable)."""

    def ratio(a: float | None, b: float | None) -> float:
        if a is None or b is None or not np.isfinite(a) or not np.isfinite(b):
            return float("inf")
        return a / b if b > 0 else (1.0 if a == 0 else float("inf"))

    return max(ratio(c.error, bar.error), ratio(c.bound, bar.bound))


def _clearly(c: Candidate, bar: Candidate) -> bool:
    """``c`` is ORT's own file, measures exactly as it does (the same weights), or beats it
    by :data:`CLEAR_MARGIN`."""
    if c is bar or c.error == bar.error:
        return True
    return (
        c.error is not None and bar.error is not None and c.error <= bar.error * (1 - CLEAR_MARGIN)
    )


def _slow(c: Candidate) -> bool:
    return c.name.startswith("uint8")


def choose(candidates: list[Candidate], priority: DynamicPriority = "accuracy") -> Candidate:
    """The candidate of ``priority`` (module docstring). ``"accuracy"``: among those that
    keep the guarantee (:func:`keeps` ``ort-default``) an int8 one, then the smallest bound
    (:func:`keeping`). ``"portable"``, and both policies when there is no bar (:func:`bar_of`):
    the smallest bound (ties to a safe one, then to :data:`ORDER`) unless that is uint8 —
    onnxruntime's uint8 weight kernels run ~1.5x slower (bench_anchors: 0.38 vs 0.24 ms at
    256 units, 4.5 vs 3.1 ms at 1024) — and the most accurate safe int8 candidate keeps
    ORT's bound, or, with no bar, is within :data:`FAST_TIE` of the uint8 one. Nothing
    measured: ``int8-pair``."""
    if priority not in PRIORITIES:
        raise SpecError(f"dynamic priority: expected one of {PRIORITIES}, found {priority!r}")
    fewest = _fewest(candidates)
    ranked = sorted(  # a file that leaves an LSTM float is no answer
        (
            c
            for c in candidates
            if c.model is not None and c.bound is not None and c.float_lstms <= fewest
        ),
        key=lambda c: (c.bound, not c.safe, candidates.index(c)),
    )
    if not ranked:
        return next(c for c in candidates if c.name == "int8-pair")
    bar = bar_of(candidates)
    if priority == "accuracy" and bar is not None:
        return keeping(ranked, bar)
    best = ranked[0]
    for alt in ranked[1:]:
        if not _slow(best) or _slow(alt) or not alt.safe:
            continue
        assert alt.bound is not None and best.bound is not None
        if bar is not None:  # int8 kernels are ~1.5x faster: take one that keeps ORT's bound
            return alt if _at_most(alt.bound, bar.bound) else best
        return alt if alt.bound <= best.bound * (1 + FAST_TIE) else best
    return best


def keeping(ranked: list[Candidate], bar: Candidate) -> Candidate:
    """The first int8 candidate of ``ranked`` (by bound) that :func:`keeps` ``bar`` (and is
    ORT's weights or clearly better, :func:`_clearly`), else the first such uint8 one; if none
    does, the one that misses it least (:func:`_excess`).
    ``bar`` is among ``ranked`` for :func:`choose`, so that last case needs an unmeasurable
    (NaN) error there."""
    kept = [c for c in ranked if keeps(c, bar) and _clearly(c, bar)]
    if kept:
        return min(kept, key=lambda c: (_slow(c), ranked.index(c)))
    return min(ranked, key=lambda c: (_excess(c, bar), ranked.index(c)))


def guarantee(chosen: Candidate, candidates: list[Candidate]) -> dict[str, object]:
    """Whether ``chosen`` keeps issue 17's guarantee against ``ort-default`` (``held`` None:
    no bar), and the numbers why."""
    bar = bar_of(candidates)
    if bar is None:
        ort = next((c for c in candidates if c.name == "ort-default"), None)
        why = ort.note if ort is not None and ort.note else "ORT's defaults were not measured"
        return {"held": None, "reason": f"no int8 bar: {why}"}
    here, there = _at_most(chosen.error, bar.error), _at_most(chosen.bound, bar.bound)
    text = (
        f"RMSE {chosen.error:.3e} vs ORT's defaults {bar.error:.3e} on this CPU, "
        f"{chosen.bound:.3e} vs {bar.bound:.3e} simulated without VNNI"
        if chosen.error is not None and chosen.bound is not None and bar.error is not None
        else "not measured"
    )
    missed = [w for w, ok in (("on this CPU", here), ("without VNNI", there)) if not ok]
    return {
        "held": here and there,
        "reason": text + (f"; less accurate {' and '.join(missed)}" if missed else ""),
    }

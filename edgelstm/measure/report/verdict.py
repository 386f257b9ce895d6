"""The report's last word: which file to ship for a stated error budget, and why.

The rule is :func:`edgelstm.measure.optimize.choose`, the one ``compile --optimize latency``
applies: among the files within the budget the fastest wins, and among those within
``TIE_MARGIN`` of it the most accurate. It is reused here, not restated, so the report and
the optimizer cannot disagree about the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgelstm.measure.optimize import TIE_MARGIN, Candidate, choose

if TYPE_CHECKING:
    from edgelstm.measure.report import Report


def _unbuildable() -> bytes:  # the files exist already; choose() never builds
    raise AssertionError("report candidates are not rebuilt")


def _candidates(rep: Report) -> list[Candidate]:
    return [
        Candidate(
            name=b.name,
            format=b.format,
            quantize=b.quantization,
            build=_unbuildable,
            error=v.max_abs,
            p50_ms=b.p50_ms,
        )
        for b, v in zip(rep.bench, rep.verify, strict=True)
        if v is not None
    ]


def verdict(rep: Report) -> list[str]:
    """Sentences: the file to ship under ``rep.max_error`` and why each other one lost."""
    budget = rep.max_error
    cands = _candidates(rep)
    if not cands:
        return ["No file could be verified, so none can be recommended (see the notes)."]
    within = [c for c in cands if c.error is not None and c.error <= budget]
    if not within:
        best = min(cands, key=lambda c: c.error if c.error is not None else float("inf"))
        return [
            f"No file is within the error budget of {budget:g} (max abs vs the float64 "
            f"reference). The most accurate is {best.name} at {best.error:.2e}: raise the "
            "budget (--max-error) if that is acceptable, or compile a float variant."
        ]
    best = choose(within)
    assert best.p50_ms is not None and best.error is not None
    fastest = min(c.p50_ms or float("inf") for c in within)
    why = (
        "the fastest of the files within it"
        if best.p50_ms <= fastest
        else f"the most accurate of those within {TIE_MARGIN:.0%} of the fastest (a tie)"
    )
    lines = [
        f"Ship {best.name}: its max abs error {best.error:.2e} is within the budget of "
        f"{budget:g}, and it is {why} (p50 {best.p50_ms:.3f} ms): the rule "
        f"`edgelstm compile --optimize latency --max-error {budget:g}` applies."
    ]
    for c in cands:
        if c is best or c.error is None or c.p50_ms is None:
            continue
        if c.error > budget:
            lines.append(f"{c.name}: max abs error {c.error:.2e} is over the budget.")
        elif c.p50_ms > best.p50_ms * (1 + TIE_MARGIN):
            slower = c.p50_ms / best.p50_ms - 1
            lines.append(f"{c.name}: within the budget, but {slower:.0%} slower.")
        else:
            lines.append(f"{c.name}: as fast (a tie), but less accurate ({c.error:.2e}).")
    lines.append(
        "Latency is this machine's; on a different device, re-run the report there before "
        "trusting the ranking."
    )
    return lines


__all__ = ["verdict"]

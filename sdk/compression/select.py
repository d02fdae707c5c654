"""Selection over measured candidates: which budget each missed, whether an expensive fallback
is worth running, the Pareto front and the pick.  Pure: candidates in, decisions out."""

from __future__ import annotations

from typing import Optional

from edgeship.budget import Verdict
from edgeship.compression.candidate import FIDELITY_CHECKS, Candidate, misses

PREFER = {"latency": ("latency", "size", "memory"), "size": ("size", "latency", "memory"),
          "memory": ("memory", "latency", "size")}
# The Pareto front's objectives: accuracy higher is better, the others lower.
FRONT_OBJECTIVES = ("accuracy", "latency", "memory", "size")
# An accuracy-aware search runs only when plain int8 missed the fidelity budget by more than
# this share of it and by more than the estimate's own uncertainty: a near miss is noise.
REAL_MISS = 0.25


def fallback_needed(primary: Candidate, done: list[Candidate], percentile: str) -> Optional[str]:
    """None when an expensive fallback (accuracy-aware int8) should run after ``primary``
    (plain int8), else why not: the primary kept fidelity; it missed by less than a real margin
    (``REAL_MISS`` of the budget, or the estimate's own 95 % uncertainty); or a candidate
    that fits every budget is already faster than the primary (the fallback keeps layers in
    fp32, so it is slower than the primary)."""
    check = primary.fidelity_check()
    if not primary.measured or check is None or check.measured is None:
        return None
    if check.ok:
        return f"{primary.name} already kept fidelity within the budget"
    assert primary.evaluation is not None
    noise = 0.0
    figures = primary.evaluation.fidelity.figures
    upper, drop = figures.get("estimated_drop_upper"), figures.get("estimated_drop")
    if primary.evaluation.fidelity.metric == "estimated_drop" and upper and drop is not None:
        noise = float(upper) - float(drop)
    margin = check.margin or 0.0
    if margin <= max(REAL_MISS * check.limit, noise):
        return (f"{primary.name} missed the {check.name} budget by only {margin:.3g} "
                f"{check.unit} (within {max(REAL_MISS * check.limit, noise):.3g} {check.unit}): "
                "not worth an accuracy-aware search")
    lat = primary.latency(percentile)
    faster = [c for c in done if c.fits and lat is not None
              and (c.latency(percentile) or float("inf")) < lat]
    if faster:
        best = min(faster, key=lambda c: c.latency(percentile) or 0.0)
        return (f"{best.name} already fits every budget and is faster than {primary.name}, "
                "which an accuracy-aware search can only slow down")
    return None


def mark_front(cands: list[Candidate], percentile: str) -> None:
    """Pareto front over accuracy (higher) x latency x memory x size (lower)."""
    from edgeship.pareto import pareto_front

    front = pareto_front([c for c in cands if c.measured], lambda c: tuple(
        -c.metric(m, percentile) if m == "accuracy" else c.metric(m, percentile)
        for m in FRONT_OBJECTIVES))
    for c in cands:
        if c.measured:
            c.on_front = any(c is f for f in front)


def select(cands: list[Candidate], prefer: str, percentile: str = "p50") -> Optional[Candidate]:
    """The best candidate inside every budget: least ``prefer``, then the other two."""
    fits = [c for c in cands if c.fits]
    if not fits:
        return None
    order = PREFER[prefer]
    return min(fits, key=lambda c: tuple(c.metric(m, percentile) for m in order))




def fastest_engines(done: list[Candidate], percentile: str = "p50") -> dict[str, str]:
    """Per precision class (fp32, int8), the engine of the fastest measured candidate that kept
    fidelity: where the structural candidates of that precision go."""
    best: dict[str, tuple[float, str]] = {}
    for c in done:
        check = c.fidelity_check()
        if not c.measured or (check is not None and not check.ok):
            continue
        p = c.planned
        lat = c.latency(percentile)
        if p.structural or p.precision not in ("fp32", "int8") or p.engine is None or lat is None:
            continue
        if p.precision not in best or lat < best[p.precision][0]:
            best[p.precision] = (lat, p.engine)
    return {k: v[1] for k, v in best.items()}


def no_fit_message(candidates: list[Candidate]) -> str:
    """One line naming each budget that was missed, by how many candidates, and the closest
    miss."""
    measured = [c for c in candidates if c.measured and c.verdict is not None]
    if not measured:
        return f"none of {len(candidates)} candidates could be built and measured"
    parts = []
    for name in ("latency", "memory", "size", *FIDELITY_CHECKS):
        fails = [(chk, c) for c in measured for chk in c.verdict.failed  # type: ignore[union-attr]
                 if chk.name == name]
        if fails:
            chk, c = min(fails, key=lambda f: (f[0].margin is None, (f[0].margin or 0) / f[0].limit))
            parts.append(f"{name} budget {chk.limit:g} {chk.unit} missed by {len(fails)} of "
                         f"{len(measured)} (closest: {c.name}, {misses(Verdict([chk]))})")
    return "no candidate meets every budget: " + "; ".join(parts)

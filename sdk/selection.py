"""A compress candidate's record (built, judged, measured, or why not) and the selection over
them: which budget each missed, whether an expensive fallback is worth running, the Pareto
front and the pick."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgeship.budget import Check, Verdict
from edgeship.core.errors import ConfigError
from edgeship.judging import Evaluation
from edgeship.recipe import Recipe
from edgeship.runtime.bench import BenchmarkResult

PREFER = {"latency": ("latency", "size", "memory"), "size": ("size", "latency", "memory"),
          "memory": ("memory", "latency", "size")}
CANDIDATE_SCHEMA = "edgeship.candidate/1"

FIDELITY_CHECKS = ("accuracy_drop", "snr", "rel_error", "cosine")
# An accuracy-aware search runs only when plain int8 missed the fidelity budget by more than
# this share of it and by more than the estimate's own uncertainty: a near miss is noise.
REAL_MISS = 0.25


@dataclass
class Candidate:
    """One recipe's outcome: built, judged and measured, or why not."""

    recipe: Recipe
    error: Optional[str] = None
    skipped: Optional[str] = None  # a fallback that was not needed
    path: Optional[Path] = None  # the built model (in the search's scratch directory)
    steps: list[dict[str, Any]] = field(default_factory=list)
    macs: Optional[int] = None
    evaluation: Optional[Evaluation] = None
    benchmark: Optional[BenchmarkResult] = None
    verdict: Optional[Verdict] = None
    seconds: dict[str, float] = field(default_factory=dict)
    on_front: bool = False
    cached: bool = False  # the build came from the candidate cache

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def measured(self) -> bool:
        return self.error is None and self.benchmark is not None and self.evaluation is not None

    @property
    def fits(self) -> bool:
        return self.measured and self.verdict is not None and self.verdict.ok

    def latency(self, percentile: str = "p50") -> Optional[float]:
        return self.benchmark.latency(percentile) if self.benchmark else None

    def metric(self, name: str, percentile: str = "p50") -> float:
        """latency (ms), memory (peak MB), size (bytes) or accuracy (the fidelity score, higher
        is better: minus the drop, or the output-error metric) of a measured one."""
        assert self.benchmark is not None and self.evaluation is not None
        return float({"latency": self.benchmark.latency(percentile),
                      "memory": self.benchmark.memory.peak_rss_mb or 0.0,
                      "size": self.benchmark.model.size_bytes,
                      "accuracy": self.evaluation.score}[name])

    def status(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        if self.error:
            return f"failed: {self.error}"
        if self.verdict is None:
            return "not measured"
        return "fits every budget" if self.verdict.ok else "misses " + misses(self.verdict)

    def to_candidate_json(self) -> dict[str, Any]:
        """The ``edgeship.candidate/1`` object the report reads (sdk/report.py)."""
        ev = self.evaluation
        return {
            "schema": CANDIDATE_SCHEMA, "name": self.name,
            "model": self.path.name if self.path else None,  # only the pick's file is kept
            "recipe": self.recipe.labels(),
            "accuracy": ev.accuracy if ev else None,
            "baseline_accuracy": ev.baseline if ev else None,
            "accuracy_drop": ev.drop if ev else None,
            "accuracy_metric": ev.metric if ev else None,
            "fidelity": self.fidelity_record(),
            "timings": self.timings(),
            "benchmark": self.benchmark.to_dict() if self.benchmark else None,
            "verdict": self.verdict.to_dict() if self.verdict else None,
            "error": self.error or (f"skipped: {self.skipped}" if self.skipped else None),
        }

    def fidelity_check(self) -> Optional[Check]:
        return next((c for c in (self.verdict.checks if self.verdict else [])
                     if c.name in FIDELITY_CHECKS), None)

    def fidelity_record(self) -> Optional[dict[str, Any]]:
        """The judge, the metric that decided, its value and tolerance, every figure."""
        if self.evaluation is None:
            return None
        f = self.evaluation.fidelity
        check = self.fidelity_check()
        return {"judge": f.judge, "task": f.task, "metric": f.metric, "label": f.label,
                "value": f.value, "unit": f.unit, "estimated": f.estimated,
                "tolerance": check.limit if check else None,
                "ok": check.ok if check else None,
                "decided_by": f"{check.name}: {f.label}" if check else None,
                "reason": f.reason, "samples": f.samples, "figures": f.figures}

    def timings(self) -> dict[str, Any]:
        return {"build_s": self.seconds.get("build"), "evaluate_s": self.seconds.get("evaluate"),
                "measure_s": self.seconds.get("benchmark"), "cached_build": self.cached}

    def details(self) -> dict[str, Any]:
        """What the candidate JSON has no field for: recipe, cost, parity, timings."""
        ev, bench = self.evaluation, self.benchmark
        return {
            "recipe": self.recipe.to_dict(), "status": self.status(), "format": _format(self),
            "backend": self.recipe.runs_on, "precision_hint": self.recipe.precision,
            "macs": self.macs, "flops": 2 * self.macs if self.macs is not None else None,
            "size_bytes": bench.model.size_bytes if bench else None,
            "latency_ms": {"p50": bench.latency_ms.p50, "p90": bench.latency_ms.p90,
                           "p99": bench.latency_ms.p99, "runs": bench.latency_ms.runs}
            if bench else None,
            "peak_memory_mb": bench.memory.peak_rss_mb if bench else None,
            "backend_used": asdict(bench.backend) if bench else None,
            "parity": ev.parity if ev else None, "steps": self.steps,
            "on_pareto_front": self.on_front, "seconds": self.seconds,
        }


def _format(c: Candidate) -> Optional[str]:
    try:
        return c.recipe.format
    except ConfigError:
        return None


def misses(verdict: Verdict) -> str:
    """``latency p50 12.3 ms > 10 ms (+2.3 ms, +23%)`` for every failed check."""
    parts = []
    for c in verdict.failed:
        if c.measured is None:
            parts.append(f"{c.name} (not measured)")
            continue
        over = c.margin or 0.0
        detail = f" {c.detail}" if c.name in ("latency", *FIDELITY_CHECKS) and c.detail else ""
        sign = "-" if c.higher_is_better else "+"
        parts.append(f"{c.name}{detail} {c.measured:.4g} {c.unit} {c.relation} {c.limit:g} "
                     f"{c.unit} ({sign}{over:.3g} {c.unit}, {sign}{100 * over / c.limit:.0f}%)")
    return "; ".join(parts)


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
    if primary.evaluation.fidelity.metric == "estimated_drop" and figures.get("estimated_drop_upper"):
        noise = float(figures["estimated_drop_upper"]) - float(figures["estimated_drop"])
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

    front = pareto_front([c for c in cands if c.measured], lambda c: (
        -c.metric("accuracy"), c.metric("latency", percentile), c.metric("memory"),
        c.metric("size")))
    for c in cands:
        c.on_front = any(c is f for f in front)


def select(cands: list[Candidate], prefer: str, percentile: str = "p50") -> Optional[Candidate]:
    """The best candidate inside every budget: least ``prefer``, then the other two."""
    fits = [c for c in cands if c.fits]
    if not fits:
        return None
    order = PREFER[prefer]
    return min(fits, key=lambda c: tuple(c.metric(m, percentile) for m in order))



"""One candidate as JSON: the ``edgeship.candidate/1`` record that summary.json lists under
``candidates`` and report.html is drawn from (``edgeship.reporting`` reads these very dicts),
and the details the record has no field for (summary.json's ``details``).

summary.json also names its own Pareto front (``pareto_front``: candidate names, the 4-D front
over accuracy x latency x memory x size that ``select.mark_front`` marked), so a report marks
the front the JSON states instead of recomputing one.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Optional

from edgeship.compression.candidate import Candidate
from edgeship.report_data import CANDIDATE_SCHEMA  # the report reads what this writes


def candidate_record(c: Candidate) -> dict[str, Any]:
    """The ``edgeship.candidate/1`` object (its keys are what ``edgeship.reporting`` reads)."""
    ev = c.evaluation
    return {
        "schema": CANDIDATE_SCHEMA, "name": c.name,
        "model": c.path.name if c.path else None,  # only the pick's file is kept
        "recipe": c.recipe.labels(),
        "accuracy": ev.accuracy if ev else None,
        "baseline_accuracy": ev.baseline if ev else None,
        "accuracy_drop": ev.drop if ev else None,
        "accuracy_metric": ev.metric if ev else None,
        "fidelity": fidelity_record(c),
        "timings": c.timings(),
        "benchmark": c.benchmark.to_dict() if c.benchmark else None,
        "verdict": c.verdict.to_dict() if c.verdict else None,
        "error": c.error or (f"skipped: {c.skipped}" if c.skipped else None),
    }


def fidelity_record(c: Candidate) -> Optional[dict[str, Any]]:
    """The judge, the metric that decided, its value and tolerance, every figure."""
    if c.evaluation is None:
        return None
    f = c.evaluation.fidelity
    check = c.fidelity_check()
    return {"judge": f.judge, "task": f.task, "metric": f.metric, "label": f.label,
            "value": f.value, "unit": f.unit, "estimated": f.estimated,
            "tolerance": check.limit if check else None,
            "ok": check.ok if check else None,
            "decided_by": f"{check.name}: {f.label}" if check else None,
            "reason": f.reason, "samples": f.samples, "figures": f.figures}


def candidate_details(c: Candidate) -> dict[str, Any]:
    """What the candidate record has no field for: recipe, what the planner knew, cost,
    parity, timings."""
    ev, bench, planned = c.evaluation, c.benchmark, c.planned
    return {
        "recipe": c.recipe.to_dict(), "status": c.status(), "format": planned.format,
        "backend": planned.runs_on, "precision_hint": c.recipe.precision,
        "planned": planned.to_dict(),
        "macs": c.macs, "flops": 2 * c.macs if c.macs is not None else None,
        "size_bytes": bench.model.size_bytes if bench else None,
        "latency_ms": {"p50": bench.latency_ms.p50, "p90": bench.latency_ms.p90,
                       "p99": bench.latency_ms.p99, "runs": bench.latency_ms.runs}
        if bench else None,
        "peak_memory_mb": bench.memory.peak_rss_mb if bench else None,
        "backend_used": asdict(bench.backend) if bench else None,
        "parity": ev.parity if ev else None, "steps": c.steps,
        "on_pareto_front": c.on_front, "seconds": c.seconds,
    }


__all__ = ["CANDIDATE_SCHEMA", "candidate_details", "candidate_record", "fidelity_record"]

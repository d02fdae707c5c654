"""The compress output: summary.json (``build_summary``: the candidate records of
``edgeship.compression.record``, the Pareto front the search marked, the pick and why) and the
output directory (``write_output``: the pick and its manifest, every candidate's benchmark JSON,
report.html drawn from that same summary), staged and renamed into place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeship.compression.original import Original
from edgeship.compression.record import candidate_details, candidate_record
from edgeship.compression.result import CompressResult
from edgeship.compression.select import FRONT_OBJECTIVES


def build_summary(result: CompressResult) -> dict[str, Any]:
    """summary.json: what report.html is drawn from, and everything a script needs."""
    from edgeship.outdir import SUMMARY_SCHEMA

    b = result.budget
    return {
        "schema": SUMMARY_SCHEMA, "device": result.device,
        "budget": {"max_latency_ms": b.max_latency_ms, "max_memory_mb": b.max_memory_mb,
                   "max_size_mb": b.max_size_mb, "max_accuracy_drop": b.max_accuracy_drop,
                   "min_snr_db": b.min_snr_db, "max_rel_error": b.max_rel_error,
                   "min_cosine": b.min_cosine, "percentile": b.percentile},
        "fidelity_judge": result.original.get("fidelity_judge"),
        "prefer": result.prefer,
        "pick": result.pick.name if result.pick else None,
        "pick_reason": (f"fits every budget ({_fidelity_terms(result)}); least {result.prefer} "
                        f"among the {sum(c.fits for c in result.candidates)} that fit")
        if result.pick
        else result.no_fit_message(),
        "measured_on": result.measured_on, "original": result.original, "data": result.data,
        "candidates": [candidate_record(c) for c in result.candidates],
        "details": {c.name: candidate_details(c) for c in result.candidates},
        # the front this search marked (select.mark_front), for the report to draw as it is
        "pareto_front": [c.name for c in result.front],
        "pareto_objectives": list(FRONT_OBJECTIVES),
        "original_candidate": result.as_given.name if result.as_given else None,
        "not_planned": [{"name": n, "reason": r} for n, r in result.skipped],
        "wall_seconds": result.wall_seconds,
    }


def _fidelity_terms(result: CompressResult) -> str:
    check = result.pick.fidelity_check() if result.pick else None
    if check is None:
        return "no fidelity budget"
    return f"fidelity: {check.detail} {check.measured:.3g} {check.unit} " \
        f"{'>=' if check.higher_is_better else '<='} {check.limit:g} {check.unit}"


def write_output(result: CompressResult, original: Original, path: Path, force: bool) -> Path:
    """The output directory, staged and renamed into place (see ``edgeship.outdir``)."""
    import json

    from edgeship.core.artifact import copy_model
    from edgeship.outdir import SUMMARY, OutputDir, disk_error
    from edgeship.reporting import render_report

    summary = result.summary
    try:
        with OutputDir(path, force) as out:
            assert out.staging is not None
            for c in result.candidates:
                if c.benchmark is not None:
                    out.write(f"candidates/{c.name}/benchmark.json", c.benchmark.to_json(indent=2))
            if result.pick is not None and result.pick.path is not None:
                copies = copy_model(result.pick.path, out.staging, original.stem)
                out.files += [f.name for f in copies]
                summary["artifact"] = copies[0].name
            out.write("report.html", render_report(
                [summary], title=f"edgeship compress: {original.stem} for {result.device}"))
            summary["files"] = sorted([*out.files, SUMMARY])
            out.write(SUMMARY, json.dumps(summary, indent=2))
            return out.commit()
    except OSError as exc:
        raise disk_error(exc, path) from None

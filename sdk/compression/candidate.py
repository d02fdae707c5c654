"""A compress candidate: what the planner knew when it planned it (``Planned``), and what the
search found when it built, judged and measured it (``Candidate``).

The planner's knowledge travels with the candidate, so no later phase re-derives a fact from the
recipe's steps or, worse, from its name: the precision class decides the parity tolerance and
which engine the structural candidates go to; the engine says where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from edgeship.budget import Check, Verdict
from edgeship.compression.judge import Evaluation
from edgeship.core.errors import ConfigError
from edgeship.recipe import DistillStep, ExportStep, PruneStep, QuantizeStep, Recipe
from edgeship.runtime.bench import BenchmarkResult

FIDELITY_CHECKS = ("accuracy_drop", "snr", "rel_error", "cosine")


def tolerance(precision: str, structural: bool) -> tuple[str, bool]:
    """The parity tolerance for a precision class, and whether it gates: a candidate meant to
    compute what the original computes (fp32, fp16) must match it within the converters'
    tolerance; int8, bf16 (8 mantissa bits: EfficientNet-Lite0's logits move by 0.5) and
    pruned/distilled models are judged by their accuracy instead (the parity figures are still
    recorded)."""
    if structural:
        return "fp32", False
    if precision == "int8":
        return "int8", False
    if precision == "bf16":
        return "fp16", False
    return ("fp16", True) if precision == "fp16" else ("fp32", True)


@dataclass(frozen=True)
class Planned:
    """One candidate as planned: its recipe and what the planner knew about it.

    ``precision``: the precision class it computes in (fp32 | bf16 | fp16 | int8);
    ``tolerance``/``gated``: its parity tolerance and whether a mismatch fails it;
    ``engine``: the planner's engine tag (None for a user's recipe); ``unit``: the compute unit;
    ``structural``: pruned and distilled; ``as_given``: the original model as it is, in its own
    format (what every speed-up is measured against); ``why``: why it was planned."""

    recipe: Recipe
    precision: str
    tolerance: str
    gated: bool
    format: Optional[str]
    backend: str  # the backend's name (``openvino``)
    runs_on: str  # name[:device] as the profile spells it (``openvino:GPU``)
    unit: str = "cpu"
    engine: Optional[str] = None
    structural: bool = False
    as_given: bool = False
    why: str = ""

    @property
    def name(self) -> str:
        return self.recipe.name

    @classmethod
    def of(cls, recipe: Recipe, precision: str, *, unit: str = "cpu",
           engine: Optional[str] = None, structural: bool = False, as_given: bool = False,
           why: str = "") -> Planned:
        tol, gated = tolerance(precision, structural)
        try:
            fmt: Optional[str] = recipe.format
            runs_on = recipe.runs_on
        except ConfigError:  # a recipe that never makes a model file: it fails when it is built
            fmt, runs_on = None, recipe.backend or ""
        return cls(recipe, precision, tol, gated, fmt, runs_on.partition(":")[0], runs_on, unit,
                   engine, structural, as_given, why or recipe.note)

    @classmethod
    def from_recipe(cls, recipe: Recipe, source_format: Optional[str] = None) -> Planned:
        """A user's recipe (``--recipes``), which no planner saw: its facts are its steps
        (``source_format``: the original's, to tell whether the recipe is the model as given)."""
        from edgeship.runtime.formats import FORMATS

        structural = any(isinstance(s, (PruneStep, DistillStep)) for s in recipe.steps)
        modes = {s.mode for s in recipe.steps if isinstance(s, QuantizeStep)}
        halves = "fp16" in modes or recipe.precision == "fp16" or any(
            isinstance(s, ExportStep) and s.precision == "fp16" for s in recipe.steps)
        precision = ("int8" if modes & {"static", "dynamic"} else "bf16"
                     if recipe.precision == "bf16" else "fp16" if halves else "fp32")
        given = "onnx" if source_format == "torch" else source_format
        planned = cls.of(recipe, precision, structural=structural, why=recipe.note or "--recipes")
        as_given = (given in FORMATS and precision == "fp32" and not structural
                    and recipe.precision in (None, "fp32")
                    and all(isinstance(s, ExportStep) and s.to == given for s in recipe.steps)
                    and planned.runs_on == FORMATS[given].backends[0])
        return replace(planned, as_given=True) if as_given else planned

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "tolerance": self.tolerance, "gated": self.gated,
                "format": self.format, "backend": self.backend, "runs_on": self.runs_on,
                "unit": self.unit, "engine": self.engine, "structural": self.structural,
                "as_given": self.as_given, "why": self.why}


@dataclass
class Candidate:
    """One planned candidate's outcome: built, judged and measured, or why not."""

    planned: Planned
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
    def recipe(self) -> Recipe:
        return self.planned.recipe

    @property
    def name(self) -> str:
        return self.planned.recipe.name

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

    def fidelity_check(self) -> Optional[Check]:
        return next((c for c in (self.verdict.checks if self.verdict else [])
                     if c.name in FIDELITY_CHECKS), None)

    def timings(self) -> dict[str, Any]:
        return {"build_s": self.seconds.get("build"), "evaluate_s": self.seconds.get("evaluate"),
                "measure_s": self.seconds.get("benchmark"), "cached_build": self.cached}



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


__all__ = ["FIDELITY_CHECKS", "Candidate", "Planned", "misses", "tolerance"]

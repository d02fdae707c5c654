"""What a report is drawn from: its rows, read from benchmark, candidate and summary JSON.

The shapes of the inputs are in ``edgeship.reporting``'s docstring.  Every check is a
``budget.Check`` (the one verdict form), and the Pareto front is the one a compress summary
lists (``pareto_front``), or, for loose files, the same four-way rule over their rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from edgeship.budget import Budget, Check
from edgeship.core.errors import ConfigError
from edgeship.pareto import pareto_front
from edgeship.runtime.results import SCHEMA as BENCH_SCHEMA
from edgeship.runtime.results import BenchmarkResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CANDIDATE_SCHEMA = "edgeship.candidate/1"
BUDGET_ORDER = ("latency", "memory", "size", "accuracy_drop", "snr", "rel_error", "cosine")
ResultLike = Union[str, Path, dict[str, Any], BenchmarkResult]


class FidelityRecord(BaseModel):
    """How a candidate's fidelity was judged (compress writes more: figures, samples, reason)."""

    model_config = ConfigDict(extra="allow")

    judge: str = ""
    metric: str = ""
    label: Optional[str] = None
    value: Optional[float] = None
    unit: Optional[str] = None
    tolerance: Optional[float] = None

    @property
    def higher_is_better(self) -> bool:
        return self.metric in ("snr_db", "cosine")

    @property
    def name(self) -> str:
        return self.label or self.metric or "fidelity"


class Timings(BaseModel):
    """Seconds a candidate took to build (or came from the cache), judge and measure."""

    model_config = ConfigDict(extra="allow")

    build_s: Optional[float] = None
    evaluate_s: Optional[float] = None
    measure_s: Optional[float] = None
    cached_build: bool = False


class Candidate(BaseModel):
    """One candidate of a search, as the planner writes it (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["edgeship.candidate/1"] = Field("edgeship.candidate/1", alias="schema")
    name: str
    model: Optional[str] = None
    recipe: list[Union[str, dict[str, Any]]] = Field(default_factory=list)
    accuracy: Optional[float] = None
    baseline_accuracy: Optional[float] = None
    accuracy_drop: Optional[float] = None
    accuracy_metric: Optional[str] = None
    fidelity: Optional[FidelityRecord] = None
    timings: Optional[Timings] = None
    benchmark: Optional[dict[str, Any]] = None
    verdict: Optional[dict[str, Any]] = None
    error: Optional[str] = None


@dataclass
class Row:
    """A line of the report: a candidate or a bare measurement."""

    name: str
    source: str
    result: Optional[BenchmarkResult] = None
    accuracy: Optional[float] = None
    baseline_accuracy: Optional[float] = None
    accuracy_drop: Optional[float] = None
    accuracy_metric: Optional[str] = None
    recipe: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: Optional[str] = None
    on_front: bool = False
    skipped: Optional[str] = None  # not run on purpose (a fallback that was not needed)
    fidelity: Optional[FidelityRecord] = None
    timings: Optional[Timings] = None

    @property
    def quality(self) -> Optional[float]:
        """Higher is better: the accuracy when one was measured, else the fidelity judge's
        figure (minus an estimated drop, or an SNR / cosine, or minus a relative error)."""
        if self.accuracy is not None:
            return self.accuracy
        f = self.fidelity
        if f is None or f.value is None:
            return None
        return f.value if f.higher_is_better else -f.value

    @property
    def ok(self) -> Optional[bool]:
        if self.error or self.skipped:
            return False
        return all(c.ok for c in self.checks) if self.checks else None


@dataclass
class ReportData:
    rows: list[Row]
    budget: Optional[Budget] = None
    pick: Optional[str] = None
    device: Optional[str] = None
    original: Optional[str] = None  # the row that is the original model (a compress summary)
    front: Optional[set[str]] = None  # the Pareto front a compress summary lists, by name

    def limit(self, name: str) -> Optional[float]:
        """The budget's limit for the check ``name``, else the first row's check of it."""
        return next((c.limit for r in self.rows for c in r.checks if c.name == name), None)


# -- loading -------------------------------------------------------------------------------------
def load_results(results: Sequence[ResultLike], budget: Optional[Budget] = None) -> ReportData:
    if not results:
        raise ConfigError("no results to report", "pass one or more RESULT.json files")
    data = ReportData(rows=[], budget=budget)
    for item in results:
        source, payload = _read(item)
        if isinstance(payload, BenchmarkResult):
            data.rows.append(_bench_row(payload.to_dict(), source))
        elif isinstance(payload, dict) and isinstance(payload.get("candidates"), list):
            _summary(payload, source, data)
        elif isinstance(payload, dict) and payload.get("schema") == CANDIDATE_SCHEMA:
            data.rows.append(_candidate_row(payload, source))
        elif isinstance(payload, dict) and payload.get("schema") == BENCH_SCHEMA:
            data.rows.append(_bench_row(payload, source))
        else:
            raise ConfigError(f"'{source}' is not an edgeship result",
                              f"pass {BENCH_SCHEMA} or {CANDIDATE_SCHEMA} JSON, or a compress summary")
    _unique_names(data.rows)
    for row in data.rows:  # a passed budget re-checks all; a summary's fills rows without verdicts
        if row.result is not None and (budget is not None or (data.budget and not row.checks)):
            verdict = (budget or data.budget).evaluate(row.result, row.accuracy_drop)  # type: ignore
            row.checks = verdict.checks
    return data


def _read(item: ResultLike) -> tuple[str, Any]:
    if isinstance(item, BenchmarkResult):
        return item.model.name or "result", item
    if isinstance(item, dict):
        return str(item.get("name") or item.get("model", {}).get("name") or "result"), item
    from edgeship.runtime.textfiles import read_json

    path = Path(item)
    return path.name, read_json(path, f"result file '{path}'",
                                "pass the JSON written by edgeship bench -o or compress")


def _bench_row(payload: dict[str, Any], source: str) -> Row:
    from edgeship.result_json import read_bench_json

    if not isinstance(payload, dict):
        raise ConfigError(f"'{source}' benchmark is not a JSON object", "re-run edgeship bench")
    if "error" in payload:
        err = payload["error"] or {}
        message = err.get("message", err) if isinstance(err, dict) else err
        return Row(name=source, source=source, error=" ".join(str(message).split())[:300])
    result, verdict = read_bench_json(payload, source, "re-run edgeship bench to write a fresh one")
    return Row(name=f"{result.model.name} · {result.backend.backend}", source=source, result=result,
               checks=verdict.checks if verdict else [])


def _candidate_row(payload: dict[str, Any], source: str) -> Row:
    try:
        cand = Candidate.model_validate(payload)
    except ValidationError as exc:
        from edgeship.result_json import errors_line

        raise ConfigError(f"'{source}' is not a valid {CANDIDATE_SCHEMA}: {errors_line(exc)}",
                          "see edgeship.reporting's docstring for the shape") from None
    row = _bench_row(cand.benchmark, source) if cand.benchmark else Row(name=cand.name, source=source)
    row.name = cand.name
    row.accuracy, row.baseline_accuracy = cand.accuracy, cand.baseline_accuracy
    row.accuracy_metric = cand.accuracy_metric
    row.accuracy_drop = cand.accuracy_drop
    if row.accuracy_drop is None and cand.accuracy is not None and cand.baseline_accuracy is not None:
        row.accuracy_drop = cand.baseline_accuracy - cand.accuracy
    row.fidelity, row.timings = cand.fidelity, cand.timings
    row.recipe = [r if isinstance(r, str) else str(r.get("step", r)) for r in cand.recipe]
    if cand.verdict:
        from edgeship.result_json import read_verdict

        row.checks = read_verdict(cand.verdict, source, "re-run compress").checks
    error = cand.error or row.error
    if error and error.startswith("skipped: "):  # compress writes skipped candidates so
        row.skipped = error[len("skipped: "):]
    else:
        row.error = error
    return row


def _summary(payload: dict[str, Any], source: str, data: ReportData) -> None:
    for i, cand in enumerate(payload["candidates"]):
        if not isinstance(cand, dict):
            raise ConfigError(f"'{source}' candidate {i} is not an object", "re-run compress")
        data.rows.append(_candidate_row({"schema": CANDIDATE_SCHEMA, **cand}, f"{source}#{i}"))
    if data.budget is None and payload.get("budget"):
        budget = payload["budget"]
        try:
            data.budget = Budget(**budget)
        except TypeError:  # not a mapping, or keys Budget does not take
            raise ConfigError(f"'{source}' budget {str(budget)[:80]} is not a budget",
                              "re-run compress to write a fresh summary") from None
    pick, device = payload.get("pick"), payload.get("device")
    data.pick = pick if isinstance(pick, str) and pick else data.pick
    data.device = device if isinstance(device, str) and device else data.device
    original = payload.get("original")
    if isinstance(original, dict) and isinstance(original.get("format"), str) and original["format"]:
        data.original = original_candidate_name(original["format"])
    front = payload.get("pareto_front")
    if isinstance(front, list) and all(isinstance(n, str) for n in front):
        data.front = (data.front or set()) | set(front)


def _unique_names(rows: list[Row]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        if row.name in seen:
            seen[row.name] += 1
            row.name = f"{row.name} #{seen[row.name]}"
        else:
            seen[row.name] = 1


def percentile_of(data: ReportData) -> str:
    """The latency percentile the budgets compare: the budget's, else the checks' own."""
    if data.budget is not None:
        return data.budget.percentile
    for row in data.rows:
        for c in row.checks:
            if c.name == "latency" and c.detail in ("p50", "p90", "p99"):
                return c.detail
    return "p50"


def mark_front(data: ReportData, percentile: str = "p50") -> None:
    """Flag the rows on the Pareto front: the one a compress summary lists; for loose files,
    compress's own rule over them (accuracy higher; latency, memory and size lower)."""
    if data.front is not None:
        for r in data.rows:
            r.on_front = r.name in data.front
        return
    measured = [r for r in data.rows if r.result is not None and r.quality is not None
                and not r.error and not r.skipped]

    def objectives(r: Row) -> tuple[float, ...]:
        res = r.result
        assert res is not None and r.quality is not None
        return (-r.quality, res.latency(percentile), res.memory.peak_rss_mb or 0.0,
                float(res.model.size_bytes))

    front = pareto_front(measured, objectives)
    for r in data.rows:
        r.on_front = any(r is f for f in front)


def original_candidate_name(source_format: Optional[str]) -> str:
    """The candidate that is the original model as it is (a torch model: exported to ONNX as it
    is): what every speed-up is measured against."""
    return f"fp32-{'onnx' if source_format in (None, 'torch') else source_format}"

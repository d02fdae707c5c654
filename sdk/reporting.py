"""``edgeship report``: one self-contained HTML page from benchmark and candidate JSON files.

The page has the candidate table (a pass/over mark per budget, drawn in CSS), the
accuracy-vs-latency plot with the accuracy-latency Pareto front and budget lines, latency
distributions, memory and size bars, and the conditions of every measurement (device,
backend, provider, precision, threads, thermal state).  Plots are inline SVG; there is no
script and nothing is fetched.

Inputs (any mix, one JSON document per file):

- ``edgeship.benchmark/1``: what ``edgeship bench --json`` / ``-o`` writes (a ``verdict`` key
  added by the CLI is used when no budget is passed), or the agent's error object.
- ``edgeship.candidate/1``: one candidate of a search (what ``compress`` writes)::

    {"schema": "edgeship.candidate/1",
     "name": "int8-static-onnx",             # unique within a report
     "model": "int8/model.onnx",             # path of the artifact (informational)
     "recipe": ["quantize(int8, static, per-channel)", "export(onnx)"],
     "accuracy": 91.4,                       # percent on the user's data, or null
     "baseline_accuracy": 91.6,              # the original model's, same data and metric
     "accuracy_drop": 0.2,                   # points: baseline_accuracy - accuracy
     "accuracy_metric": "top1",              # "top1" with labels, "top1_agreement" without
     "benchmark": {...edgeship.benchmark/1...} | null,
     "verdict": {"ok": bool, "checks": [{"name", "limit", "measured", "unit", "detail", "ok"}]} | null,
     "error": null | "why the candidate failed (unsupported op, parity failure, ...)"}

- a summary: ``{"candidates": [candidate, ...], "budget": {Budget fields} | null,
  "pick": "name" | null, "device": "raspberry-pi-5" | null}`` (``compress``'s summary.json).

Example:
    >>> import edgeship
    >>> edgeship.report(["fp32.json", "int8.json"], "report.html",
    ...                 budget=edgeship.Budget(max_latency_ms=20))        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Literal, Optional, Union

from edgeship.budget import Budget
from edgeship.core.errors import ConfigError
from edgeship.report_plots import Line, Point, bars, fmt, histograms, scatter
from edgeship.report_style import STYLE
from edgeship.runtime.bench import SCHEMA as BENCH_SCHEMA
from edgeship.runtime.bench import BenchmarkResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CANDIDATE_SCHEMA = "edgeship.candidate/1"
BUDGET_ORDER = ("latency", "memory", "size", "accuracy_drop", "snr", "rel_error", "cosine")
ResultLike = Union[str, Path, dict[str, Any], BenchmarkResult]


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
    fidelity: Optional[dict[str, Any]] = None  # judge, metric, value, tolerance, decided_by...
    timings: Optional[dict[str, Any]] = None  # build_s, evaluate_s, measure_s, cached_build
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
    checks: list[dict[str, Any]] = field(default_factory=list)
    error: Optional[str] = None
    on_front: bool = False
    skipped: Optional[str] = None  # not run on purpose (a fallback that was not needed)
    fidelity: Optional[dict[str, Any]] = None
    timings: Optional[dict[str, Any]] = None

    @property
    def quality(self) -> Optional[float]:
        """Higher is better: the accuracy when one was measured, else the fidelity judge's
        figure (minus an estimated drop, or an SNR / cosine, or minus a relative error)."""
        if self.accuracy is not None:
            return self.accuracy
        f = self.fidelity or {}
        if f.get("value") is None:
            return None
        return float(f["value"]) if f["metric"] in ("snr_db", "cosine") else -float(f["value"])

    @property
    def ok(self) -> Optional[bool]:
        if self.error or self.skipped:
            return False
        return all(c["ok"] for c in self.checks) if self.checks else None


@dataclass
class ReportData:
    rows: list[Row]
    budget: Optional[Budget] = None
    pick: Optional[str] = None
    device: Optional[str] = None
    original: Optional[str] = None  # the row that is the original model (a compress summary)


def report(
    results: Sequence[ResultLike],
    output: Union[str, Path] = "report.html",
    *,
    budget: Optional[Budget] = None,
    title: Optional[str] = None,
) -> Path:
    """Render benchmark/candidate results (paths, dicts or BenchmarkResult) to one HTML file.

    With ``budget`` every row is checked against it; otherwise each result's own ``verdict``
    (and a summary's ``budget``) decide the marks.  The file is written atomically.
    """
    from edgeship.core.io import write_atomic

    return write_atomic(output, render_report(results, budget=budget, title=title))


def render_report(results: Sequence[ResultLike], *, budget: Optional[Budget] = None,
                  title: Optional[str] = None) -> str:
    """The report's HTML as a string (see ``report``)."""
    data = load_results(results, budget)
    mark_front(data.rows, _percentile(data))
    return _page(data, title or "edgeship report")


def original_candidate_name(source_format: Optional[str]) -> str:
    """The candidate that is the original model as it is (a torch model: exported to ONNX as it
    is): what every speed-up is measured against."""
    return f"fp32-{'onnx' if source_format in (None, 'torch') else source_format}"


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
            row.checks = [_check_dict(c) for c in verdict.checks]
    return data


def _read(item: ResultLike) -> tuple[str, Any]:
    if isinstance(item, BenchmarkResult):
        return item.model.get("name", "result"), item
    if isinstance(item, dict):
        return str(item.get("name") or item.get("model", {}).get("name") or "result"), item
    from edgeship.runtime.textfiles import read_json

    path = Path(item)
    return path.name, read_json(path, f"result file '{path}'",
                                "pass the JSON written by edgeship bench -o or compress")


def _bench_row(payload: dict[str, Any], source: str) -> Row:
    from edgeship.result_json import check_bench_json

    if not isinstance(payload, dict):
        raise ConfigError(f"'{source}' benchmark is not a JSON object", "re-run edgeship bench")
    if "error" in payload:
        err = payload["error"] or {}
        message = err.get("message", err) if isinstance(err, dict) else err
        return Row(name=source, source=source, error=" ".join(str(message).split())[:300])
    check_bench_json(payload, source, "re-run edgeship bench to write a fresh one")
    payload = dict(payload)
    verdict = payload.pop("verdict", None) or {}
    try:
        result = BenchmarkResult.from_dict(payload)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"'{source}' is not a valid {BENCH_SCHEMA} result: {exc}",
                          "re-run edgeship bench to write a fresh one") from None
    name = f"{result.model.get('name')} · {result.backend.get('backend')}"
    return Row(name=name, source=source, result=result, checks=list(verdict.get("checks", [])))


def _candidate_row(payload: dict[str, Any], source: str) -> Row:
    try:
        cand = Candidate.model_validate(payload)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise ConfigError(f"'{source}' is not a valid {CANDIDATE_SCHEMA}: {detail}",
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
        row.checks = list(cand.verdict.get("checks", []))
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


def _unique_names(rows: list[Row]) -> None:
    seen: dict[str, int] = {}
    for row in rows:
        if row.name in seen:
            seen[row.name] += 1
            row.name = f"{row.name} #{seen[row.name]}"
        else:
            seen[row.name] = 1


def _check_dict(c: Any) -> dict[str, Any]:
    return {"name": c.name, "limit": c.limit, "measured": c.measured, "unit": c.unit,
            "detail": c.detail, "ok": c.ok}


def _percentile(data: ReportData) -> str:
    if data.budget is not None:
        return data.budget.percentile
    for row in data.rows:
        for c in row.checks:
            if c["name"] == "latency" and c.get("detail") in ("p50", "p90", "p99"):
                return str(c["detail"])
    return "p50"


def mark_front(rows: list[Row], percentile: str = "p50") -> None:
    """Flag rows no other row beats on both accuracy (higher) and latency (lower)."""
    measured = [r for r in rows if r.result is not None and r.quality is not None and not r.error]
    for r in measured:
        lat, acc = r.result.latency(percentile), r.quality  # type: ignore[union-attr]
        r.on_front = not any(
            o is not r and o.result.latency(percentile) <= lat and o.quality >= acc  # type: ignore
            and (o.result.latency(percentile) < lat or o.quality > acc)  # type: ignore
            for o in measured
        )


# -- the page ------------------------------------------------------------------------------------


def badge(kind: str, text: str) -> str:
    """A status mark drawn with CSS (no emoji font needed): ok, bad, failed, skipped, pick."""
    return f'<span class="badge {kind}">{escape(text)}</span>'


def _td(value: Optional[float], key: str, row: int, unit: str = "") -> str:
    if value is None:
        return f'<td class="num muted" data-row="{row}" data-key="{key}">–</td>'
    return (f'<td class="num" data-row="{row}" data-key="{key}" data-value="{value!r}">'
            f'{fmt(value)}{unit}</td>')


def _check_cell(check: Optional[dict[str, Any]], row: int) -> str:
    if check is None:
        return '<td class="muted">–</td>'
    measured = check.get("measured")  # the limit is in the column's header
    text = (f"{badge('ok', 'ok') if check['ok'] else badge('bad', 'over')}{fmt(measured)}"
            if measured is not None else f"{badge('bad', 'n/a')}not measured")
    return (f'<td class="{"ok" if check["ok"] else "bad"}" data-row="{row}" '
            f'data-key="budget_{escape(check["name"])}" '
            f'data-ok="{str(bool(check["ok"])).lower()}">{text}</td>')


MEASURE_KEYS = ("size_mb", "latency", "latency_p99_ms", "peak_rss_mb")


def _status(r: Row, pick: Optional[str]) -> tuple[str, str, str]:
    """(row class, status cell class, status cell HTML) of a row."""
    front = badge("front", "front") if r.on_front else ""
    if r.skipped:
        return "skipped", "", badge("skipped", "skipped")
    if r.error:
        return "failed", "", badge("failed", "failed")
    if pick == r.name:
        return "pick", "ok", badge("pick", "pick") + badge("ok", "fits") + front
    mark = {True: badge("ok", "fits"), False: badge("bad", "misses a budget"),
            None: '<span class="muted">no budget</span>'}[r.ok]
    return "", {True: "ok", False: "bad", None: ""}[r.ok], mark + front


def _candidate_table(data: ReportData, percentile: str) -> str:
    names = [n for n in BUDGET_ORDER if any(c["name"] == n for r in data.rows for c in r.checks)]
    head = ["candidate", "format", "backend · device", "precision", "size MB", f"latency {percentile} ms",
            "p99 ms", "peak memory MB", "accuracy %", "drop pt", "fidelity (judge)",
            "build / evaluate / measure s"]
    limits = {c["name"]: c for r in data.rows for c in r.checks}
    head += [f"{n.replace('_', ' ')} ≤ {fmt(limits[n]['limit'])} {limits[n]['unit']}" for n in names]
    head += ["status"]
    lines = ["<div class='scroll'><table id='candidates'><thead><tr>"
             + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, r in enumerate(data.rows):
        res = r.result
        row_cls, status_cls, status = _status(r, data.pick)
        cells = [f'<td data-row="{i}" data-key="name">{escape(r.name)}'
                 + (f'<br><span class="muted">{escape(" → ".join(r.recipe))}</span>' if r.recipe else "")
                 + "</td>"]
        if res is None and (r.error or r.skipped):  # the reason spans the measurement columns
            cells.append(f'<td class="reason" colspan="{len(head) - 2}" data-row="{i}" '
                         f'data-key="reason">{escape(r.error or r.skipped or "")}</td>')
            cells.append(f'<td data-row="{i}" data-key="status">{status}</td>')
            lines.append(f'<tr class="{row_cls}">' + "".join(cells) + "</tr>")
            continue
        if res is not None:
            be = res.backend
            cells += [f"<td>{escape(str(res.model.get('format')))}</td>",
                      f"<td>{escape(str(be.get('backend')))} "
                      f"{escape(str(be.get('version')).split('-')[0])} · "  # the full one: below
                      f"{escape(str(be.get('device')))}</td>",
                      f"<td>{escape(str(be.get('precision') or 'as stored'))}</td>",
                      _td(res.model["size_bytes"] / 1e6, "size_mb", i),
                      _td(res.latency(percentile), f"latency_{percentile}_ms", i),
                      _td(res.latency_ms.p99, "latency_p99_ms", i),
                      _td(res.memory.get("peak_rss_mb"), "peak_rss_mb", i)]
        else:  # the same cells, empty: a row always has the header's cell count
            cells += ['<td class="muted">–</td>'] * 3 + [_td(None, k, i) for k in MEASURE_KEYS]
        cells += [_td(r.accuracy, "accuracy", i), _td(r.accuracy_drop, "accuracy_drop", i),
                  _fidelity_td(r.fidelity), _timings_td(r.timings)]
        by_name = {c["name"]: c for c in r.checks}
        cells += [_check_cell(by_name.get(n), i) for n in names]
        cells.append(f'<td class="{status_cls}" data-row="{i}" data-key="status">{status}</td>')
        lines.append(f'<tr class="{row_cls}">' + "".join(cells) + "</tr>")
    return "".join(lines) + "</tbody></table></div>"


def _fidelity_td(f: Optional[dict[str, Any]]) -> str:
    """The metric that decided fidelity, its value and the judge, e.g. "estimated drop (no
    labels) 0.51 pt · unlabelled classification"."""
    if not f:
        return '<td class="muted">–</td>'
    value = f"{f['value']:.3g}{' ' + f['unit'] if f.get('unit') else ''}"
    tol = f" (budget {f['tolerance']:g})" if f.get("tolerance") is not None else ""
    return (f"<td>{escape(str(f.get('label', f['metric'])))} {escape(value)}{escape(tol)}"
            f'<br><span class="muted">{escape(str(f["judge"]))}</span></td>')


def _timings_td(t: Optional[dict[str, Any]]) -> str:
    if not t or t.get("build_s") is None:
        return '<td class="muted">–</td>'
    build = "cached" if t.get("cached_build") else f"{t['build_s']:.1f}"
    return f"<td>{build} / {t['evaluate_s']:.1f} / {t['measure_s']:.1f}</td>"


def _pareto_section(data: ReportData, percentile: str) -> str:
    rows = [r for r in data.rows if r.result is not None and r.quality is not None]
    if not rows:
        return ('<p class="muted">No accuracy in these results: the accuracy-latency plot needs '
                'candidates from <code>edgeship compress</code>.</p>')
    points = [Point(r.name, r.result.latency(percentile), r.quality, r.ok, r.on_front,  # type: ignore
                    pick=data.pick == r.name) for r in rows]
    lines = []
    b = data.budget
    limit = b.max_latency_ms if b else next(
        (c["limit"] for r in data.rows for c in r.checks if c["name"] == "latency"), None)
    if limit is not None:
        lines.append(Line("x", float(limit), f"latency budget {fmt(limit)} ms"))
    max_drop = b.max_accuracy_drop if b else next(
        (c["limit"] for r in data.rows for c in r.checks if c["name"] == "accuracy_drop"), None)
    baseline = next((r.baseline_accuracy for r in rows if r.baseline_accuracy is not None), None)
    if max_drop is not None and baseline is not None:
        lines.append(Line("y", baseline - max_drop, f"accuracy floor {fmt(baseline - max_drop)} %"))
    metric = next((r.accuracy_metric for r in rows if r.accuracy_metric), "accuracy")
    judged = next((r.fidelity for r in rows if r.accuracy is None and r.fidelity), None)
    if judged is not None:  # no accuracy measured: plot the judge's figure (higher is better)
        unit = f" ({judged['unit']})" if judged.get("unit") else ""
        sign = "" if judged["metric"] in ("snr_db", "cosine") else "− "
        if max_drop is not None and judged["metric"].endswith("drop"):
            lines.append(Line("y", -float(max_drop), f"budget −{fmt(max_drop)} pt"))
        return scatter(points, f"latency {percentile} (ms)",
                       f"{sign}{judged.get('label', judged['metric'])}{unit}", lines)
    return scatter(points, f"latency {percentile} (ms)", f"{metric} (%)", lines)


def _distribution_section(data: ReportData) -> str:
    series = [(r.name, r.result.samples_ms, {"p50": r.result.latency_ms.p50,
                                             "p99": r.result.latency_ms.p99})
              for r in data.rows if r.result is not None and r.result.samples_ms]
    if not series:
        return '<p class="muted">No per-run samples in these results.</p>'
    capped = [f"{escape(r.name)}: {len(r.result.samples_ms)} of {r.result.latency_ms.runs} runs"
              for r in data.rows if r.result is not None
              and 0 < len(r.result.samples_ms) < r.result.latency_ms.runs]
    note = (f'<p class="muted">Samples kept (evenly strided): {"; ".join(capped)}.</p>'
            if capped else "")
    return histograms(series, "ms") + note


def _memory_section(data: ReportData) -> str:
    measured = [r for r in data.rows if r.result is not None]
    if not measured:
        return ""
    b = data.budget
    mem = [(r.name, float(r.result.memory.get("peak_rss_mb") or 0),  # type: ignore[union-attr]
            r.result.memory.get("delta_mb")) for r in measured]  # type: ignore[union-attr]
    size = [(r.name, r.result.model["size_bytes"] / 1e6, None) for r in measured]  # type: ignore
    return (bars(mem, "MB", "peak memory (RSS); dark: over the pre-load baseline",
                 b.max_memory_mb if b else None)
            + bars(size, "MB", "model size", b.max_size_mb if b else None))


NOT_EXPOSED = "not exposed by this device"


def _conditions_table(data: ReportData) -> str:
    head = ["candidate", "target", "device / CPU", "OS · Python", "backend", "provider / device",
            "precision", "threads", "runs (warmup)", "input", "CPU governor · MHz before→after",
            "temperature °C before→after", "throttled", "measured at"]
    rows = []
    for i, r in enumerate(data.rows):
        res = r.result
        if res is None:
            continue
        host, be, cfg = res.host, res.backend, res.config
        target = res.target.get("name") or "local"
        if target == "local":
            target += " (host measurement)"
        freq = res.cpu_frequency
        therm = res.thermal
        cov = res.node_coverage or {}
        provider = str(be.get("device"))
        if cov.get("share_on_primary") is not None:
            provider += f" ({cov['share_on_primary']:.0%} of {cov.get('nodes')} nodes)"
        governor = (freq.get("before") or {}).get("governor")
        mhz = (_mhz(freq.get("before")), _mhz(freq.get("after")))
        temps = (_temp(therm.get("before")), _temp(therm.get("after")))
        rows.append([
            escape(r.name), escape(target),
            escape(f"{host.get('device_model') or host.get('cpu_model')} ({host.get('machine')}, "
                   f"{host.get('cpu_count')} cores)"),
            escape(f"{host.get('os')} · Python {host.get('python')}"),
            escape(f"{be.get('backend')} {be.get('version')} ({be.get('module')})"),
            escape(provider),
            escape(str(be.get("precision") or "backend default")),
            f'<span data-row="{i}" data-key="threads">'
            f'{escape(str(be.get("threads") or cfg.get("threads") or "backend default"))}</span>',
            f'<span data-row="{i}" data-key="runs">{res.latency_ms.runs}</span> '
            f'({cfg.get("warmup_runs")})',
            escape(", ".join(f"{x['name']} {x['shape']} {x.get('source', '')}" for x in res.inputs)),
            "" if governor is None and mhz == (None, None)
            else escape(f"{governor or '–'} · {mhz[0] or '–'}→{mhz[1] or '–'}"),
            "" if temps == (None, None) else escape(f"{temps[0] or '–'}→{temps[1] or '–'}"),
            {True: "yes", False: "no", None: ""}[therm.get("throttled")],
            escape(res.timestamp),
        ])
    # a column no measurement could fill says so once, instead of a column of question marks
    empty = [j for j in range(len(head)) if rows and all(row[j] == "" for row in rows)]
    keep = [j for j in range(len(head)) if j not in empty]
    lines = ["<div class='scroll'><table id='conditions'><thead><tr>"
             + "".join(f"<th>{escape(head[j])}</th>" for j in keep) + "</tr></thead><tbody>"]
    for row in rows:
        lines.append("<tr>" + "".join(
            f"<td>{row[j]}</td>" if row[j] else f'<td class="muted">{NOT_EXPOSED}</td>'
            for j in keep) + "</tr>")
    lines.append("</tbody></table></div>")
    if empty:
        lines.append(f'<p class="muted">{escape(", ".join(head[j] for j in empty))}: '
                     f"{NOT_EXPOSED} (no measurement had it).</p>")
    return "".join(lines)


def _mhz(freq: Optional[dict[str, Any]]) -> Optional[str]:
    return fmt(freq["mhz"]) if freq and freq.get("mhz") else None


def _temp(zones: Optional[dict[str, Any]]) -> Optional[str]:
    """The hottest thermal zone (sysinfo.thermal: {zone: {"celsius", "trip_celsius"}})."""
    temps = [z["celsius"] for z in (zones or {}).values()
             if isinstance(z, dict) and z.get("celsius") is not None]
    return fmt(max(temps)) if temps else None


def _versus_original(data: ReportData, percentile: str) -> str:
    """One line: the pick against the original (speed-up, size, accuracy drop)."""
    rows = {r.name: r for r in data.rows}
    pick, base = rows.get(data.pick or ""), rows.get(data.original or "")
    if pick is None or base is None or pick.result is None or base.result is None:
        return ""
    if pick is base:
        return (f'<p class="note">The pick is the original model itself ({escape(base.name)}): '
                "no compressed candidate beat it inside the budgets.</p>")
    before, after = base.result.latency(percentile), pick.result.latency(percentile)
    speed = (f"{before / after:.3g}× faster" if after <= before else f"{after / before:.3g}× slower")
    size = pick.result.model["size_bytes"] / base.result.model["size_bytes"]
    drop = "" if pick.accuracy_drop is None else f", accuracy drop {pick.accuracy_drop:+.2f} pt"
    return (f'<p class="note" id="versus-original">{badge("pick", "pick")}<b>{escape(pick.name)}</b>: '
            f"{speed} than the original ({escape(base.name)}, {percentile} {fmt(before)} → "
            f"{fmt(after)} ms), {size:.0%} of its size{drop}.</p>")


def _page(data: ReportData, title: str) -> str:
    from edgeship import __version__

    percentile = _percentile(data)
    hosts = {r.result.target.get("name") or "local" for r in data.rows if r.result is not None}
    note = ('<p class="note">Measured on this host (<code>local</code>), not on the device: '
            'latency and memory on the device will differ.</p>' if hosts == {"local"} else "")
    budget = data.budget
    budget_text = ", ".join(
        f"{name} ≤ {fmt(v)} {unit}"
        for name, v, unit in (("latency", budget.max_latency_ms, f"ms at {budget.percentile}"),
                              ("memory", budget.max_memory_mb, "MB"),
                              ("size", budget.max_size_mb, "MB"),
                              ("accuracy drop", budget.max_accuracy_drop, "pt"))
        if v is not None
    ) if budget and not budget.is_empty else "from each result"
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1><p class='muted'>{len(data.rows)} result(s)"
        + (f" for {escape(data.device)}" if data.device else "")
        + f" · budgets: {escape(budget_text)} · edgeship {__version__} · {stamp}</p>",
        note, _versus_original(data, percentile),
        "<h2>Candidates</h2>", _candidate_table(data, percentile),
        "<h2>Accuracy vs latency</h2>", _pareto_section(data, percentile),
        "<h2>Latency distributions</h2>", _distribution_section(data),
        "<h2>Memory and size</h2>", _memory_section(data),
        "<h2>Conditions of each measurement</h2>", _conditions_table(data),
        "</body></html>",
    ]
    return "\n".join(parts)

"""``edgeship report``: one self-contained HTML page from benchmark and candidate JSON files.

The page has the candidate table (a pass/over mark per budget, drawn in CSS), the
accuracy-vs-latency plot with the Pareto front marked (a compress summary's own, over
accuracy, latency, memory and size) and budget lines, latency
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
  "pick": "name" | null, "device": "raspberry-pi-5" | null, "pareto_front": ["name", ...]}``
  (``compress``'s summary.json; the report marks the front it lists, and computes the same
  front over loose candidate files).

Example:
    >>> import edgeship
    >>> edgeship.report(["fp32.json", "int8.json"], "report.html",
    ...                 budget=edgeship.Budget(max_latency_ms=20))        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Optional, Union

from edgeship.budget import Budget, Check
from edgeship.report_data import (
    BUDGET_ORDER,
    CANDIDATE_SCHEMA,
    Candidate,
    FidelityRecord,
    ReportData,
    ResultLike,
    Row,
    Timings,
    load_results,
    mark_front,
    original_candidate_name,
    percentile_of,
)
from edgeship.report_plots import Line, Point, bars, fmt, histograms, scatter
from edgeship.report_style import STYLE
from edgeship.runtime.results import FrequencyState, ThermalState

__all__ = ["CANDIDATE_SCHEMA", "Candidate", "ReportData", "Row", "load_results", "mark_front",
           "original_candidate_name", "render_report", "report"]


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
    mark_front(data, percentile_of(data))
    return _page(data, title or "edgeship report")


# -- the page ------------------------------------------------------------------------------------


def badge(kind: str, text: str) -> str:
    """A status mark drawn with CSS (no emoji font needed): ok, bad, failed, skipped, pick."""
    return f'<span class="badge {kind}">{escape(text)}</span>'


def _td(value: Optional[float], key: str, row: int, unit: str = "") -> str:
    if value is None:
        return f'<td class="num muted" data-row="{row}" data-key="{key}">–</td>'
    return (f'<td class="num" data-row="{row}" data-key="{key}" data-value="{value!r}">'
            f'{fmt(value)}{unit}</td>')


def _check_cell(check: Optional[Check], row: int) -> str:
    if check is None:
        return '<td class="muted">–</td>'
    measured = check.measured  # the limit is in the column's header
    text = (f"{badge('ok', 'ok') if check.ok else badge('bad', 'over')}{fmt(measured)}"
            if measured is not None else f"{badge('bad', 'n/a')}not measured")
    return (f'<td class="{"ok" if check.ok else "bad"}" data-row="{row}" '
            f'data-key="budget_{escape(check.name)}" data-ok="{str(check.ok).lower()}">{text}</td>')


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
    names = [n for n in BUDGET_ORDER if any(c.name == n for r in data.rows for c in r.checks)]
    head = ["candidate", "format", "backend · device", "precision", "size MB", f"latency {percentile} ms",
            "p99 ms", "peak memory MB", "accuracy %", "drop pt", "fidelity (judge)",
            "build / evaluate / measure s"]
    limits = {c.name: c for r in data.rows for c in r.checks}
    head += [f"{n.replace('_', ' ')} ≤ {fmt(limits[n].limit)} {limits[n].unit}" for n in names]
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
            cells += [f"<td>{escape(res.model.format)}</td>",
                      f"<td>{escape(be.backend)} "
                      f"{escape(be.version.split('-')[0])} · "  # the full one: below
                      f"{escape(be.device)}</td>",
                      f"<td>{escape(be.precision or 'as stored')}</td>",
                      _td(res.model.size_mb, "size_mb", i),
                      _td(res.latency(percentile), f"latency_{percentile}_ms", i),
                      _td(res.latency_ms.p99, "latency_p99_ms", i),
                      _td(res.memory.peak_rss_mb, "peak_rss_mb", i)]
        else:  # the same cells, empty: a row always has the header's cell count
            cells += ['<td class="muted">–</td>'] * 3 + [_td(None, k, i) for k in MEASURE_KEYS]
        cells += [_td(r.accuracy, "accuracy", i), _td(r.accuracy_drop, "accuracy_drop", i),
                  _fidelity_td(r.fidelity), _timings_td(r.timings)]
        by_name = {c.name: c for c in r.checks}
        cells += [_check_cell(by_name.get(n), i) for n in names]
        cells.append(f'<td class="{status_cls}" data-row="{i}" data-key="status">{status}</td>')
        lines.append(f'<tr class="{row_cls}">' + "".join(cells) + "</tr>")
    return "".join(lines) + "</tbody></table></div>"


def _fidelity_td(f: Optional[FidelityRecord]) -> str:
    """The metric that decided fidelity, its value and the judge, e.g. "estimated drop (no
    labels) 0.51 pt · unlabelled classification"."""
    if f is None:
        return '<td class="muted">–</td>'
    value = "–" if f.value is None else f"{f.value:.3g}{' ' + f.unit if f.unit else ''}"
    tol = f" (budget {f.tolerance:g})" if f.tolerance is not None else ""
    return (f"<td>{escape(f.name)} {escape(value)}{escape(tol)}"
            f'<br><span class="muted">{escape(f.judge)}</span></td>')


def _timings_td(t: Optional[Timings]) -> str:
    if t is None or t.build_s is None:
        return '<td class="muted">–</td>'
    seconds = ["cached" if t.cached_build else f"{t.build_s:.1f}",
               *("–" if v is None else f"{v:.1f}" for v in (t.evaluate_s, t.measure_s))]
    return f"<td>{' / '.join(seconds)}</td>"


def _pareto_section(data: ReportData, percentile: str) -> str:
    rows = [r for r in data.rows if r.result is not None and r.quality is not None]
    if not rows:
        return ('<p class="muted">No accuracy in these results: the accuracy-latency plot needs '
                'candidates from <code>edgeship compress</code>.</p>')
    points = [Point(r.name, r.result.latency(percentile), r.quality, r.ok, r.on_front,  # type: ignore
                    pick=data.pick == r.name) for r in rows]
    lines = []
    b = data.budget
    limit = b.max_latency_ms if b else data.limit("latency")
    if limit is not None:
        lines.append(Line("x", float(limit), f"latency budget {fmt(limit)} ms"))
    max_drop = b.max_accuracy_drop if b else data.limit("accuracy_drop")
    baseline = next((r.baseline_accuracy for r in rows if r.baseline_accuracy is not None), None)
    if max_drop is not None and baseline is not None:
        lines.append(Line("y", baseline - max_drop, f"accuracy floor {fmt(baseline - max_drop)} %"))
    metric = next((r.accuracy_metric for r in rows if r.accuracy_metric), "accuracy")
    judged = next((r.fidelity for r in rows if r.accuracy is None and r.fidelity), None)
    if judged is not None:  # no accuracy measured: plot the judge's figure (higher is better)
        unit = f" ({judged.unit})" if judged.unit else ""
        sign = "" if judged.higher_is_better else "− "
        if max_drop is not None and judged.metric.endswith("drop"):
            lines.append(Line("y", -float(max_drop), f"budget −{fmt(max_drop)} pt"))
        return scatter(points, f"latency {percentile} (ms)",
                       f"{sign}{judged.name}{unit}", lines)
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
    mem = [(r.name, float(r.result.memory.peak_rss_mb or 0),  # type: ignore[union-attr]
            r.result.memory.delta_mb) for r in measured]  # type: ignore[union-attr]
    size = [(r.name, r.result.model.size_mb, None) for r in measured]  # type: ignore[union-attr]
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
        target = res.where
        if target == "local":
            target += " (host measurement)"
        cov = res.node_coverage
        provider = be.device
        if cov is not None and cov.share_on_primary is not None:
            provider += f" ({cov.share_on_primary:.0%} of {cov.nodes} nodes)"
        governor, mhz = _clock(res.cpu_frequency)
        temps = _temps(res.thermal)
        rows.append([
            escape(r.name), escape(target), escape(host.summary),
            escape(f"{host.os} · Python {host.python}"),
            escape(f"{be.backend} {be.version} ({be.module})"),
            escape(provider),
            escape(be.precision or "backend default"),
            f'<span data-row="{i}" data-key="threads">'
            f'{escape(str(be.threads or cfg.get("threads") or "backend default"))}</span>',
            f'<span data-row="{i}" data-key="runs">{res.latency_ms.runs}</span> '
            f'({cfg.get("warmup_runs")})',
            escape(", ".join(f"{x.name} {x.shape} {x.source}" for x in res.inputs)),
            "" if governor is None and mhz == (None, None)
            else escape(f"{governor or '–'} · {mhz[0] or '–'}→{mhz[1] or '–'}"),
            "" if temps == (None, None) else escape(f"{temps[0] or '–'}→{temps[1] or '–'}"),
            {True: "yes", False: "no", None: ""}[res.thermal.throttled],
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


def _clock(freq: FrequencyState) -> tuple[Optional[str], tuple[Optional[str], Optional[str]]]:
    """CPU 0's governor before the runs, and its MHz before and after."""
    mhz = tuple(fmt(f.mhz) if f and f.mhz else None for f in (freq.before, freq.after))
    return (freq.before.governor if freq.before else None), (mhz[0], mhz[1])


def _temps(thermal: ThermalState) -> tuple[Optional[str], Optional[str]]:
    """The hottest thermal zone before and after the runs."""
    hot = (thermal.hottest("before"), thermal.hottest("after"))
    return (None if hot[0] is None else fmt(hot[0])), (None if hot[1] is None else fmt(hot[1]))


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
    size = pick.result.model.size_bytes / base.result.model.size_bytes
    drop = "" if pick.accuracy_drop is None else f", accuracy drop {pick.accuracy_drop:+.2f} pt"
    return (f'<p class="note" id="versus-original">{badge("pick", "pick")}<b>{escape(pick.name)}</b>: '
            f"{speed} than the original ({escape(base.name)}, {percentile} {fmt(before)} → "
            f"{fmt(after)} ms), {size:.0%} of its size{drop}.</p>")


def _page(data: ReportData, title: str) -> str:
    from edgeship import __version__

    percentile = percentile_of(data)
    hosts = {r.result.where for r in data.rows if r.result is not None}
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

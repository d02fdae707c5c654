"""Rich tables for results; everything here writes to stderr unless it is the --json payload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from rich.console import Console
from rich.table import Table

err_console = Console(stderr=True)


def _fmt(value: Optional[float], unit: str = "", digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}{unit}"


def result_table(result: Any, verdict: Any = None, title: Optional[str] = None) -> Table:
    """The table `edgeship bench` prints: latency, memory, backend, and a ✅/❌ per budget."""
    lat = result.latency_ms
    be = result.backend
    table = Table(title=title or f"{result.model['name']} on {result.target.get('name', 'local')}",
                  show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("budget", justify="right")
    checks = {c.name: c for c in (verdict.checks if verdict else [])}

    def budget_cell(name: str) -> str:
        c = checks.get(name)
        if c is None:
            return ""
        return f"{'✅' if c.ok else '❌'} ≤ {c.limit:g} {c.unit}"

    table.add_row("backend", f"{be['backend']} {be['version']} on {be['device']}"
                  + (f" ({be['precision']})" if be.get("precision") else ""), "")
    table.add_row("threads", str(be.get("threads") or "backend default"), "")
    table.add_row("load", _fmt(result.load_ms, " ms"), "")
    table.add_row("first inference", _fmt(result.first_inference_ms, " ms"), "")
    for p in ("min", "p50", "p90", "p99", "max"):
        name = "latency" if checks.get("latency") and checks["latency"].detail == p else ""
        table.add_row(f"latency {p}", _fmt(getattr(lat, p), " ms"), budget_cell(name) if name else "")
    table.add_row("mean ± std", f"{lat.mean:.3g} ± {lat.std:.2g} ms", "")
    table.add_row("runs", f"{lat.runs} (+{result.config['warmup_runs']} warmup)", "")
    table.add_row("throughput", _fmt(result.throughput_ips, " /s", 4), "")
    mem = result.memory
    table.add_row("peak memory", _fmt(mem.get("peak_rss_mb"), " MB") +
                  f" (+{_fmt(mem.get('delta_mb'), ' MB')} for the model)", budget_cell("memory"))
    table.add_row("model size", _fmt(result.model["size_bytes"] / 1e6, " MB"), budget_cell("size"))
    cov = result.node_coverage or {}
    if cov.get("share_on_primary") is not None:
        table.add_row("nodes on device", f"{cov['share_on_primary']:.0%} of {cov['nodes']}", "")
    therm = result.thermal
    if therm.get("throttled") is not None:
        table.add_row("throttled", "yes" if therm["throttled"] else "no", "")
    host = result.host
    limits = host.get("cgroup") or {}
    if limits.get("memory_limit_mb") or limits.get("cpu_quota_cores"):
        table.add_row("cgroup limits", f"memory {_fmt(limits.get('memory_limit_mb'), ' MB')}, "
                      f"cpu {_fmt(limits.get('cpu_quota_cores'), ' cores')}", "")
    table.add_row("host", f"{host.get('device_model') or host.get('cpu_model')} "
                  f"({host.get('machine')}, {host.get('cpu_count')} cores)", "")
    return table


# -- tables that fit the terminal ------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column of a ``fit_table``: lower ``priority`` is kept longer when the terminal is narrow
    (0: never dropped); ``wrap`` columns may fold onto several lines instead."""

    header: str
    priority: int = 5
    justify: str = "right"
    wrap: bool = False
    min_width: int = 8  # what a wrapping column keeps at least


def fit_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], *, width: Optional[int] = None,
              wide: bool = False, title: Optional[str] = None, caption: Optional[str] = None) -> Table:
    """A rich Table of ``rows`` whose columns fit ``width`` (the terminal's): columns are dropped
    by priority (highest number first) until the rest fits; ``wide`` keeps every column.  The
    caption says which columns were left out and that ``--wide`` shows them."""
    width = width or err_console.width
    keep = list(range(len(columns)))

    def natural(i: int) -> int:
        cells = [len(columns[i].header), *(max((len(x) for x in str(r[i]).split("\n")), default=0)
                                         for r in rows)]
        need = max(cells)
        return min(need, max(columns[i].min_width, len(columns[i].header))) if columns[i].wrap \
            else need

    def total(indices: list[int]) -> int:  # rich's box: one border per column plus one, padding 2
        return sum(natural(i) + 3 for i in indices) + 1

    dropped: list[str] = []
    if not wide:
        for i in sorted(keep, key=lambda j: -columns[j].priority):
            if total(keep) <= width:
                break
            if columns[i].priority > 0:
                keep.remove(i)
                dropped.insert(0, columns[i].header.strip() or "mark")
    notes = [caption] if caption else []
    if dropped:
        notes.append(f"not shown at {width} columns: {', '.join(dropped)} (--wide shows them)")
    table = Table(title=title, header_style="bold", caption="\n".join(notes) or None,
                  expand=False)
    for i in keep:
        c = columns[i]
        table.add_column(c.header, justify=c.justify, no_wrap=not c.wrap,  # type: ignore[arg-type]
                         overflow="fold" if c.wrap else "ellipsis",
                         min_width=min(natural(i), c.min_width) if c.wrap else natural(i))
    for r in rows:
        table.add_row(*(str(r[i]) for i in keep))
    return table


def print_table(table: Table, wide: bool = False) -> None:
    """Print on stderr; ``--wide`` tables at their natural width, past the terminal's edge."""
    console = Console(stderr=True, width=1000) if wide else err_console
    console.print(table)

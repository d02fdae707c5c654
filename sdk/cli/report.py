"""`edgeship report`: render benchmark and candidate JSON files into one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    results: Annotated[
        list[Path], typer.Argument(help="RESULT.json files: bench results, candidates, summaries.")
    ],
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="HTML file, or an existing directory [default: report.html].")
    ] = None,
    title: Annotated[Optional[str], typer.Option("--title", help="Page title.")] = None,
    max_latency_ms: o.MaxLatency = None,
    max_memory_mb: o.MaxMemory = None,
    max_size_mb: o.MaxSize = None,
    max_accuracy_drop: o.MaxAccuracyDrop = None,
    percentile: o.Percentile = "50",
    force: o.Force = False,
) -> None:
    """Write a self-contained HTML report (tables, plots, conditions) from RESULT.json files.

    Budget flags re-check every result; without them each result's own verdict is shown.
    """
    from edgeship.cli.render import err_console
    from edgeship.core.io import resolve_output
    from edgeship.reporting import report as write_report

    output = resolve_output(output, Path("report.html"), force=force)

    budget = o.make_budget(max_latency_ms, max_memory_mb, max_size_mb, max_accuracy_drop, percentile)
    path = write_report(results, output, budget=None if budget.is_empty else budget, title=title)
    err_console.print(f"wrote {path} ({len(results)} result file(s))")

"""`edgeship compress`: find the compressed model that fits a device's budgets, and prove it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("compress")(compress)


def compress(
    model: Annotated[Path, typer.Argument(
        help="Model: .onnx, .pt2/.pt (torch), OpenVINO .xml or .tflite.")],
    device: Annotated[str, typer.Option("--device", help="Device profile name or YAML file.")],
    target: Annotated[str, typer.Option(
        "--target", help="Measure on 'local' (this host, labelled as such) or an SSH target.")
    ] = "local",
    data: Annotated[Optional[str], typer.Option(
        "--data", help="Evaluation data: .npz (x, y) or an image folder with labels.")] = None,
    train_data: Annotated[Optional[str], typer.Option(
        "--train-data", help="Calibration/distillation samples (default: half of --data).")
    ] = None,
    max_latency_ms: o.MaxLatency = None,
    max_memory_mb: o.MaxMemory = None,
    max_size_mb: o.MaxSize = None,
    max_accuracy_drop: o.MaxAccuracyDrop = None,
    percentile: o.Percentile = "50",
    threads: o.Threads = None,
    recipes: Annotated[Optional[Path], typer.Option(
        "--recipes", help="YAML recipes to try instead of the planner's.")] = None,
    prefer: Annotated[str, typer.Option(
        "--prefer", help="Among fitting candidates pick the least: latency, size or memory.")
    ] = "latency",
    runs: Annotated[int, typer.Option("--runs", help="Timed runs per candidate (at least).")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", help="Warmup runs per candidate.")] = 10,
    min_seconds: Annotated[float, typer.Option(
        "--min-seconds", help="Time each candidate for at least this long.")] = 1.0,
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Output directory (default: MODEL-DEVICE).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier compress output directory.")] = False,
    input_shape: o.InputShape = None,
    input_value: o.InputValue = None,
    input_range: o.InputRange = None,
    json_out: o.Json = False,
) -> None:
    """Compress MODEL for a device: try candidates, keep the Pareto front, pick the best that
    fits every budget (exit 1 when none does, naming the budgets missed)."""
    import json

    from edgeship.cli.render import err_console
    from edgeship.compressing import DEFAULT_MAX_ACCURACY_DROP
    from edgeship.compressing import compress as run_compress
    from edgeship.profiles import load_profile

    shapes, fills = o.input_flags(input_shape, input_value, input_range)
    profile = load_profile(device)
    defaults = {"max_accuracy_drop": DEFAULT_MAX_ACCURACY_DROP} | profile.default_budget_dict()
    budget = o.make_budget(max_latency_ms, max_memory_mb, max_size_mb, max_accuracy_drop,
                           percentile, defaults)
    out = output if output is not None else Path(f"{model.stem}-{profile.name}")
    result = run_compress(model, str(device), target=target, data=data, train_data=train_data,
                          budget=budget, prefer=prefer, threads=threads, recipes=recipes,
                          output=out, force=force, runs=runs, warmup=warmup,
                          min_seconds=min_seconds, progress=True,
                          input_shapes=shapes or None, input_fills=fills or None)
    print_outcome(result, err_console)
    if json_out:
        typer.echo(json.dumps(result.summary))
    if result.pick is None:
        from edgeship.errors import BudgetExceeded

        raise BudgetExceeded(result.no_fit_message() + f" (results in {result.output})",
                             "relax a budget, or try another device or --recipes")
    err_console.print(f"✅ picked [bold]{result.pick.name}[/] ({' → '.join(result.pick.recipe.labels())}); "
                      f"wrote {result.output}/{result.summary.get('artifact', '')}, report.html, "
                      "summary.json", highlight=False)


def candidate_table(result: Any) -> Any:
    """The candidates, one row each; why a candidate missed or failed follows the table."""
    from rich.table import Table

    p = result.budget.percentile
    where = "host" if result.measured_on["kind"] == "host" else "device"
    table = Table(title=f"compress for {result.device} ({where} measurements, "
                        f"{result.data['evaluation_samples']} evaluation samples)",
                  header_style="bold", caption="★ pick  ◆ Pareto front  ✅ fits  ❌ misses  ✗ failed")
    widest = max((len(c.name) for c in result.candidates), default=9)
    for col in ("", "candidate", "runs on", "KB", "acc %", "drop", f"{p} ms", "p99 ms", "MB"):
        table.add_column(col, justify="left" if col in ("", "candidate", "runs on") else "right",
                         no_wrap=col != "runs on", min_width=widest if col == "candidate" else None)
    for c in result.candidates:
        ev, bench = c.evaluation, c.benchmark
        mark = ("★" if c is result.pick else "") + ("◆" if c.on_front else "") + (
            "✅" if c.fits else "❌" if c.measured else "–" if c.skipped else "✗")
        table.add_row(
            mark, c.name, c.recipe.runs_on + (f" {c.recipe.precision}" if c.recipe.precision else ""),
            f"{bench.model['size_bytes'] / 1e3:.1f}" if bench else "",
            f"{ev.accuracy:.2f}" if ev else "", f"{ev.drop:+.2f}" if ev else "",
            f"{bench.latency(p):.4g}" if bench else "", f"{bench.latency_ms.p99:.4g}" if bench else "",
            f"{bench.memory.get('peak_rss_mb'):.0f}" if bench else "")
    return table


def print_outcome(result: Any, console: Any) -> None:
    console.print(candidate_table(result))
    for c in result.candidates:
        if not c.fits:
            console.print(f"  {c.name}: {c.status()}", highlight=False, soft_wrap=True)
    console.print(f"[yellow]{result.measured_on['note']}[/]", highlight=False)

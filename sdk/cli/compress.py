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
    min_snr_db: Annotated[Optional[str], typer.Option(
        "--min-snr-db", help="Outputs that are not class scores: least SNR (dB) vs the original "
        "(default 20: error RMS at most 10 % of the output's).")] = None,
    max_rel_error: Annotated[Optional[str], typer.Option(
        "--max-rel-error", help="Outputs that are not class scores: most ||cand-ref||/||ref||.")
    ] = None,
    min_cosine: Annotated[Optional[str], typer.Option(
        "--min-cosine", help="Outputs that are not class scores: least mean cosine.")] = None,
    task: Annotated[Optional[str], typer.Option(
        "--task", help="classification|regression|embedding|detection (default: inferred from "
        "the output shape and the manifest, and said so).")] = None,
    metric: Annotated[Optional[str], typer.Option(
        "--metric", help="Fidelity metric: top1_drop, estimated_drop, agreement_drop, snr_db, "
        "rel_error or cosine (default: top1_drop with labels, estimated_drop without, snr_db "
        "for other outputs).")] = None,
    time_budget: Annotated[Optional[float], typer.Option(
        "--time-budget", help="Seconds for the whole search; later candidates are skipped.")
    ] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Built-candidate cache (default ~/.cache/edgeship/candidates, or "
        "$EDGESHIP_CACHE_DIR/candidates).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Build every candidate afresh.")
    ] = False,
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
    ray: Annotated[Optional[str], typer.Option(
        "--ray", metavar="auto|ADDRESS",
        help="Build and evaluate the candidates as Ray tasks: on the cluster at ADDRESS, or with "
        "'auto' RAY_ADDRESS, this machine's running cluster, or a new local one (pip install "
        "'edgeship[ray]').")] = None,
    lab: Annotated[Optional[str], typer.Option(
        "--lab", help="Ray cluster address of a device lab (edgeship lab): each measurement "
        "on --target leases the device.")] = None,
    input_shape: o.InputShape = None,
    input_value: o.InputValue = None,
    input_range: o.InputRange = None,
    json_out: o.Json = False,
    wide: o.Wide = False,
    trust_model_code: o.TrustModelCode = False,
) -> None:
    """Compress MODEL for a device: try candidates, keep the Pareto front, pick the best that
    fits every budget (exit 1 when none does, naming the budgets missed)."""
    import dataclasses

    o.trust_model_code(trust_model_code)
    import json

    from edgeship.cli.progress import search_progress
    from edgeship.cli.render import err_console
    from edgeship.compression import compress as run_compress
    from edgeship.compression.judge import DEFAULT_MAX_ACCURACY_DROP
    from edgeship.profiles import load_profile

    shapes, fills = o.input_flags(input_shape, input_value, input_range)
    profile = load_profile(device)
    defaults = {"max_accuracy_drop": DEFAULT_MAX_ACCURACY_DROP} | profile.default_budget_dict()
    budget = dataclasses.replace(
        o.make_budget(max_latency_ms, max_memory_mb, max_size_mb, max_accuracy_drop, percentile,
                      defaults),
        min_snr_db=min_snr_db, max_rel_error=max_rel_error, min_cosine=min_cosine)
    out = output if output is not None else Path(f"{model.stem}-{profile.name}")
    _warn_missing_tools(model, profile, err_console)
    result = run_compress(model, str(device), target=target, data=data, train_data=train_data,
                          budget=budget, prefer=prefer, threads=threads, recipes=recipes,
                          output=out, force=force, runs=runs, warmup=warmup,
                          min_seconds=min_seconds, progress=search_progress(), task=task,
                          metric=metric,
                          time_budget=time_budget,
                          cache=False if no_cache else cache_dir, ray=ray, lab=lab,
                          input_shapes=shapes or None, input_fills=fills or None)
    print_outcome(result, err_console, wide=wide)
    if json_out:
        typer.echo(json.dumps(result.summary))
    if result.pick is None:
        from edgeship.core.errors import BudgetExceeded

        raise BudgetExceeded(result.no_fit_message() + f" (results in {result.output})",
                             "relax a budget, or try another device or --recipes")
    err_console.print(f"✅ picked [bold]{result.pick.name}[/] ({' → '.join(result.pick.recipe.labels())})",
                      highlight=False)
    gain = versus_original(result)
    if gain:
        err_console.print(f"   {gain}", highlight=False)
    err_console.print(f"   wrote {out}/{result.summary.get('artifact', '')}, report.html, "
                      "summary.json", highlight=False)


def _warn_missing_tools(model: Path, profile: Any, console: Any) -> None:
    """One line before the search when a converter the plan needs is missing, with its fix."""
    from edgeship.doctor import missing_for

    missing = missing_for(model, profile)
    if missing:
        names = ", ".join(m.name for m in missing)
        fixes = " && ".join(dict.fromkeys(m.fix for m in missing if m.fix))
        console.print(f"[yellow]note:[/] {names} not installed: the candidates that need "
                      f"{'it' if len(missing) == 1 else 'them'} will fail. Fix: {fixes}",
                      highlight=False, soft_wrap=True)  # one line, whatever the width


# Columns in the order shown; the priority says which go first when the terminal is narrow
# (0: always kept).  A new column takes a priority here and a cell in ``_cells``.
COLUMNS = (
    ("mark", "", 0, "left"), ("name", "candidate", 0, "left"), ("latency", "{p} ms", 1, "right"),
    ("drop", "drop", 1, "right"), ("accuracy", "acc %", 2, "right"), ("size", "KB", 3, "right"),
    ("fidelity", "fidelity", 2, "right"), ("memory", "MB", 4, "right"),
    ("runs_on", "runs on", 5, "left"), ("p99", "p99 ms", 6, "right"),
    ("timings", "build/eval/bench s", 7, "right"),
)
LEGEND = ("★ pick  ◆ Pareto front  ✓ fits  ✗ misses a budget  ! failed  – skipped  "
          "fidelity: est = estimated (no labels), SNR/rel/cos = output error")


def _mark(c: Any, pick: Any) -> str:
    state = "✓" if c.fits else "✗" if c.measured else "–" if c.skipped else "!"
    return ("★" if c is pick else "") + ("◆" if c.on_front else "") + state


def _cells(c: Any, result: Any) -> dict[str, str]:
    ev, bench, p = c.evaluation, c.benchmark, result.budget.percentile
    return {
        "mark": _mark(c, result.pick), "name": c.name,
        "runs_on": c.planned.runs_on + (f" {c.recipe.precision}" if c.recipe.precision else ""),
        "size": f"{bench.model.size_bytes / 1e3:.1f}" if bench else "",
        "accuracy": f"{ev.accuracy:.2f}" if ev and ev.accuracy is not None else "",
        "drop": f"{ev.drop:+.2f}" if ev and ev.drop is not None else "",
        "fidelity": _fidelity_cell(c), "timings": _timings_cell(c),
        "latency": _ms(bench.latency(p)) if bench else "",
        "p99": _ms(bench.latency_ms.p99) if bench else "",
        "memory": f"{bench.memory.peak_rss_mb:.0f}" if bench else "",
    }


def _ms(value: float) -> str:
    return f"{value:.3g}" if value >= 0.01 else f"{value:.2g}"


def candidate_table(result: Any, wide: bool = False, width: Optional[int] = None) -> Any:
    """The candidates, one row each, fitted to the terminal; why a candidate missed or failed
    follows the table."""
    from edgeship.cli.render import Column, fit_table

    p = result.budget.percentile
    where = "host" if result.measured_on["kind"] == "host" else "device"
    cols = [Column(head.format(p=p), prio, justify)
            for key, head, prio, justify in COLUMNS]
    rows = [[_cells(c, result)[key] for key, *_ in COLUMNS] for c in result.candidates]
    return fit_table(cols, rows, wide=wide, width=width,
                     title=f"compress for {result.device} ({where} measurements, "
                           f"{result.data['evaluation_samples']} evaluation samples)",
                     caption=LEGEND)


def versus_original(result: Any) -> Optional[str]:
    """'5.3× faster than the original (fp32-onnx: 10.9 → 2.05 µs p50), accuracy -0.00 pt'."""
    pick, base = result.pick, result.as_given
    if pick is None or base is None or not base.measured or pick.evaluation is None:
        return None
    name = base.name
    p = result.budget.percentile
    before, after = base.latency(p), pick.latency(p)
    if not before or not after:
        return None
    ev = pick.evaluation
    size = (base.benchmark.model.size_bytes, pick.benchmark.model.size_bytes)  # type: ignore
    if pick is base:
        return f"the pick is the original itself ({name}): no compressed candidate beat it"
    speed = (f"{before / after:.3g}× faster" if after <= before else f"{after / before:.3g}× slower")
    if ev.accuracy is not None and ev.baseline is not None and ev.drop is not None:
        cost = f"accuracy {ev.accuracy:.2f} % vs {ev.baseline:.2f} % ({ev.drop:+.2f} pt drop)"
    else:  # no labels, or not class scores: the judge's own figure, named
        f = ev.fidelity
        cost = f"{f.label} {_fidelity_value(f)}"
    return (f"{speed} than the original ({name}: {p} {_ms(before)} → {_ms(after)} ms), "
            f"{size[1] / size[0]:.0%} of its size, {cost}")


_TAGS = {"estimated_drop": "est ", "agreement_drop": "disagree ", "snr_db": "SNR ",
         "rel_error": "rel ", "cosine": "cos "}


def _fidelity_cell(c: Any) -> str:
    """The metric that decided the candidate's fidelity: ``est 0.51 pt`` (no labels),
    ``0.20 pt`` (labelled), ``SNR 31.2 dB``."""
    if c.evaluation is None:
        return ""
    f = c.evaluation.fidelity
    return _TAGS.get(f.metric, "") + _fidelity_value(f)


def _fidelity_value(f: Any) -> str:
    value = f"{f.value:+.2f}" if f.unit == "pt" else f"{f.value:.3g}"
    return f"{value}{' ' + f.unit if f.unit else ''}"


def _timings_cell(c: Any) -> str:
    t = c.timings()
    if t["build_s"] is None:
        return ""
    build = "cached" if t["cached_build"] else f"{t['build_s']:.0f}"
    return f"{build}/{t['evaluate_s']:.0f}/{t['measure_s']:.0f}"


def print_outcome(result: Any, console: Any, wide: bool = False) -> None:
    from edgeship.cli.render import print_table

    judge = result.summary.get("fidelity_judge") or {}
    if judge:
        console.print(f"fidelity judge: {judge['task']}, {judge['metric']} ({judge['reason']})",
                      highlight=False, soft_wrap=True)
    print_table(candidate_table(result, wide=wide), wide)
    for c in result.candidates:
        if not c.fits:
            console.print(f"  {c.name}: {c.status()}", highlight=False)
    console.print(f"[yellow]{result.measured_on['note']}[/]", highlight=False)

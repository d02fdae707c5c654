"""`edgeship bench`: measure a model locally or on a device and gate on budgets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from edgeship.cli import options as o
from edgeship.cli import remote as r
from edgeship.cli.options import Provision, provision_for


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)


def bench(
    model: Annotated[Path, typer.Argument(help="Model file: .onnx, .xml (OpenVINO IR) or .tflite.")],
    target: r.Targets = None,
    hosts_file: r.HostsFile = None,
    accept_new_host_key: r.AcceptNewHostKey = False,
    timeout: r.Timeout = None,
    jobs: r.Jobs = 32,
    device: Annotated[
        Optional[str], typer.Option("--device", help="Device profile for default budgets.")
    ] = None,
    max_latency_ms: o.MaxLatency = None,
    max_memory_mb: o.MaxMemory = None,
    max_size_mb: o.MaxSize = None,
    percentile: o.Percentile = "50",
    backend: o.Backend = None,
    threads: o.Threads = None,
    precision: Annotated[
        Optional[str], typer.Option("--precision", help="fp32|fp16|bf16 where the backend chooses.")
    ] = None,
    runs: Annotated[int, typer.Option("--runs", help="At least this many timed runs.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", help="At least this many warmup runs.")] = 10,
    min_seconds: Annotated[
        float, typer.Option("--min-seconds", help="Time the runs for at least this long.")
    ] = 1.0,
    input_shape: o.InputShape = None,
    input_value: o.InputValue = None,
    input_range: o.InputRange = None,
    data: o.InputData = None,
    provision: Provision = False,
    output: Annotated[
        Optional[Path], typer.Option("-o", "--output", help="Also write the result JSON here.")
    ] = None,
    force: o.Force = False,
    lab: Annotated[Optional[str], typer.Option(
        "--lab", help="Ray cluster address of a device lab (edgeship lab): lease each device "
        "for its benchmark.")] = None,
    json_out: o.Json = False,
) -> int:
    """Benchmark MODEL in a fresh process and check it against budgets (exit 1 if one is missed)."""
    from edgeship.bench import bench_config, run_benchmark
    from edgeship.cli.render import err_console, result_table
    from edgeship.core.errors import ConfigError
    from edgeship.core.io import write_atomic

    defaults = None
    if device:
        from edgeship.profiles import load_profile

        defaults = load_profile(device).default_budget_dict()
        defaults.pop("max_accuracy_drop", None)  # bench measures no accuracy
    budget = o.make_budget(max_latency_ms, max_memory_mb, max_size_mb, None, percentile, defaults)
    shapes, fills = o.input_flags(input_shape, input_value, input_range)
    # one measurement's settings, checked before anything else happens (runs, warmup, ...)
    config = bench_config(backend=backend, threads=threads, warmup=warmup, runs=runs,
                          min_seconds=min_seconds, input_shapes=shapes, precision=precision,
                          fills=fills, data=data, timeout=timeout).check()
    o.refuse_output_over_inputs(output, model, data, hosts_file)
    if output is not None:
        from edgeship.core.io import resolve_output

        output = resolve_output(output, Path(f"{model.stem}.bench.json"), force=force)
    targets = r.collect_targets(target, hosts_file)
    if provision and (len(targets) > 1 or targets[0] == "local"):
        raise ConfigError("--provision works on one device (--target HOST) at a time",
                          "run edgeship bench --provision --target HOST for each device")
    if len(targets) > 1:
        raise typer.Exit(r.bench_fleet_cli(
            model, targets, budget=budget, config=config, accept_new_host_key=accept_new_host_key,
            jobs=jobs, output=output, json_out=json_out, lab=lab))
    if lab is not None and targets[0] == "local":
        raise ConfigError("--lab leases a device, and the target is this host",
                          "pass --target HOST (a device registered in the lab)")
    import contextlib

    with r.open_cli_target(targets[0], accept_new_host_key) as tgt:
        if provision:
            provision_for(tgt, model, backend)
        if lab is not None:
            from edgeship.lab import lease

            leased: Any = lease(lab, targets[0], what=f"bench {model.name}")
        else:
            leased = contextlib.nullcontext()
        with leased, err_console.status(f"benchmarking {model.name} on {targets[0]}…"):
            result = run_benchmark(model, tgt, config)
    verdict = result.check(budget)
    payload = result.to_dict() | {"verdict": verdict.to_dict()}
    if output:
        import json

        write_atomic(output, json.dumps(payload, indent=2))
    if json_out:
        import json

        typer.echo(json.dumps(payload))
    else:
        err_console.print(result_table(result, verdict))
        if device and targets[0] == "local":
            err_console.print(f"[yellow]measured on this host, not on a {device}: budgets come from "
                              f"its profile; use --target to measure on the device itself[/yellow]")
        if targets[0] != "local":
            err_console.print(r.device_table(result.host.to_dict(), f"device {targets[0]}"))
        err_console.print(("✅ " if verdict.ok else "❌ ") + verdict.summary())
    raise typer.Exit(0 if verdict.ok else 1)

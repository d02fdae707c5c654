"""CLI pieces for devices: target options, the device-facts table, fleet output."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from edgeship.runtime.benchconfig import BenchConfig
    from edgeship.targets import Target

Targets = Annotated[
    Optional[list[str]],
    typer.Option("--target", help="'local', user@host[:port] or an ~/.ssh/config Host alias; "
                 "repeat for a fleet."),
]
HostsFile = Annotated[
    Optional[Path],
    typer.Option("--hosts-file", help="File with one target per line (# comments): a fleet."),
]
AcceptNewHostKey = Annotated[
    bool,
    typer.Option("--accept-new-host-key",
                 help="Trust a device's host key on first contact and add it to known_hosts "
                 "(a changed key is always refused)."),
]


def _positive_seconds(value: Optional[float]) -> Optional[float]:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a positive finite number of seconds, got {value}")
    return value


Timeout = Annotated[
    Optional[float],
    typer.Option("--timeout", help="Give up on a device's measurement after this many seconds.",
                 callback=_positive_seconds),
]
Jobs = Annotated[int, typer.Option("--jobs", help="Devices measured at once in a fleet.")]


def collect_targets(targets: Optional[list[str]], hosts_file: Optional[Path]) -> list[str]:
    """--target values and --hosts-file lines, each once; 'local' when neither is given."""
    from edgeship.fleet import unique_targets
    from edgeship.targets.sshconfig import read_hosts_file

    found = list(targets or [])
    if hosts_file is not None:
        found += read_hosts_file(hosts_file)
    return unique_targets(found) if found else ["local"]


def open_cli_target(spec: str, accept_new_host_key: bool, remote_dir: Optional[str] = None
                    ) -> Target:
    from edgeship.targets import open_target

    if spec == "local":
        return open_target(spec)
    return open_target(spec, accept_new_host_key=accept_new_host_key, remote_dir=remote_dir)


def device_table(facts: dict[str, Any], title: str = "device") -> Any:
    """The device's facts as the agent (or the probe) reported them."""
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("fact")
    table.add_column("value")
    mem = facts.get("memory_total_mb")
    rows = [
        ("model", facts.get("device_model")),
        ("cpu", f"{facts.get('cpu_model')} ({facts.get('machine')}, {facts.get('cpu_count')} cores)"),
        ("memory", f"{mem:.0f} MB" if isinstance(mem, (int, float)) else None),
        ("os", f"{facts.get('os')}, {facts.get('libc') or 'libc ?'}"),
        ("python", facts.get("python")),
        ("hostname", facts.get("hostname")),
    ]
    if "backends" in facts:
        rows.append(("backends", ", ".join(f"{k} {v}" for k, v in facts["backends"].items())
                     or "none"))
    if facts.get("accelerators"):
        rows.append(("accelerators", ", ".join(
            f"{a['kind']} {a.get('name') or a['node']} ({a.get('driver') or '?'})"
            for a in facts["accelerators"])))
    for name, value in rows:
        if value:
            table.add_row(name, str(value))
    return table


def fleet_table(fleet: Any) -> Any:
    """One row per host: verdict or error, latency, memory, where it ran."""
    from rich.table import Table

    table = Table(title=f"{fleet.extra.get('model', 'model')} on {len(fleet.hosts)} devices")
    for col in ("target", "status", "p50 ms", "p99 ms", "peak MB", "device", "seconds"):
        table.add_column(col, justify="right" if col.endswith(("ms", "MB", "seconds")) else "left")
    for h in fleet.hosts:
        if h.error is not None:
            table.add_row(h.target, f"❌ exit {h.exit_code}: {h.error}", "", "", "", "",
                          f"{h.seconds:.1f}")
            continue
        result, verdict = h.value
        status = "✅" if verdict is None or verdict.ok else "❌ " + verdict.summary()
        host = result.host
        table.add_row(h.target, status, f"{result.latency_ms.p50:.3g}",
                      f"{result.latency_ms.p99:.3g}",
                      f"{result.memory.peak_rss_mb or 0:.0f}",
                      f"{host.device_model or host.cpu_model} ({host.machine})",
                      f"{h.seconds:.1f}")
    return table


def fleet_payload(fleet: Any) -> dict[str, Any]:
    def host_value(h: Any) -> dict[str, Any]:
        if h.value is None:
            return {"result": None, "verdict": None}
        result, verdict = h.value
        return {"result": result.to_dict(),
                "verdict": verdict.to_dict() if verdict is not None else None}

    return fleet.to_dict(host_value)


def bench_fleet_cli(
    model: Path,
    targets: list[str],
    *,
    budget: Any,
    config: BenchConfig,  # its timeout included
    accept_new_host_key: bool,
    jobs: int,
    output: Optional[Path],
    json_out: bool,
    lab: Optional[str] = None,
) -> int:
    """`edgeship bench` with several targets: run them all, print one table or JSON."""
    from edgeship.cli.render import err_console
    from edgeship.fleet import FleetInterrupted, bench_fleet

    try:
        with err_console.status(f"benchmarking {model.name} on {len(targets)} devices…"):
            fleet = bench_fleet(model, targets, budget=budget, jobs=jobs,
                                accept_new_host_key=accept_new_host_key,
                                lab=lab, config=config)
    except FleetInterrupted as stopped:  # report the hosts that finished, then exit 130
        show_fleet(stopped.result, output, json_out)
        raise KeyboardInterrupt from None
    return show_fleet(fleet, output, json_out)


def show_fleet(fleet: Any, output: Optional[Path], json_out: bool) -> int:
    """The fleet's table (stderr) or JSON (stdout), and ``-o`` written; its exit code."""
    from edgeship.cli.render import err_console
    from edgeship.core.io import write_atomic

    payload = fleet_payload(fleet)
    if output:
        write_atomic(output, json.dumps(payload, indent=2))
    if json_out:
        typer.echo(json.dumps(payload))
    else:
        err_console.print(fleet_table(fleet))
        bad = [h for h in fleet.hosts if not h.ok]
        err_console.print(f"{len(fleet.hosts) - len(bad)} of {len(fleet.hosts)} devices ok"
                          + (f"; worst exit code {fleet.exit_code}" if bad else ""))
    if fleet.interrupted:
        done = sum(1 for h in fleet.hosts if h.error != "interrupted")
        err_console.print(f"interrupted: {done} of {len(fleet.hosts)} devices had finished; "
                          "their results are above" + (f" and in {output}" if output else ""))
    return int(fleet.exit_code)

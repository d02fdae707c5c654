"""`edgeship profiles list | show NAME|PATH | detect --target local|HOST`."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    profiles = typer.Typer(help="Device profiles: list them, show one, detect a device's.",
                           no_args_is_help=True)
    profiles.command("list")(list_cmd)
    profiles.command("show")(show)
    profiles.command("detect")(detect)
    app.add_typer(profiles, name="profiles")


def list_cmd(json_out: o.Json = False) -> None:
    """List the bundled device profiles."""
    from edgeship.cli.render import err_console
    from edgeship.profiles import list_profiles
    from rich.table import Table

    profiles = list_profiles()
    if json_out:
        typer.echo(json.dumps([p.model_dump(mode="json") for p in profiles]))
        return
    table = Table(title="device profiles (also: local, or a path to a .yaml)", header_style="bold")
    for column in ("name", "device", "arch", "cores", "accelerators", "memory"):
        table.add_column(column, no_wrap=column == "name")
    for p in profiles:
        table.add_row(p.name, p.display_name, p.arch, str(p.cpu.cores or "varies"),
                      ", ".join(a.kind.upper() + ("" if a.drivable else " (not driven)")
                                for a in p.accelerators) or "–", _mb(p.memory_mb))
    err_console.print(table)


def show(
    name: Annotated[str, typer.Argument(help="Profile name, 'local', or a profile YAML path.")],
    json_out: o.Json = False,
) -> None:
    """Show one device profile."""
    from edgeship.cli.render import err_console
    from edgeship.profiles import load_profile
    from rich.table import Table

    p = load_profile(name)
    if json_out:
        typer.echo(json.dumps(p.model_dump(mode="json")))
        return
    table = Table(title=f"{p.name}: {p.display_name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for field, value in _rows(p):
        table.add_row(field, value)
    err_console.print(table)


def _rows(p: Any) -> list[tuple[str, str]]:
    threads = p.thread_choice()
    rows = [("description", p.description), ("arch", p.arch), ("CPU", p.cpu.model),
            ("cores", str(p.cpu.cores or "varies")),
            ("max clock", f"{p.cpu.max_mhz:g} MHz" if p.cpu.max_mhz else "–")]
    rows += [("cluster", f"{c.count}x {c.name} ({c.role}"
              + (f", {c.max_mhz:g} MHz)" if c.max_mhz else ")")) for c in p.cpu.clusters]
    rows += [("threads", f"{threads.threads or 'all'} on {threads.cores}: {threads.why}"),
             ("ISA", ", ".join(p.cpu.isa) or "–"), ("CPU precisions", ", ".join(p.cpu.precisions)
              + "".join(f"; {c.precision} when {'+'.join(c.requires)}"
                        for c in p.cpu.conditional_precisions)),
             ("CPU peak", _peaks(p.cpu.peaks))]
    for a in p.accelerators:
        state = "edgeship drives it" if a.drivable else f"NOT driven: {a.not_drivable_because}"
        rows.append((a.kind.upper(), f"{a.name} via {a.backend}; {', '.join(a.precisions)}"
                     + (f" (hardware: {', '.join(a.hardware_precisions)})"
                        if a.hardware_precisions else "")
                     + f"; peak {_peaks(a.peaks)}; needs {a.model_format}"
                     + (f" from {a.compiler}" if a.compiler else "") + f"; {state}"
                     + (f" ({a.notes})" if a.notes else "")))
    sw = {k: v for k, v in p.software.model_dump().items() if v not in (None, [])}
    rows += [("software", "; ".join(f"{k} {', '.join(v) if isinstance(v, list) else v}"
                                    for k, v in sw.items()) or "–")]
    rows += [("variant", f"{v.id}: {v.name}") for v in p.variants]
    rows += [("memory", _mb(p.memory_mb)), ("formats", " > ".join(p.formats)),
             ("backends", " > ".join(p.backends)),
             ("default budgets", ", ".join(f"{k}={v:g}" for k, v in p.default_budget_dict().items())
              or "none"),
             ("detected by", _hints(p)),
             ("sources", "\n".join(f"{s.ref} — states {', '.join(s.states)}" for s in p.sources)
              or "–")]
    return rows


def _peaks(peaks: list[Any]) -> str:
    known = [(f"{x.precision} {x.gops / 1000:g} TOPS" if x.gops >= 1000 else
              f"{x.precision} {x.gops:g} GOPS") + f" {x.sparsity}"
             + (f" ({x.mode})" if x.mode else "") for x in peaks]
    return ", ".join(known) or "not published"


def _mb(mb: Optional[int]) -> str:
    return "varies" if mb is None else (f"{mb / 1024:g} GB" if mb >= 1024 else f"{mb} MB")


def _hints(p: Any) -> str:
    m = p.match
    hints = [f"model contains '{s}'" for s in m.device_model + m.cpu_model]
    hints += [f"CPU model matches /{s}/" for s in m.cpu_model_regex]
    hints += [f"CPU part {s}" for s in m.cpu_parts]
    hints += [f"CPU flags {', '.join(p.cpu.isa + m.cpu_flags)}"] if p.cpu.isa or m.cpu_flags else []
    return "; ".join(hints) or "arch only"


def detect(
    target: Annotated[str, typer.Option("--target", help="'local' or an SSH target/alias.")] = "local",
    json_out: o.Json = False,
) -> None:
    """Probe a device and name the profile that fits it; for an unknown device print a new
    profile YAML on stdout (save it and pass its path to --device)."""
    from edgeship.cli.render import err_console
    from edgeship.profiles import detect_profile

    found = detect_profile(target)
    new_yaml = None if found.profile else found.new_profile_yaml()
    if json_out:
        typer.echo(json.dumps({"target": target, "profile": found.profile and found.profile.name,
                               "score": found.score, "reasons": found.reasons,
                               "cpu_precisions": found.cpu_precisions,
                               "variants": [v.id for v in found.variants],
                               "threads": found.threads and found.threads.threads,
                               "new_profile_yaml": new_yaml, "facts": found.facts.to_dict()},
                              default=str))
        return
    if found.profile:
        err_console.print(f"[bold]{target}[/bold] is [bold green]{found.profile.name}[/] "
                          f"({found.profile.display_name}), score {found.score:.2f}")
    else:
        err_console.print(f"[bold]{target}[/bold] matches no bundled profile "
                          f"(best score {found.score:.2f}); a new profile follows on stdout")
    for reason in found.reasons:
        err_console.print(f"  • {reason}", markup=False)
    if found.profile:
        err_console.print(f"  CPU precisions here: {', '.join(found.cpu_precisions)}", markup=False)
        if found.threads:
            err_console.print(f"  threads: {found.threads.threads or 'all'} on {found.threads.cores}",
                              markup=False)
        for v in found.variants:
            err_console.print(f"  variant {v.id}: {v.name}", markup=False)
    if new_yaml:
        typer.echo(new_yaml, nl=False)

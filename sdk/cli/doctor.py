"""`edgeship doctor`: every backend, converter and tool, where it is, what it enables, and the
command that adds what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="With --device: check what compressing this model needs.")] = None,
    device: Annotated[Optional[str], typer.Option(
        "--device", help="With --model: the device profile of that compress.")] = None,
    json_out: o.Json = False,
    wide: o.Wide = False,
) -> None:
    """Show what is installed and what it enables; exit 4 when --model/--device needs something
    that is missing."""
    import json

    from edgeship.cli.render import Column, err_console, fit_table, print_table
    from edgeship.core.errors import ConfigError
    from edgeship.doctor import doctor as run_doctor
    from edgeship.doctor import needed_for

    if (model is None) != (device is None):
        raise ConfigError("--model and --device go together", "pass both, or neither")
    found = run_doctor()
    needed: list[str] = []
    if model is not None and device is not None:
        from edgeship.profiles import load_profile

        needed = needed_for(model, load_profile(device))
    by_name = {f.name: f for f in found}
    tflite_ok = any(f.present for f in found if f.kind == "backend" and "tflite" in f.formats)
    missing = [n for n in needed if not by_name[n].present
               and not (n == "ai-edge-litert" and tflite_ok)]
    if json_out:
        payload: dict[str, Any] = {"schema": "edgeship.doctor/1",
                                   "components": [f.to_dict() for f in found]}
        if needed:
            payload["needed"] = {"model": str(model), "device": device, "components": needed,
                                 "missing": missing}
        typer.echo(json.dumps(payload))
    else:
        cols = [Column("component", 0, "left"), Column("version", 0, "left"),
                Column("enables", 1, "left", wrap=True, min_width=24),
                Column("candidates", 2, "left", wrap=True, min_width=16),
                Column("found in", 3, "left", wrap=True, min_width=16),
                Column("devices", 4, "left", wrap=True, min_width=12)]
        rows = [[f.name + (" *" if f.name in needed else ""),
                 f.version or ("missing" if not f.optional else "– (optional)"),
                 f.enables, f.candidates or "–", f.location or "–",
                 f"{len(f.devices)} profiles" if f.devices else "–"] for f in found]
        print_table(fit_table(cols, rows, wide=wide, title="edgeship doctor",
                              caption=f"* needed to compress {model} for {device}"
                              if needed else None), wide)
        fixes = [(f.name, f.fix) for f in found if not f.present and not f.optional and f.fix]
        for name, fix in fixes:
            err_console.print(f"  {name} missing. Fix: {fix}", highlight=False)
        if not fixes:
            err_console.print("everything edgeship uses is installed", highlight=False)
    if missing:
        raise typer.Exit(4)

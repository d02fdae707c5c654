"""`edgeship inspect`: show a model's inputs, outputs and the backend that runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)


def inspect(
    model: Annotated[Path, typer.Argument(help="Model file: .onnx, .xml (OpenVINO IR) or .tflite.")],
    backend: o.Backend = None,
    json_out: o.Json = False,
) -> None:
    """Load MODEL and describe its inputs, outputs, backend and manifest."""
    from edgeship.cli.render import err_console
    from edgeship.inspect import inspect_model
    from rich.table import Table

    info = inspect_model(model, backend=backend)
    if json_out:
        typer.echo(json.dumps(info))
        return
    be = info["backend"]
    table = Table(title=f"{model.name} — {be['backend']} {be['version']} on {be['device']}")
    for col in ("", "name", "shape", "dtype"):
        table.add_column(col)
    for kind in ("inputs", "outputs"):
        for spec in info[kind]:
            shape = "×".join("?" if d is None else str(d) for d in spec["shape"])
            table.add_row(kind[:-1], spec["name"], shape, spec["dtype"])
    err_console.print(table)
    err_console.print(f"size: {info['size_bytes'] / 1e6:.3g} MB")

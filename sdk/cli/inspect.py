"""`edgeship inspect`: show a model's inputs, outputs, precision, cost and the backend that runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)


def inspect(
    model: Annotated[Path, typer.Argument(help="Model file: .onnx, .xml (OpenVINO IR) or .tflite.")],
    backend: o.Backend = None,
    input_shape: o.InputShape = None,
    json_out: o.Json = False,
) -> None:
    """Load MODEL and describe its inputs, outputs, precision, MACs, backend and manifest."""
    from edgeship.cli.render import err_console
    from edgeship.inspect import inspect_model
    from edgeship.runtime.inputs import parse_input_shapes
    from rich.table import Table

    shapes = parse_input_shapes(input_shape or []) or None
    info = inspect_model(model, backend=backend, input_shapes=shapes)
    if json_out:
        typer.echo(json.dumps(info))
        return
    be = info["backend"]
    table = Table(title=f"{model.name} — {be['backend']} {be['version']} on {be['device']}")
    for col in ("", "name", "shape", "dtype"):
        table.add_column(col)
    for kind in ("inputs", "outputs"):
        for spec in info[kind]:
            shape = _shape(spec["shape"])
            if spec.get("run_shape") and list(spec["run_shape"]) != list(spec["shape"]):
                shape += f" (runs at {_shape(spec['run_shape'])})"
            table.add_row(kind[:-1], spec["name"], shape, _dtype(spec))
    err_console.print(table)
    if be.get("details", {}).get("io"):  # the runtime maps the file's tensors (iomap.py)
        err_console.print(f"shown as {be['details']['io']}")
    precision = info["precision"]
    if precision:
        from edgeship.precision import Precision

        fields = {k: v for k, v in precision.items() if k != "quantized"}
        err_console.print(f"precision: {Precision(**fields).summary()}")
    macs = info["macs"]
    err_console.print("MACs: " + (f"{macs / 1e6:,.1f} M" if macs is not None else "unknown")
                      + (f" ({info['macs_unknown']})" if info["macs_unknown"] else ""))
    err_console.print(f"size: {info['size_bytes'] / 1e6:.3g} MB")


def _shape(dims: list[Any]) -> str:
    return "×".join("?" if d is None or isinstance(d, str) else str(d) for d in dims) or "scalar"


def _dtype(spec: dict[str, Any]) -> str:
    """The tensor's real dtype; quantized TFLite I/O also says how callers feed it."""
    if spec.get("storage_dtype") and spec.get("quantization"):
        scale, zero_point = spec["quantization"]
        return (f"{spec['storage_dtype']} (scale {scale:.4g}, zero point {zero_point}; "
                f"fed and returned as {spec['dtype']})")
    return str(spec["dtype"])

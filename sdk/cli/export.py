"""`edgeship export`: convert a model to ONNX, OpenVINO IR or TFLite, parity-checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    model: Annotated[Path, typer.Argument(
        help="Model: .onnx, or a TorchScript / exported-program file (.pt, .pt2).")],
    to: Annotated[str, typer.Option("--to", help="onnx | openvino | tflite.")],
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Output model file (default: beside MODEL, the format's suffix).")
    ] = None,
    precision: Annotated[str, typer.Option(
        "--precision", help="fp32 | fp16 (OpenVINO, TFLite weights) | int8 (TFLite full-integer, "
        "needs --data).")] = "fp32",
    fp16: Annotated[bool, typer.Option("--fp16", help="Short for --precision fp16.")] = False,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Real model-ready samples (.npz with x, or an image folder): parity "
        "inputs and the int8 representative dataset.")] = None,
    input_shape: o.InputShape = None,
    input_value: o.InputValue = None,
    input_range: o.InputRange = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (TorchScript exporter).")] = 17,
    static_batch: Annotated[bool, typer.Option(
        "--static-batch", help="Keep the example's batch size instead of a dynamic batch.")] = False,
    dynamo: Annotated[bool, typer.Option(
        "--dynamo", help="torch.onnx's dynamo exporter (for models the tracer cannot handle).")
    ] = False,
    force: o.Force = False,
    json_out: o.Json = False,
    trust_model_code: o.TrustModelCode = False,
) -> None:
    """Export MODEL to another format, check its outputs against MODEL, write it with a manifest.

    Exit 4 when the target format cannot express an operation of the model or the outputs
    differ beyond tolerance (nothing is written then).
    """
    o.trust_model_code(trust_model_code)
    from edgeship.cli.render import err_console
    from edgeship.converters.export import export as run_export
    from edgeship.core.errors import ConfigError
    if fp16 and precision not in ("fp32", "fp16"):
        raise ConfigError(f"--fp16 and --precision {precision} contradict each other",
                          "pass one of them")
    o.refuse_output_over_inputs(output, model, data)
    shapes, fills = o.input_flags(input_shape, input_value, input_range)
    from edgeship.core.io import resolve_output
    from edgeship.runtime.formats import get_format

    fmt = get_format(to)
    target = resolve_output(output, model.with_name(fmt.filename(model.stem)), force=force,
                            model=True)
    err_console.print(f"exporting {model.name} to {to}…")
    artifact = run_export(
        model, to, target, precision="fp16" if fp16 else precision, data=data,
        input_shapes=shapes or None, input_fills=fills or None, opset=opset,
        dynamic_batch=not static_batch, dynamo=dynamo,
    )
    manifest = artifact.manifest
    if json_out:
        import json

        typer.echo(json.dumps({"model": str(artifact.path), "manifest": str(artifact.manifest_path),
                               **manifest.model_dump(by_alias=True, mode="json")}))
        return
    err_console.print(_table(artifact.path, manifest))


def _table(path: Path, manifest: Any) -> Any:
    from rich.table import Table

    parity = manifest.parity or {}
    table = Table(title=f"{path} ({manifest.format})", header_style="bold")
    table.add_column("output")
    table.add_column("max abs diff", justify="right")
    table.add_column("cosine (min)", justify="right")
    table.add_column("cosine (mean)", justify="right")  # what int8's tolerance gates
    table.add_column("top-1 agreement", justify="right")
    for out in parity.get("outputs", []):
        top1 = out["top1"]
        table.add_row(out["name"], f"{out['max_abs_diff']:.3g}", f"{out['cosine_min']:.6f}",
                      f"{out['cosine_mean']:.6f}", "–" if top1 is None else f"{100 * top1:.1f} %")
    table.caption = (f"✅ parity vs {parity.get('reference')} on {parity.get('samples')} samples "
                     f"({parity.get('random')} random, {parity.get('real')} real); files: "
                     f"{', '.join(manifest.files)} + manifest")
    return table

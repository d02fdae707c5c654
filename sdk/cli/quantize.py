"""`edgeship quantize`: int8 / fp16 / int4 with onnxruntime, OpenVINO (NNCF) or TFLite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)


def quantize(
    model: Annotated[Path, typer.Argument(help="Model: .onnx, OpenVINO .xml, or a torch file "
                                                 "(.pt2/.pt) for --backend tflite.")],
    mode: Annotated[str, typer.Option("--mode", help="static (int8, calibrated) | dynamic "
                                      "(onnxruntime; MatMul-heavy models) | fp16 (GPU targets).")
                    ] = "static",
    calib: Annotated[Optional[Path], typer.Option(
        "--calib", help="Calibration samples, model-ready (.npz with x, or image folder). "
        "Without it: random data and a loud warning.")] = None,
    per_channel: Annotated[bool, typer.Option("--per-channel/--per-tensor",
                                              help="Weight scales per output channel.")] = True,
    backend: Annotated[Optional[str], typer.Option(
        "--backend", help="onnxruntime | openvino | tflite (default from the model file).")
    ] = None,
    calibration: Annotated[str, typer.Option(
        "--calibration", help="minmax | entropy (onnxruntime) | percentile.")] = "minmax",
    symmetric: Annotated[Optional[bool], typer.Option(
        "--symmetric/--asymmetric", help="Activation ranges (default: the backend's).")] = None,
    reduce_range: Annotated[bool, typer.Option(
        "--reduce-range", help="7-bit weights (onnxruntime; x86 CPUs without VNNI).")] = False,
    clip_percentile: Annotated[Optional[float], typer.Option(
        "--clip-percentile", help="Clip weights at this percentile of |w| first (e.g. 99.99)."
    )] = None,
    weights_only: Annotated[Optional[str], typer.Option(
        "--weights-only", help="int4: 4-bit MatMul/Linear weights, fp32 activations.")] = None,
    group_size: Annotated[int, typer.Option(
        "--group-size", help="int4: input weights per scale (32, 64, 128).")] = 32,
    max_accuracy_drop: o.MaxAccuracyDrop = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Labelled data (.npz with x and y): accuracy before/after.")] = None,
    sensitivity: Annotated[bool, typer.Option(
        "--sensitivity", help="Per-layer sensitivity table + JSON (onnxruntime).")] = False,
    activations: Annotated[str, typer.Option(
        "--activations", help="uint8 (fast on x86) | int8 (onnxruntime).")] = "uint8",
    ort_format: Annotated[str, typer.Option("--ort-format", help="qdq | qoperator.")] = "qdq",
    calib_samples: Annotated[int, typer.Option(
        "--calib-samples", help="Use at most this many calibration samples.")] = 300,
    input_shape: o.InputShape = None,
    input_value: o.InputValue = None,
    input_range: o.InputRange = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output model path.")
                      ] = None,
    force: o.Force = False,
    json_out: o.Json = False,
    trust_model_code: o.TrustModelCode = False,
) -> None:
    """Quantize MODEL and write it with its manifest (default MODEL.int8.onnx beside it)."""
    o.trust_model_code(trust_model_code)
    from edgeship.cli.render import err_console
    from edgeship.converters.quantize import quantize as run_quantize
    from edgeship.core.errors import ConfigError

    drop = None
    if max_accuracy_drop is not None:
        try:
            drop = float(max_accuracy_drop)
        except ValueError:
            raise ConfigError(f"--max-accuracy-drop '{max_accuracy_drop}' is not a number",
                              "pass accuracy points, e.g. --max-accuracy-drop 1") from None
    o.refuse_output_over_inputs(output, model, calib, data)
    shapes, fills = o.input_flags(input_shape, input_value, input_range)
    from edgeship.runtime.formats import is_torch_file

    torch_file = is_torch_file(model)
    example = _example_input(input_shape) if torch_file else None
    output = _output(model, output, mode, backend, weights_only, force)
    with err_console.status(f"quantizing {model.name}…"):
        result = run_quantize(
            model, output, mode=mode, backend=backend, calib=calib, data=data,  # type: ignore[arg-type]
            per_channel=per_channel, calibration=calibration, symmetric=symmetric,  # type: ignore[arg-type]
            reduce_range=reduce_range, clip_percentile=clip_percentile,
            weights_only=weights_only, group_size=group_size, max_accuracy_drop=drop, sensitivity=sensitivity,  # type: ignore[arg-type]
            activations=activations, ort_format=ort_format, calib_samples=calib_samples,  # type: ignore[arg-type]
            example_input=example, input_shapes=shapes or None, input_fills=fills or None,
        )
    if json_out:
        import json

        typer.echo(json.dumps(result.to_dict()))
        return
    if result.sensitivity is not None and result.sensitivity.layers:
        typer.echo(result.sensitivity.table(), err=True)
    err_console.print(summary_table(result))


def _output(model: Path, output: Optional[Path], mode: str, backend: Optional[str],
            weights_only: Optional[str], force: bool) -> Path:
    """The quantized file under the one output rule (edgeship.core.io.resolve_output)."""
    from edgeship.core.io import resolve_output
    from edgeship.runtime.formats import BACKENDS, default_quantizer, quantized_suffix

    name = backend if backend in BACKENDS else default_quantizer(model) if backend is None \
        else "onnxruntime"  # an unknown --backend is refused with the quantize config's words
    tag = weights_only or {"static": "int8", "dynamic": "dynint8", "fp16": "fp16"}.get(mode, mode)
    default = model.with_name(f"{model.stem}.{tag}{quantized_suffix(name)}")
    return resolve_output(output, default, force=force, model=True)


def _example_input(shapes: Optional[list[str]]) -> Any:
    """--input-shape NAME=1,1,8,8 as the zero example a torch file is traced with (tflite)."""
    if not shapes:
        return None
    from edgeship.runtime.inputs import parse_input_shapes

    parsed = list(parse_input_shapes(shapes).values())
    import torch

    tensors = tuple(torch.zeros(s) for s in parsed)
    return tensors[0] if len(tensors) == 1 else tensors


def summary_table(result: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"quantized → {result.path}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    cfg = result.config
    table.add_row("backend / mode", f"{cfg.backend} / {cfg.weights_only or cfg.mode}")
    table.add_row("stored as", ", ".join(f"{k}={v}" for k, v in result.params.items()
                                         if k in ("format", "weights", "activations")))
    table.add_row("size", f"{result.source_size_bytes / 1e6:.3g} MB → "
                  f"{result.size_bytes / 1e6:.3g} MB ({result.size_ratio:.0%})")
    if result.calibration:
        cal = result.calibration
        table.add_row("calibration", f"{cal['samples']} samples from {cal['source']} "
                      f"({cal['method']})" + ("  ⚠ RANDOM" if cal["random"] else ""))
    acc = result.accuracy
    if acc:
        table.add_row("accuracy", f"{acc['fp32']:.2%} → {acc['quantized']:.2%} "
                      f"(drop {acc['drop_points']:.2f} pt on {acc['samples']} samples)")
    kept = result.params.get("kept_fp32")
    if kept:
        table.add_row("kept in fp32", ", ".join(kept))
    if result.sensitivity_path:
        table.add_row("sensitivity", str(result.sensitivity_path))
    if result.warnings:
        table.add_row("warnings", f"{len(result.warnings)} (above; recorded in the manifest)")
    table.add_row("manifest", str(result.manifest_path))
    return table

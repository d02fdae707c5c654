"""`edgeship distill --teacher T --student S --data DATA ...`: thin wrapper over distill()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_cmd)


def distill_cmd(
    teacher: Annotated[str, typer.Option(
        "--teacher", help="Teacher: .onnx (run with onnxruntime), .xml, .tflite, or a torch file "
                          "(.pt2 torch.export, .pt TorchScript).")],
    student: Annotated[str, typer.Option(
        "--student", help="Student: a torch file (.pt2 torch.export program, .pt TorchScript), an "
                          ".onnx (converted with onnx2torch), or 'pruned' / 'pruned:R': the "
                          "teacher with a share R of each layer's channels removed (R defaults "
                          "to --sparsity; the teacher must then be .onnx/.pt2/.pt).")],
    data: Annotated[Path, typer.Option(
        "--data", help=".npz with x (model-ready samples) and, optionally, y (labels).")],
    temperature: Annotated[float, typer.Option(
        "--temperature", help="Softmax temperature T (> 0) of the soft targets.")] = 4.0,
    alpha: Annotated[float, typer.Option(
        "--alpha", help="Weight of the teacher term; 1 - alpha goes to the labels.")] = 0.7,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs.")] = 10,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (cosine decay).")] = 1e-3,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd | adam | adamw.")] = "adam",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Training batch size.")] = 64,
    sparsity: Annotated[float, typer.Option(
        "--sparsity", help="Channel share removed for --student pruned.")] = 0.5,
    val_data: Annotated[Optional[Path], typer.Option(
        "--val-data", help=".npz for validation; it also picks the epoch kept, so report "
                           "accuracy on other data [default: 10% of labelled --data held out].")
    ] = None,
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Student model: .onnx or .pt2 [default: TEACHER-distilled.onnx].")
    ] = None,
    force: o.Force = False,
    json_out: o.Json = False,
    trust_model_code: o.TrustModelCode = False,
) -> None:
    """Train a student to reproduce a teacher: alpha * KL(soft targets) * T^2 + (1 - alpha) * CE.

    Example: edgeship distill --teacher model.onnx --student pruned:0.5 --data train.npz -o small.onnx
    """
    o.trust_model_code(trust_model_code)
    from edgeship.cli.comparison import comparison_table
    from edgeship.cli.render import err_console
    from edgeship.converters.distill import distill
    from edgeship.converters.prune import default_output
    from edgeship.core.io import resolve_output

    target = resolve_output(output, default_output(teacher, "distilled"), force=force,
                            model=True)

    result = distill(
        teacher, student, data, temperature=temperature, alpha=alpha, epochs=epochs, lr=lr,
        optimizer=optimizer, batch_size=batch_size, sparsity=sparsity, val_data=val_data,
        output=target, progress=not json_out,
    )
    if json_out:
        typer.echo(json.dumps(result.to_dict()))
        return
    err_console.print(comparison_table(result.before, result.after,
                                       f"teacher vs student after {epochs} epochs",
                                       columns=("teacher", "student")))
    err_console.print(f"wrote {result.output}")

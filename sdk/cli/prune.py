"""`edgeship prune MODEL --sparsity R [--structured | --neurons] ...`: thin wrapper over prune()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from edgeship.cli import options as o


def register(app: typer.Typer) -> None:
    app.command("prune")(prune_cmd)


def parse_ratios(values: list[str]) -> dict[str, float]:
    """Repeated ``NAME=RATIO`` flags as {name: ratio}."""
    from edgeship.core.errors import ConfigError

    ratios = {}
    for value in values:
        name, sep, ratio = value.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            ratios[name] = float(ratio)
        except ValueError:
            raise ConfigError(f"bad --per-layer '{value}'",
                              "write it as LAYER=RATIO, e.g. --per-layer 3=0.3") from None
    return ratios


def example_from_shapes(values: list[str]) -> Any:
    """One random batch of the shape --input-shape gives (TorchScript records none)."""
    if not values:
        return None
    import numpy as np
    from edgeship.runtime.inputs import parse_input_shapes

    shapes = list(parse_input_shapes(values).values())
    return np.random.default_rng(0).random(shapes[0], dtype=np.float32)


def prune_cmd(
    model: Annotated[Path, typer.Argument(
        help="Model to prune: .onnx (brought into torch with onnx2torch, parity-checked), "
             ".pt2 (torch.export) or .pt (TorchScript).")],
    sparsity: Annotated[float, typer.Option(
        "--sparsity", help="Share to remove, in (0, 1): of weights (unstructured, default) or of "
                           "each layer's channels/neurons (--structured, --neurons).")] = 0.5,
    structured: Annotated[bool, typer.Option(
        "--structured", help="Remove whole channels (torch-pruning dependency graph): smaller and "
                             "faster on every runtime.")] = False,
    neurons: Annotated[bool, typer.Option(
        "--neurons", help="Remove hidden neurons of Linear layers only.")] = False,
    importance: Annotated[str, typer.Option(
        "--importance", help="l1 | l2 (weight magnitude) | taylor (|w x grad|, needs "
                             "--finetune-data).")] = "l1",
    scope: Annotated[Optional[str], typer.Option(
        "--scope", help="global: rank across layers; layer: the same share in each layer "
                        "(default: global unstructured, layer structured).")] = None,
    per_layer: Annotated[Optional[list[str]], typer.Option(
        "--per-layer", help="LAYER=RATIO: this layer's own share; repeatable.")] = None,
    protect: Annotated[Optional[list[str]], typer.Option(
        "--protect", help="Layer to leave unpruned; repeatable. The output layer is always "
                          "protected.")] = None,
    finetune_data: Annotated[Optional[Path], typer.Option(
        "--finetune-data", help=".npz with x (model-ready samples) and y (labels) to fine-tune "
                                "on after pruning.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Fine-tuning epochs.")] = 0,
    lr: Annotated[float, typer.Option("--lr", help="Fine-tuning learning rate.")] = 1e-3,
    eval_data: Annotated[Optional[Path], typer.Option(
        "--eval-data", help=".npz with x and y: report accuracy before and after.")] = None,
    input_shape: o.InputShape = None,
    output: Annotated[Optional[Path], typer.Option(
        "-o", "--output", help="Pruned model: .onnx or .pt2 [default: MODEL-pruned.onnx].")] = None,
    force: o.Force = False,
    json_out: o.Json = False,
    trust_model_code: o.TrustModelCode = False,
) -> None:
    """Prune MODEL and report params, MACs and size before and after.

    Unstructured pruning zeroes weights: dense runtimes do not run that faster, it only
    compresses better. --structured removes channels, which is what makes a model faster.
    """
    o.trust_model_code(trust_model_code)
    from edgeship.cli.comparison import comparison_table
    from edgeship.cli.render import err_console
    from edgeship.converters.prune import default_output, prune
    from edgeship.core.io import resolve_output

    target = resolve_output(output, default_output(model, "pruned"), force=force, model=True)

    result = prune(
        model, sparsity, structured=structured, neurons=neurons, importance=importance,
        scope=scope, per_layer=parse_ratios(per_layer or []), protect=tuple(protect or ()),
        example_input=example_from_shapes(input_shape or []), finetune_data=finetune_data,
        epochs=epochs, lr=lr, eval_data=eval_data, output=target,
        progress=not json_out,
    )
    if json_out:
        typer.echo(json.dumps(result.to_dict()))
        return
    err_console.print(comparison_table(
        result.before, result.after, f"{result.config.method} pruning, sparsity "
        f"{result.config.sparsity:g} (achieved {result.achieved:.1%})"))
    for note in result.notes:
        err_console.print(f"[yellow]note:[/yellow] {note}")
    err_console.print(f"wrote {result.output}")


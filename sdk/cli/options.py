"""Options shared by several commands: budgets, inputs, output format, --provision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# Budgets are parsed by Budget itself (its errors name the flag); the metavar shows their type.
MaxLatency = Annotated[Optional[str], typer.Option(
    "--max-latency-ms", metavar="<float>", help="Latency budget (ms).")]
MaxMemory = Annotated[Optional[str], typer.Option(
    "--max-memory-mb", metavar="<float>", help="Peak memory budget (MB).")]
MaxSize = Annotated[Optional[str], typer.Option(
    "--max-size-mb", metavar="<float>", help="Model size budget (MB).")]
MaxAccuracyDrop = Annotated[Optional[str], typer.Option(
    "--max-accuracy-drop", metavar="<float>", help="Accuracy drop budget (points).")]
Percentile = Annotated[str, typer.Option(
    "--percentile", metavar="<int>", help="Latency percentile: 50, 90 or 99.")]
InputShape = Annotated[
    Optional[list[str]],
    typer.Option("--input-shape", help="NAME=1,3,224,224 fixes dynamic dimensions; repeatable."),
]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing output file.")]
Wide = Annotated[bool, typer.Option(
    "--wide", help="Show every table column, however narrow the terminal.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
TrustModelCode = Annotated[bool, typer.Option(
    "--trust-model-code",
    help="Allow loading a torch file (.pt/.pth/.pt2/.ts). This EXECUTES CODE FROM THE FILE "
         "(torch unpickles and evaluates it): pass it only for files you made or trust.")]


def trust_model_code(trusted: bool) -> None:
    """Apply --trust-model-code for this command (the CLI runs one command per process)."""
    from edgeship.converters.export.source import set_trust_model_code

    set_trust_model_code(trusted)
Threads = Annotated[Optional[int], typer.Option("--threads", help="Inference threads.")]
Backend = Annotated[
    Optional[str], typer.Option("--backend", help="onnxruntime|openvino|tflite[:DEVICE].")
]


def make_budget(
    max_latency_ms: Optional[str],
    max_memory_mb: Optional[str],
    max_size_mb: Optional[str],
    max_accuracy_drop: Optional[str] = None,
    percentile: str = "50",
    defaults: Optional[dict[str, float]] = None,
):  # type: ignore[no-untyped-def]
    """A Budget from CLI strings (validated there), filling gaps from a profile's defaults."""
    from edgeship.budget import Budget

    d = defaults or {}
    given = {"max_latency_ms": max_latency_ms, "max_memory_mb": max_memory_mb,
             "max_size_mb": max_size_mb, "max_accuracy_drop": max_accuracy_drop}
    # the CLI's strings as they are: Budget parses and validates each limit (one error path)
    limits: dict[str, Any] = {k: v if v is not None else d.get(k) for k, v in given.items()}
    return Budget(**limits, percentile=percentile)


InputValue = Annotated[
    Optional[list[str]],
    typer.Option("--input-value", help="NAME=VALUE feeds this value, broadcast to the input's "
                 "shape (a sample rate sr=16000, a zero state state=0); repeatable."),
]
InputRange = Annotated[
    Optional[list[str]],
    typer.Option("--input-range", help="NAME=LOW:HIGH feeds uniform random values in [LOW, HIGH] "
                 "(integers include HIGH: token ids input_ids=0:30521); repeatable."),
]
InputData = Annotated[
    Optional[Path],
    typer.Option("--data", help=".npz of model-ready inputs: 'x', or one array per input name "
                 "(rank-0 scalars and state tensors too); inputs it lacks are made up."),
]


def input_flags(
    input_shape: Optional[list[str]],
    input_value: Optional[list[str]] = None,
    input_range: Optional[list[str]] = None,
):  # type: ignore[no-untyped-def]
    """``(shapes, fills)`` from the shared input flags: {name: shape}, {name: InputFill}."""
    from edgeship.runtime.inputs import parse_input_fills, parse_input_shapes

    return (parse_input_shapes(input_shape or []),
            parse_input_fills(input_value or [], input_range or []))


def refuse_output_over_inputs(output: Optional[Path], *inputs: Optional[Path]) -> None:
    """``-o`` must not name a file the command reads (the model, its weights or manifest, the
    data): writing it would destroy the user's input."""
    if output is None:
        return
    from edgeship.core.errors import ConfigError
    from edgeship.runtime.formats import files_of
    from edgeship.runtime.manifest import manifest_path

    out = Path(output).resolve()
    for given in inputs:
        if given is None:
            continue
        given = Path(given)
        files = [*files_of(given), manifest_path(given)]
        for f in files:
            if f.resolve() == out or (f.exists() and out.exists() and out.samefile(f)):
                raise ConfigError(f"-o {output} is the input file '{f}': writing it would "
                                  "destroy it", "write the output to another path")


Provision = Annotated[
    bool,
    typer.Option("--provision",
                 help="First install numpy and the backend into a venv on the device "
                 "(~/.cache/edgeship/venv) from wheels downloaded here for its platform; the "
                 "device needs no internet.  The agent then runs with that venv."),
]


def provision_for(target: Any, model: Path, backend: Optional[str]) -> None:
    """``--provision`` of deploy and bench: install what MODEL needs on the device first."""
    from edgeship.cli.render import err_console
    from edgeship.provisioning import backends_for, provision

    with err_console.status(f"provisioning {target.name} (wheels for its platform)…"):
        done = provision(target, backends_for(model, backend))
    err_console.print(f"✅ {done.summary()}")

"""`edgeship provision --target HOST` (the `--provision` flag of deploy and bench: cli/options.py)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from edgeship.cli import options as o
from edgeship.cli import remote as r


def register(app: typer.Typer) -> None:
    app.command("provision")(provision_command)


def provision_command(
    target: Annotated[str, typer.Option("--target", help="user@host[:port] or an ~/.ssh/config "
                                        "Host alias.")],
    backend: Annotated[
        Optional[list[str]],
        typer.Option("--backend", metavar="NAME", help="onnxruntime | openvino | tflite; "
                     "repeatable (default onnxruntime)."),
    ] = None,
    upgrade: Annotated[
        bool, typer.Option("--upgrade", help="Install the newest wheels even if the venv "
                           "already has the packages.")
    ] = False,
    device: Annotated[Optional[str], typer.Option(
        "--device", help="The device's profile (name or YAML): its software facts (the OS's "
        "Python, a vendor wheel index such as Jetson's) shape what is installed.")] = None,
    accept_new_host_key: r.AcceptNewHostKey = False,
    json_out: o.Json = False,
) -> None:
    """Install numpy and backends into ~/.cache/edgeship/venv on a device without internet:
    wheels are downloaded here for the device's CPU, Python and glibc, then uploaded."""
    import json

    from edgeship.cli.render import err_console
    from edgeship.profiles import load_profile
    from edgeship.provisioning import provision

    profile = load_profile(device) if device else None
    with r.open_cli_target(target, accept_new_host_key) as tgt, \
            err_console.status(f"provisioning {target} (wheels for its platform)…"):
        done = provision(tgt, backend or ["onnxruntime"], upgrade=upgrade, profile=profile)
    if json_out:
        typer.echo(json.dumps(done.to_dict()))
    err_console.print(f"✅ {done.summary()}")

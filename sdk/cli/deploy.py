"""`edgeship deploy`: put a model and the runtime into a device's cache over SFTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from edgeship.cli import options as o
from edgeship.cli import remote as r
from edgeship.cli.options import Provision, provision_for


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)


def deploy(
    model: Annotated[Path, typer.Argument(help="Model file: .onnx, .xml (OpenVINO IR) or .tflite.")],
    target: Annotated[str, typer.Option("--target", help="user@host[:port] or an ~/.ssh/config "
                                        "Host alias.")],
    remote_dir: Annotated[
        Optional[str],
        typer.Option("--dir", help="Cache directory on the device (default ~/.cache/edgeship)."),
    ] = None,
    accept_new_host_key: r.AcceptNewHostKey = False,
    provision: Provision = False,
    backend: o.Backend = None,
    json_out: o.Json = False,
) -> None:
    """Copy MODEL (+ manifest) and edgeship.runtime to the device; files already there with the
    same sha256 are skipped.  Prints where the model is and how many bytes were sent."""
    import json

    from edgeship.cli.render import err_console
    from edgeship.core.errors import ConfigError
    from edgeship.targets.deploy import deploy as deploy_model

    python = "python3"
    if provision:  # install numpy + the backend first, then deploy over the same connection
        if target in ("", "local"):
            raise ConfigError("--provision needs a device, not 'local'",
                              "pass --target user@host[:port] or a Host alias")
        with r.open_cli_target(target, accept_new_host_key, remote_dir=remote_dir) as tgt:
            provision_for(tgt, model, backend)
            with err_console.status(f"deploying {model.name} to {target}…"):
                report = deploy_model(model, tgt)
            python = tgt.python
    else:
        with err_console.status(f"deploying {model.name} to {target}…"):
            report = deploy_model(model, target, remote_dir=remote_dir,
                                  accept_new_host_key=accept_new_host_key)
    if json_out:
        typer.echo(json.dumps(report.to_dict()))
    else:
        err_console.print(f"✅ {report.summary()}")
        err_console.print(f"   model:   {report.model_path}")
        err_console.print(f"   runtime: {report.runtime_path} (Python {report.python}"
                          + (f", numpy {report.numpy})" if report.numpy else ")"))
        err_console.print(f"   run it:  PYTHONPATH={report.runtime_path} {python} -m "
                          f"edgeship.runtime.bench {report.model_path}")

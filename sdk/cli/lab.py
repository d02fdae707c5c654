"""`edgeship lab`: a device lab on a Ray cluster -- register devices, see who holds what."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from edgeship.cli import options as o

Address = Annotated[Optional[str], typer.Option(
    "--address", help="Ray cluster address (default: RAY_ADDRESS, or this machine's cluster).")]


def register(app: typer.Typer) -> None:
    lab = typer.Typer(help="A device lab shared through Ray: every device is a Ray resource "
                           "leased by one measurement at a time (pip install 'edgeship[ray]').",
                      no_args_is_help=True)
    lab.command("register")(register_devices)
    lab.command("status")(show_status)
    app.add_typer(lab, name="lab")


def register_devices(
    hosts_file: Annotated[Path, typer.Argument(help="One target per line (# comments), as for "
                                                    "bench --hosts-file.")],
    address: Address = None,
    cooldown: Annotated[float, typer.Option(
        "--cooldown", help="Seconds a device rests between two leases.")] = 0.0,
    json_out: o.Json = False,
) -> None:
    """Register the devices of HOSTS_FILE in the lab (each must be a resource of the cluster:
    the message says how to declare the missing ones)."""
    import json

    from edgeship.cli.render import err_console
    from edgeship.lab import register as do_register

    devices = do_register(hosts_file, address, cooldown)
    if json_out:
        typer.echo(json.dumps({"devices": devices}))
    else:
        err_console.print(f"lab: {len(devices)} device(s) registered: {', '.join(devices)}",
                          highlight=False)


def show_status(address: Address = None, json_out: o.Json = False) -> None:
    """Every device of the lab, who holds it now, and how many wait for it."""
    import json
    import time

    from edgeship.cli.render import err_console
    from edgeship.lab import status

    found = status(address)
    if json_out:
        typer.echo(json.dumps(found))
        return
    from rich.table import Table

    table = Table(title=f"edgeship lab ({found['leases']} leases so far)", header_style="bold")
    for col in ("device", "in cluster", "cooldown s", "held by", "for", "since s", "waiting"):
        table.add_column(col)
    now = time.time()
    for d in found["devices"]:
        h = d["holder"]
        table.add_row(d["device"], "yes" if d["in_cluster"] else "NO", f"{d['cooldown_s']:g}",
                      f"{h['user']}@{h['host']} pid {h['pid']}" if h else "free",
                      h["what"] if h else "", f"{now - h['since']:.0f}" if h else "",
                      str(d["waiting"]))
    err_console.print(table)

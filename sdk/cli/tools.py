"""`edgeship tools`: install and list converter tools that live in their own environments."""

from __future__ import annotations

from typing import Annotated

import typer

tools_app = typer.Typer(help="Converter tools kept in their own environments (e.g. onnx2tf).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tools_app, name="tools")


@tools_app.command("install")
def install(
    name: Annotated[str, typer.Argument(help="Tool to install: onnx2tf.")],
    force: Annotated[bool, typer.Option("--force", help="Re-create the environment.")] = False,
) -> None:
    """Create NAME's own virtual environment under the user cache dir and pip-install it there."""
    from edgeship.cli.render import err_console
    from edgeship.converters.export.tools import install_tool, tool_version

    env = install_tool(name, force=force)
    err_console.print(f"✅ {name} {tool_version(env)} ready in {env}")


@tools_app.command("list")
def list_tools() -> None:
    """Show each tool, what it is for, and whether it is installed."""
    from edgeship.converters.export.tools import TOOLS, tool_env, tool_version

    for tool in TOOLS.values():
        env = tool_env(tool.name)
        state = f"installed ({tool_version(env)}, {env})" if env else (
            f"not installed: edgeship tools install {tool.name}")
        typer.echo(f"{tool.name}\t{tool.purpose}\t{state}")

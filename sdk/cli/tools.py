"""`edgeship tools`: install and list the converters that cannot be plain dependencies."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

tools_app = typer.Typer(help="Converters that are not plain dependencies (onnx2tf, onnx2torch, "
                             "litert-torch): install them, list them.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(tools_app, name="tools")


@tools_app.command("install")
def install(
    name: Annotated[Optional[str], typer.Argument(
        help="'converters' (all of them), or one: onnx2tf, onnx2torch, litert-torch.")] = None,
    all_tools: Annotated[bool, typer.Option("--all", help="Same as NAME 'converters'.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Re-create an own environment.")] = False,
) -> None:
    """Install converters: onnx2tf in its own virtual environment under the user cache dir,
    onnx2torch and litert-torch beside edgeship with exactly the packages they use (--no-deps)."""
    from edgeship.cli.render import err_console
    from edgeship.converters.export.tools import CONVERTERS, get_tool, install_tool, tool_version
    from edgeship.core.errors import ConfigError

    if name is None and not all_tools:
        raise ConfigError("say which converter to install",
                          "run edgeship tools install converters (all), or name one")
    names = CONVERTERS if all_tools or name in ("converters", "all") else (get_tool(str(name)).name,)
    for tool in names:
        err_console.print(f"installing {tool}…", highlight=False)
        env = install_tool(tool, force=force)
        err_console.print(f"✅ {tool} {tool_version(env, tool)} ready in {env}", highlight=False)


@tools_app.command("list")
def list_tools() -> None:
    """Show each converter, what it is for, and whether it is installed (see also doctor)."""
    from edgeship.converters.export.tools import TOOLS, tool_env, tool_version

    for tool in TOOLS.values():
        env = tool_env(tool.name)
        state = f"installed ({tool_version(env, tool.name)}, {env})" if env else (
            f"not installed: edgeship tools install {tool.name}")
        typer.echo(f"{tool.name}\t{tool.purpose}\t{state}")

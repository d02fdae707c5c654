"""The ``edgeship`` command.  Each command module is a thin wrapper over one API function.

Errors print one line (problem and fix) on stderr and exit with the code DESIGN.md gives:
0 ok, 1 budget missed, 2 bad input or usage, 3 target failed, 4 missing dependency/unsupported.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional

# Command modules, each with ``register(app)``; discovery by convention, no central switch.
COMMAND_MODULES = ["bench", "deploy", "inspect", "profiles", "prune", "distill", "report", "quantize",
                   "export", "compress", "provision", "tools", "lab"]


def build_app():  # type: ignore[no-untyped-def]
    import typer

    app = typer.Typer(
        name="edgeship",
        help="Compress a model for an edge device, benchmark it on the device, prove it fits.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    @app.callback()
    def _root() -> None:
        """Compress a model for an edge device, benchmark it on the device, prove it fits."""

    for name in COMMAND_MODULES:
        importlib.import_module(f"edgeship.cli.{name}").register(app)
    return app


def main(argv: Optional[list[str]] = None) -> None:
    try:
        import typer
    except ImportError:
        print("error: the edgeship CLI is not installed. Fix: pip install 'edgeship[cli]'",
              file=sys.stderr)
        sys.exit(4)
    from edgeship.errors import EdgeshipError

    app = build_app()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="edgeship", standalone_mode=False)
    except EdgeshipError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        code = 130
    except OSError as exc:  # disk full, permissions: name it, no traceback
        print(f"error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''}). "
              "Fix: check free space and permissions", file=sys.stderr)
        code = 2
    except Exception as exc:
        code = _click_error(exc)
    sys.exit(code if isinstance(code, int) else 0)


def _click_error(exc: Exception) -> int:
    """Print click's usage errors on one line (typer vendors click, so match by class name)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoArgsIsHelpError" in names:  # `edgeship` alone, or a command group alone
        ctx = getattr(exc, "ctx", None)
        print(ctx.get_help() if ctx else "", file=sys.stderr)
        return 2
    if "UsageError" in names:
        ctx = getattr(exc, "ctx", None)
        cmd = ctx.command_path if ctx else "edgeship"
        message = exc.format_message()  # type: ignore[attr-defined]
        print(f"error: {' '.join(message.split())}. Fix: see '{cmd} --help'", file=sys.stderr)
        return 2
    if "Abort" in names:
        print("error: aborted", file=sys.stderr)
        return 130
    raise exc

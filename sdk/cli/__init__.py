"""The ``edgeship`` command.  Each command module is a thin wrapper over one API function.

Errors print one line (problem and fix) on stderr and exit with the code DESIGN.md gives:
0 ok, 1 budget missed, 2 bad input or usage, 3 target failed, 4 missing dependency/unsupported,
70 an unexpected exception (its traceback saved to a file, see ``edgeship.cli.crash``),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Optional

# Command modules, each with ``register(app)``; discovery by convention, no central switch.
COMMAND_MODULES = ["bench", "deploy", "inspect", "profiles", "prune", "distill", "report", "quantize",
                   "export", "compress", "provision", "tools", "doctor", "lab"]


def build_app():  # type: ignore[no-untyped-def]
    import typer

    app = typer.Typer(
        name="edgeship",
        help="Compress a model for an edge device, benchmark it on the device, prove it fits.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback(invoke_without_command=True)
    def _root(
        version: bool = typer.Option(False, "--version", help="Print edgeship's version and exit."),
        verbose: bool = typer.Option(False, "-v", "--verbose",
                                     help="Show third-party progress bars, logs and warnings."),
    ) -> None:
        """Compress a model for an edge device, benchmark it on the device, prove it fits."""
        if version:
            from edgeship import __version__

            typer.echo(f"edgeship {__version__}")
            raise typer.Exit(0)
        quiet_third_party(verbose)

    for name in COMMAND_MODULES:
        importlib.import_module(f"edgeship.cli.{name}").register(app)
    return app


def quiet_third_party(verbose: bool) -> None:
    """Without -v, converters' progress bars, logs and warnings stay out of the output (the
    converters read EDGESHIP_VERBOSE: converters/export/base.py's captured_output)."""
    import logging
    import os
    import warnings

    os.environ["EDGESHIP_VERBOSE"] = "1" if verbose else "0"
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow/LiteRT C++ logs
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")  # torch/onnx/NNCF deprecation and tracer warnings
    for name in ("nncf", "torch", "torch_pruning", "absl", "tensorflow", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _Interrupted(Exception):
    """Ctrl-C, carried past typer (which turns KeyboardInterrupt into a silent exit 130)."""


def main(argv: Optional[list[str]] = None) -> None:
    try:
        import typer
    except ImportError:
        print("error: the edgeship CLI is not installed. Fix: pip install 'edgeship[cli]'",
              file=sys.stderr)
        sys.exit(4)
    from edgeship.cli.crash import EXIT_INTERNAL, EXIT_INTERRUPTED, report_crash
    from edgeship.core.errors import EdgeshipError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = typer.main.get_command(build_app())
        invoke = command.invoke

        def invoke_reporting_interrupts(ctx: Any) -> Any:
            try:
                return invoke(ctx)
            except KeyboardInterrupt:
                raise _Interrupted() from None

        command.invoke = invoke_reporting_interrupts  # type: ignore[method-assign]
        code = command.main(args=args, prog_name="edgeship", standalone_mode=False)
    except EdgeshipError as exc:
        if exc.exit_code == EXIT_INTERNAL:  # a bug reported by the measurement agent
            code = report_crash(exc, args)
        else:
            print(f"error: {exc.one_line()}", file=sys.stderr)
            code = exc.exit_code
    except (KeyboardInterrupt, _Interrupted):
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except OSError as exc:  # disk full, permissions: name it, no traceback
        print(f"error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''}). "
              "Fix: check free space and permissions", file=sys.stderr)
        code = 2
    except Exception as exc:
        code = _click_error(exc)
        if code is None:
            code = report_crash(exc, args)
    finally:
        _forget_trust()
    sys.exit(code if isinstance(code, int) else 0)


def _forget_trust() -> None:
    """--trust-model-code holds for one command: in-process callers (tests, notebooks) run more."""
    source = sys.modules.get("edgeship.converters.export.source")
    if source is not None:
        source.set_trust_model_code(False)


def _click_error(exc: Exception) -> Optional[int]:
    """Print click's usage errors on one line (typer vendors click, so match by class name);
    None for anything else."""
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
        print("interrupted", file=sys.stderr)
        return 130
    return None

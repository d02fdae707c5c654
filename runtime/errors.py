"""The error hierarchy's on-device half.

The runtime is copied to devices without the rest of edgeship, so the root of the hierarchy lives
here and ``edgeship.core.errors`` extends it.  Every error carries the problem and the fix, and the
CLI exit code it maps to (DESIGN.md: 1 budget, 2 bad input, 3 target, 4 dependency/unsupported;
70 for an unexpected exception, 130 interrupted).
"""

from __future__ import annotations

EXIT_INTERNAL = 70  # EX_SOFTWARE (sysexits.h): an unexpected exception, a bug in edgeship
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what shells report for Ctrl-C


class EdgeshipError(Exception):
    """Base of every error edgeship raises on purpose."""

    exit_code = 2
    traceback_text: str = ""  # InternalError from a device: the traceback the agent sent back

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem.rstrip(". ")
        self.fix = fix.rstrip(". ")
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The problem and its fix on a single line, as the CLI prints it."""
        text = " ".join(self.problem.split())
        if self.fix:
            text += f". Fix: {' '.join(self.fix.split())}"
        return text


class ConfigError(EdgeshipError):
    """Bad arguments, options, profiles, budgets or data."""


class ModelError(EdgeshipError):
    """The model file is missing, corrupt, or not what its suffix says."""


class UnsupportedError(EdgeshipError):
    """The operation, format, device or precision is not supported here."""

    exit_code = 4


class MissingBackendError(UnsupportedError):
    """A backend package is not installed; the message names the pip package."""


class InternalError(EdgeshipError):
    """An unexpected exception (a bug in edgeship), reported by the measurement agent."""

    exit_code = EXIT_INTERNAL


__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "ConfigError",
    "EdgeshipError",
    "InternalError",
    "MissingBackendError",
    "ModelError",
    "UnsupportedError",
]

"""edgeship's error hierarchy (DESIGN.md, Errors).

Each class maps to one CLI exit code; messages name the problem and the fix on one line.
"""

from __future__ import annotations

from edgeship.runtime.errors import (
    ConfigError,
    EdgeshipError,
    InternalError,
    MissingBackendError,
    ModelError,
    UnsupportedError,
)


class OutputMismatchError(EdgeshipError):
    """A converted model's outputs differ from its source's beyond tolerance."""

    exit_code = 4


class TargetError(EdgeshipError):
    """Something failed on or on the way to a target device."""

    exit_code = 3


class ConnectionFailed(TargetError):
    """The target could not be reached or the connection dropped."""


class HostKeyError(TargetError):
    """The target's host key is unknown or changed."""


class RemoteCommandFailed(TargetError):
    """A command on the target exited non-zero or timed out."""


class BudgetExceeded(EdgeshipError):
    """A measurement missed a budget."""

    exit_code = 1


__all__ = [
    "BudgetExceeded",
    "ConfigError",
    "ConnectionFailed",
    "EdgeshipError",
    "HostKeyError",
    "InternalError",
    "MissingBackendError",
    "ModelError",
    "OutputMismatchError",
    "RemoteCommandFailed",
    "TargetError",
    "UnsupportedError",
]

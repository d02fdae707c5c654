"""Where models run: ``LocalTarget`` and ``SSHTarget`` share one interface (DESIGN.md)."""

from __future__ import annotations

from edgeship.targets.base import Result, Target
from edgeship.targets.facts import DeviceFacts
from edgeship.targets.local import LocalTarget


def open_target(spec: str | None, **options: object) -> Target:
    """``local`` (or None) -> LocalTarget; anything else is an SSH target string or alias."""
    if spec in (None, "", "local"):
        return LocalTarget()
    from edgeship.targets.ssh import SSHTarget

    return SSHTarget(spec, **options)  # type: ignore[arg-type]


__all__ = ["DeviceFacts", "LocalTarget", "Result", "Target", "open_target"]

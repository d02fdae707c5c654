"""Where models run: ``LocalTarget`` and ``SSHTarget`` share one interface (DESIGN.md).

A new kind of target subclasses ``Target`` (targets/base.py) and implements ``run``, ``put``,
``put_bytes``, ``get``, ``probe`` (-> ``DeviceFacts``) and ``stage``; it inherits ``run_json``
and ``run_script`` (the one way a program's JSON answer is read), ``python``/``use_python``,
``remote_dir``/``remote_path`` and ``interrupt`` (override it to stop what runs there), so
deployment (targets/staging.py), provisioning, benchmarks and fleets work on it unchanged.
"""

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

"""The Target interface: run a command, move files, describe the machine."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional


@dataclass(frozen=True)
class Result:
    """What a command did: its output, exit code and wall time in seconds."""

    stdout: str
    stderr: str
    exit_code: int
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Target(abc.ABC):
    """A machine models run on.  Use as a context manager so temporary files are cleaned up."""

    name: str = "target"

    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Result:
        """Run ``argv`` (a list, never a shell string) and wait for it."""

    @abc.abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy a local file to the target."""

    @abc.abstractmethod
    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the target."""

    @abc.abstractmethod
    def probe(self) -> dict[str, Any]:
        """Facts about the target: arch, CPU, memory, python, backends, thermal zones."""

    @abc.abstractmethod
    def stage(self, model: Path) -> tuple[str, list[str], dict[str, str]]:
        """Make ``model`` and the runtime available on the target.

        Returns the model path there, the argv prefix that runs a Python module there, and the
        environment the agent needs.
        """

    def close(self) -> None:  # noqa: B027 - optional hook: LocalTarget holds nothing to release
        """Release connections and remove temporary files."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

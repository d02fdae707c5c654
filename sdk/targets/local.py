"""This machine as a target: the agent runs in a fresh subprocess of the same Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from edgeship.core.errors import RemoteCommandFailed
from edgeship.targets.base import Result, Target


class LocalTarget(Target):
    """Runs commands here; ``put``/``get`` are file copies."""

    name = "local"

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Result:
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                env={**os.environ, **(env or {})},
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise RemoteCommandFailed(
                f"'{argv[0]}' did not finish within {timeout:g} s", "raise the timeout or --runs"
            ) from None
        return Result(proc.stdout, proc.stderr, proc.returncode, time.perf_counter() - start)

    def put(self, local: Path, remote: str) -> None:
        shutil.copyfile(local, remote)

    def get(self, remote: str, local: Path) -> None:
        shutil.copyfile(remote, local)

    def probe(self) -> dict[str, Any]:
        from edgeship.runtime import available_backends, sysinfo
        from edgeship.targets.remote.probe import accelerators, numpy_version

        # the same keys SSHTarget.probe() returns, so profiles match local and remote alike
        return sysinfo.host_facts() | {
            "cpu_flags": sysinfo.cpu_flags(),
            "thermal": sysinfo.thermal(),
            "backends": available_backends(),
            "accelerators": accelerators(),
            "numpy": numpy_version(),
        }

    def stage(self, model: Path) -> tuple[str, list[str], dict[str, str]]:
        return str(model.resolve()), [sys.executable], {}

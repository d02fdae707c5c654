"""This machine as a target: the agent runs in a fresh subprocess of the same Python.

Its ``remote_dir`` is a private directory made on first use and removed by ``close``, so a
``put`` with a relative name never writes beside the user's files; ``interrupt`` ends the
commands running in other threads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

from edgeship.core.errors import RemoteCommandFailed
from edgeship.targets.base import Progress, Result, Target
from edgeship.targets.facts import DeviceFacts


class LocalTarget(Target):
    """Runs commands here; ``put``/``get`` are atomic file copies."""

    name = "local"

    def __init__(self) -> None:
        super().__init__(python=sys.executable, remote_dir=None)
        self._private: Optional[str] = None
        self._running: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()

    @property
    def remote_dir(self) -> str:
        """A private directory of this target's (mode 700), made on first use."""
        with self._lock:
            if self._private is None:
                self._private = tempfile.mkdtemp(prefix="edgeship-local-")
            return self._private

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        watched: bool = True,  # a local command ends with this process's session anyway
    ) -> Result:
        self._check_interrupt()
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True,
                                env={**os.environ, **(env or {})})
        with self._lock:
            self._running.add(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RemoteCommandFailed(
                f"'{argv[0]}' did not finish within {timeout:g} s", "raise the timeout or --runs"
            ) from None
        finally:
            with self._lock:
                self._running.discard(proc)
            if proc.poll() is None:  # timed out or interrupted here: it must not outlive us
                proc.kill()
                proc.communicate()
        self._check_interrupt()  # killed by interrupt(): say so, as Ctrl-C would
        return Result(out, err, proc.returncode, time.perf_counter() - start)

    def interrupt(self) -> None:
        super().interrupt()
        with self._lock:
            running = list(self._running)
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    def put(self, local: Path, remote: str, progress: Optional[Progress] = None) -> int:
        self._check_interrupt()
        dest = self._here(remote)
        fd, temp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(local, temp)
            os.replace(temp, dest)
        finally:
            Path(temp).unlink(missing_ok=True)
        size = dest.stat().st_size
        if progress is not None:
            progress(size, size)
        return size

    def put_bytes(self, data: bytes, remote: str) -> int:
        from edgeship.core.io import write_atomic

        write_atomic(self._here(remote), data)
        return len(data)

    def get(self, remote: str, local: Path) -> None:
        self.put(self._here(remote), str(Path(local).resolve()))

    def _here(self, remote: str) -> Path:
        """A target path on this machine: ``~`` expanded, relative ones inside ``remote_dir``."""
        path = Path(remote).expanduser()
        return path if path.is_absolute() else Path(self.remote_dir) / path

    def probe(self) -> DeviceFacts:
        from edgeship.runtime import available_backends, sysinfo
        from edgeship.targets.remote.probe import accelerators, numpy_version

        # the same keys SSHTarget.probe() returns, so profiles match local and remote alike
        return DeviceFacts.from_dict(sysinfo.host_facts() | {
            "cpu_flags": sysinfo.cpu_flags(),
            "thermal": sysinfo.thermal(),
            "backends": available_backends(),
            "accelerators": accelerators(),
            "numpy": numpy_version(),
        })

    def stage(self, model: Path) -> tuple[str, list[str], dict[str, str]]:
        return str(model.resolve()), [self.python], {}

    def close(self) -> None:
        with self._lock:
            private, self._private = self._private, None
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)

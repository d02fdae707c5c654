"""The Target interface: run a command (or a script whose answer is JSON), move files, describe
the machine, stop what runs there.  ``LocalTarget`` and ``SSHTarget`` implement all of it, so
deployment, provisioning, benchmarking and fleets need nothing beyond it."""

from __future__ import annotations

import abc
import json
import posixpath
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from edgeship.core import errors

if TYPE_CHECKING:
    from edgeship.targets.facts import DeviceFacts

MIN_DEVICE_PYTHON = (3, 9)
DEFAULT_REMOTE_DIR = "~/.cache/edgeship"
HELPER_TIMEOUT = 120.0  # probe and preflight; importing every backend on a slow board takes a while
Progress = Callable[[int, int], None]  # bytes sent so far, bytes in this file


@dataclass
class DeployReport:
    """What a deploy did: where things are on the device and what crossed the wire."""

    target: str
    base: str
    model_path: str
    runtime_path: str  # goes on PYTHONPATH
    python: str
    numpy: Optional[str]  # checked when files were sent; None on a warm re-deploy
    files_sent: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_total: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeship.deploy/1", **asdict(self)}

    def summary(self) -> str:
        return (f"{posixpath.basename(self.model_path)} on {self.target}: sent "
                f"{len(self.files_sent)} files ({self.bytes_sent:,} bytes), "
                f"{len(self.files_skipped)} already there, {self.seconds:.2f} s")



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

    def stderr_tail(self, lines: int = 3) -> str:
        return " | ".join(ln for ln in self.stderr.strip().splitlines()[-lines:] if ln.strip())


def json_line(stdout: str) -> Optional[dict[str, Any]]:
    """The JSON object on the last non-empty line of ``stdout`` (every edgeship script and the
    agent print exactly one there); None when there is none."""
    lines = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    try:
        payload = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) and payload else None


def remote_error(error: Mapping[str, Any], where: str) -> errors.EdgeshipError:
    """An error the agent reported as JSON (``{"type", "problem", "fix", "traceback"}``), as the
    same exception here."""
    cls = getattr(errors, str(error.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.EdgeshipError)):
        cls = errors.RemoteCommandFailed
    problem = str(error.get("problem", "the agent failed"))
    if where != "local":  # "pip install onnxruntime" is for the device, not this host
        problem = f"on {where}: {problem}"
    raised = cls(problem, str(error.get("fix", "")))
    if isinstance(error.get("traceback"), str):  # the agent's own bug: the CLI saves it
        raised.traceback_text = error["traceback"]
    return raised


def read_json(res: Result, *, what: str, where: str, fix: str, program: str = "python3"
              ) -> dict[str, Any]:
    """The one reading of "a program answered with JSON": its object, its own reported error
    raised here, or a ``TargetError`` saying how it failed (not found, killed, no answer)."""
    payload = json_line(res.stdout)
    if payload is not None and isinstance(payload.get("error"), dict):
        raise remote_error(payload["error"], where)
    tail = res.stderr_tail()
    if payload is not None and res.exit_code == 0:
        return payload
    if res.exit_code == 127:
        raise errors.UnsupportedError(
            f"{where} has no '{program}' to run {what} ({tail or 'not found'})",
            f"install Python {'.'.join(map(str, MIN_DEVICE_PYTHON))}+ on the device "
            "(e.g. apt install python3)",
        )
    if res.exit_code in (137, -9):
        raise errors.RemoteCommandFailed(
            f"{what} on {where} was killed (exit {res.exit_code}, out of memory?): "
            f"{tail or 'no output'}",
            "give the device more memory or measure a smaller model",
        )
    raise errors.RemoteCommandFailed(
        f"{what} on {where} failed (exit {res.exit_code}): {tail or 'no output'}", fix)


class Target(abc.ABC):
    """A machine models run on.  Use as a context manager so temporary files are cleaned up.

    ``python`` is the interpreter commands and the agent run with there; ``remote_dir`` the
    directory edgeship keeps its files in there (the deploy cache, the provisioned venv);
    ``last_deploy`` what the last ``stage`` sent (None when nothing had to be sent anywhere).
    """

    name: str = "target"
    last_deploy: Optional[DeployReport] = None

    def __init__(self, *, python: str, remote_dir: Optional[str]) -> None:
        self._python = self._checked_python(python)
        self._remote_dir = remote_dir
        self._interrupted = threading.Event()

    # -- where things are --------------------------------------------------------------------
    @property
    def python(self) -> str:
        return self._python

    def use_python(self, python: str) -> None:
        """Run later commands and the agent with ``python`` (a provisioned venv's)."""
        self._python = self._checked_python(python)

    @staticmethod
    def _checked_python(python: str) -> str:
        if not python or "\n" in python:
            raise errors.ConfigError(f"{python!r} is not a Python command", "pass e.g. python3")
        return python

    @property
    def remote_dir(self) -> str:
        return self._remote_dir or DEFAULT_REMOTE_DIR

    def remote_path(self, leaf: str) -> str:
        """``leaf`` (posix) inside ``remote_dir``."""
        return f"{self.remote_dir.rstrip('/')}/{leaf}"

    # -- commands ----------------------------------------------------------------------------
    @abc.abstractmethod
    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        watched: bool = True,
    ) -> Result:
        """Run ``argv`` (a list, never a shell string) and wait for it.  ``watched``: stop it
        there when this session ends (a short helper may save the watchdog's start)."""

    def run_json(
        self,
        argv: Sequence[str],
        *,
        what: str,
        fix: str = "",
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        watched: bool = True,
    ) -> tuple[dict[str, Any], Result]:
        """Run a program that prints one JSON object (a helper script, the agent) and return
        that object with the run's result; its failures raise as ``read_json`` says."""
        res = self.run(argv, env=env, timeout=timeout, watched=watched)
        fix = fix or f"check that '{argv[0]}' works on {self.name}"
        return read_json(res, what=what, where=self.name, fix=fix, program=argv[0]), res

    def run_script(
        self,
        script: str,
        *args: str,
        what: str,
        python: Optional[str] = None,
        flags: Sequence[str] = (),
        watched: bool = True,
        timeout: float = HELPER_TIMEOUT,
    ) -> dict[str, Any]:
        """Run one of the stdlib-only ``targets/remote/`` scripts with the target's Python (or
        ``python``) and return its JSON; a Python too old for the runtime is refused here."""
        from edgeship.targets.remote import source

        python = python or self.python
        payload, _ = self.run_json([python, *flags, "-c", source(script), *args], what=what,
                                   timeout=timeout, watched=watched,
                                   fix=f"check that '{python}' works on {self.name}")
        if payload.get("too_old"):
            need = ".".join(map(str, MIN_DEVICE_PYTHON))
            raise errors.UnsupportedError(
                f"{self.name}'s {python} is Python {payload.get('python')}; edgeship's "
                f"runtime needs Python {need} or newer",
                f"install Python {need}+ on the device (e.g. a newer OS image, or pyenv) and make "
                "it python3",
            )
        return payload

    def interrupt(self) -> None:
        """Ask a transfer or command running in another thread to stop as Ctrl-C would: it
        raises KeyboardInterrupt there, and what it ran is stopped."""
        self._interrupted.set()

    def _check_interrupt(self) -> None:
        if self._interrupted.is_set():
            raise KeyboardInterrupt

    # -- files -------------------------------------------------------------------------------
    @abc.abstractmethod
    def put(self, local: Path, remote: str, progress: Optional[Progress] = None) -> int:
        """Copy a local file to ``remote`` atomically; returns the bytes copied."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes, remote: str) -> int:
        """Write ``data`` to ``remote`` atomically."""

    @abc.abstractmethod
    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the target; ``local`` appears complete or not at all."""

    # -- the machine -------------------------------------------------------------------------
    @abc.abstractmethod
    def probe(self) -> DeviceFacts:
        """Facts about the target: arch, CPU, memory, python, backends, thermal zones."""

    @abc.abstractmethod
    def stage(self, model: Path) -> tuple[str, list[str], dict[str, str]]:
        """Make ``model`` and the runtime available on the target.

        Returns the model path there, the argv prefix that runs a Python module there, and the
        environment the agent needs.
        """

    def close(self) -> None:  # noqa: B027 - optional hook: a target may hold nothing to release
        """Release connections and remove temporary files."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""SSHTarget: a device reached over SSH (paramiko), the remote twin of ``LocalTarget``.

One connection per target, opened on first use and reused by every command and transfer.
Commands are argv lists joined with ``shlex.quote`` and run under a small watchdog on the
device (remote/watchdog.py) that ends them when the session ends or when the client's
heartbeats stop arriving, so a timeout, Ctrl-C or a dropped link never leaves a measurement
running there; the watchdog also gives the command a private ``TMPDIR`` it removes after.
Uploads go to a temporary name and are renamed into place; temporaries are removed on every
exit path (if the link died, over a fresh connection; if the device is gone, the next deploy
sweeps them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import secrets
import select
import shlex
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO, Any, Optional

from edgeship.core.errors import (
    ConfigError,
    ConnectionFailed,
    RemoteCommandFailed,
    TargetError,
)
from edgeship.runtime.formats import quiet_env
from edgeship.targets.base import MIN_DEVICE_PYTHON, Progress, Result, Target
from edgeship.targets.facts import DeviceFacts
from edgeship.targets.remote import source
from edgeship.targets.sshconfig import resolve
from edgeship.targets.sshconnect import Connection, open_connection

TEMP_MARK = ".edgeship-tmp-"


def _linkdown(exc: BaseException) -> bool:
    """Whether ``exc`` says the link failed (rather than, say, a full disk on the device)."""
    import paramiko

    return isinstance(exc, (paramiko.SSHException, EOFError, ConnectionError, socket.timeout))


def describe_drop(exc: Optional[BaseException], silence: float) -> str:
    """What a link failure means, in words (paramiko's EOFError and "Server connection
    dropped: " say nothing)."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no data from the device for {silence:g} s"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)) or exc is None:
        return "the device closed the connection"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    text = str(exc).strip().rstrip(":").strip()
    if not text or text.lower().startswith("server connection dropped"):
        return "the device closed the connection"
    return text


class SSHTarget(Target):
    """A device over SSH: ``user@host[:port]`` or a Host alias from ``~/.ssh/config``.

    Example:
        >>> with SSHTarget("pi@raspberrypi.local", accept_new_host_key=True) as pi:  # doctest: +SKIP
        ...     print(pi.run(["uname", "-m"]).stdout, pi.probe().cpu_model)
    """

    def __init__(
        self,
        spec: str,
        *,
        accept_new_host_key: bool = False,
        python: str = "python3",
        remote_dir: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        ssh_config: Optional[Path] = None,
    ) -> None:
        super().__init__(python=python, remote_dir=remote_dir)
        self.name = spec
        self.host = resolve(spec, ssh_config)
        if connect_timeout is not None:
            self.host = replace(self.host, connect_timeout=connect_timeout)
        self.accept_new_host_key = accept_new_host_key
        self._ssh_config = ssh_config
        self._conn: Optional[Connection] = None
        self._sftp: Any = None
        self._temps: set[str] = set()

    def __repr__(self) -> str:
        return f"SSHTarget({self.name!r} -> {self.host.address})"

    # -- connection ---------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.active

    def connection(self) -> Connection:
        """The live connection, opened (or re-opened after a drop) on demand."""
        if self._conn is not None and not self._conn.active:
            self._disconnect()
        if self._conn is None:
            self._conn = open_connection(self.host, accept_new=self.accept_new_host_key,
                                         config_path=self._ssh_config)
        return self._conn

    def _disconnect(self) -> None:
        with contextlib.suppress(Exception):
            if self._sftp is not None:
                self._sftp.close()
        self._sftp = None
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    @property
    def heartbeat_limit(self) -> float:
        """Seconds the device waits without hearing from us before it stops a command, and
        that a transfer waits without hearing from the device."""
        return self.host.keepalive * (self.host.keepalive_count + 1)

    def _dropped(self, doing: str, exc: Optional[BaseException]) -> ConnectionFailed:
        lost = self._conn.lost if self._conn is not None else None
        why = lost or describe_drop(exc, self.heartbeat_limit)
        return ConnectionFailed(
            f"the connection to {self.name} ({self.host.address}) dropped while {doing}: {why}",
            "check that the device is powered, on the network and its sshd runs, then retry; "
            "nothing half-done is kept",
        )

    # -- commands -----------------------------------------------------------------------------
    def command_line(
        self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None, watched: bool = True
    ) -> str:
        """The shell line sent to the device: every item quoted, run under the watchdog
        (``watched=False`` is for the short helper scripts, saving one Python start)."""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ConfigError(f"a command must be a non-empty list of strings, got {argv!r}",
                              "pass argv as a list")
        pairs = [f"{k}={v}" for k, v in (env or {}).items()]
        if any(not k or "=" in k for k in (env or {})):
            raise ConfigError(f"bad environment variable names in {sorted(env or {})}",
                              "use NAME=value pairs")
        if not watched:
            return "exec " + shlex.join(["env", *pairs, *argv] if pairs else argv)
        # the device-side defaults go first so the caller's settings win
        pairs = [f"{k}={v}" for k, v in quiet_env().items() if k not in (env or {})] + pairs
        return "exec " + shlex.join([self.python, "-I", "-S", "-c", source("watchdog"),
                                     f"{self.heartbeat_limit:g}", str(len(pairs)), *pairs,
                                     *argv])

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        watched: bool = True,
    ) -> Result:
        """Run ``argv`` on the device; with ``watched`` (the default) it is stopped there when
        the session ends for any reason."""
        command = self.command_line(argv, env, watched)
        transport = self.connection().transport
        start = time.perf_counter()
        chan = None
        try:
            chan = transport.open_session(timeout=self.host.connect_timeout)
            chan.exec_command(command)
            out, err, code = self._collect(chan, argv, timeout, start, heartbeat=watched)
        except TargetError:
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            if _linkdown(exc) or not self.connected:
                raise self._dropped(f"running '{argv[0]}'", exc) from None
            raise
        finally:
            if chan is not None:
                chan.close()  # the watchdog sees EOF and ends anything still running
        return Result(out, err, code, time.perf_counter() - start)

    def _beat(self, chan: Any) -> None:
        """One heartbeat byte to the watchdog's stdin (it stops the command when they stop)."""
        with contextlib.suppress(Exception):  # a dead link is noticed by the caller's checks
            if chan.send_ready():
                chan.send(b".")

    def _collect(
        self, chan: Any, argv: Sequence[str], timeout: Optional[float], start: float,
        heartbeat: bool = False,
    ) -> tuple[str, str, int]:
        out, err = bytearray(), bytearray()
        next_beat = time.monotonic() + self.host.keepalive
        while True:
            self._check_interrupt()
            if heartbeat and time.monotonic() >= next_beat:
                self._beat(chan)
                next_beat = time.monotonic() + self.host.keepalive
            if chan.recv_ready():
                out += chan.recv(1 << 16)
                continue
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(1 << 16)
                continue
            if chan.exit_status_ready() and (chan.eof_received or chan.closed):
                break
            if not self.connected:
                raise self._dropped(f"running '{argv[0]}'", None)
            left = None if timeout is None else start + timeout - time.perf_counter()
            if left is not None and left <= 0:
                raise RemoteCommandFailed(
                    f"'{shlex.join(argv)[:120]}' on {self.name} did not finish within "
                    f"{timeout:g} s and was stopped",
                    "raise --timeout, or lower --runs / --min-seconds",
                )
            wait = 0.25 if left is None else min(0.25, left)
            if chan.eof_received:
                chan.status_event.wait(wait)
            else:
                select.select([chan], [], [], wait)
        code = chan.recv_exit_status()
        if code == -1:  # closed without an exit status: a dead link closes channels this way
            deadline = time.perf_counter() + 1.0
            while self.connected and time.perf_counter() < deadline:
                time.sleep(0.02)  # the transport notices its dead socket a moment later
            if not self.connected:
                raise self._dropped(f"running '{argv[0]}'", None)
        return out.decode(errors="replace"), err.decode(errors="replace"), code

    # -- files --------------------------------------------------------------------------------
    def sftp(self) -> Any:
        conn = self.connection()
        if self._sftp is None:
            self._sftp = conn.transport.open_sftp_client()
            # a dead link during a transfer fails within keepalive * count seconds, not minutes
            self._sftp.get_channel().settimeout(self.heartbeat_limit)
        return self._sftp

    def put(self, local: Path, remote: str, progress: Optional[Progress] = None) -> int:
        """Copy a local file to ``remote`` atomically (temporary name, then rename)."""
        local = Path(local)
        with open(local, "rb") as f:
            return self._upload(f, local.stat().st_size, remote, progress)

    def put_bytes(self, data: bytes, remote: str) -> int:
        return self._upload(io.BytesIO(data), len(data), remote, None)

    def _upload(self, f: IO[bytes], size: int, remote: str, progress: Optional[Progress]) -> int:
        temp = posixpath.join(posixpath.dirname(remote), TEMP_MARK + secrets.token_hex(8))
        sent = [0]

        def callback(done: int, total: int) -> None:
            sent[0] = done
            self._check_interrupt()
            if progress is not None:
                progress(done, total)

        try:
            sftp = self.sftp()
            self._temps.add(temp)
            sftp.putfo(f, temp, file_size=size, callback=callback, confirm=True)
            sftp.posix_rename(temp, remote)
            self._temps.discard(temp)
        except BaseException as exc:
            linkdown = _linkdown(exc) or not self.connected
            self.discard_temps()
            if isinstance(exc, (TargetError, KeyboardInterrupt)) or not isinstance(exc, Exception):
                raise
            name = posixpath.basename(remote)
            if linkdown:
                raise self._dropped(f"uploading '{name}' ({sent[0]} of {size} bytes sent)",
                                    exc) from None
            raise self._upload_failed(name, remote, size, exc) from None
        return size

    def _upload_failed(self, name: str, remote: str, size: int, exc: BaseException) -> TargetError:
        free = self.free_bytes(posixpath.dirname(remote))
        if free is not None and free < size:
            return RemoteCommandFailed(
                f"{self.name} ran out of disk space uploading '{name}' ({size} bytes, "
                f"{free} bytes free in {posixpath.dirname(remote)})",
                "free space on the device, or deploy to a larger file system with --dir",
            )
        return RemoteCommandFailed(f"uploading '{name}' to {self.name} failed: {exc}",
                                   "check permissions and free space on the device")

    def free_bytes(self, directory: str) -> Optional[int]:
        """Free bytes for this user in ``directory`` on the device; None if that cannot be read."""
        code = ("import json,os,sys; s=os.statvfs(sys.argv[1]); "
                "print(json.dumps({'free': s.f_bavail*s.f_frsize}))")
        with contextlib.suppress(Exception):
            payload, _ = self.run_json([self.python, "-c", code, directory],
                                       what="the free-space check", timeout=30)
            return int(payload["free"])
        return None

    def discard_temps(self) -> None:
        """Remove this target's upload temporaries, over a fresh connection if the link died."""
        for _ in range(2):  # the old link may be dead before paramiko notices: then reconnect once
            if not self._temps:
                return
            try:
                sftp = self.sftp()
                for temp in list(self._temps):
                    with contextlib.suppress(FileNotFoundError):
                        sftp.remove(temp)
                    self._temps.discard(temp)
            except Exception:
                self._disconnect()

    def get(self, remote: str, local: Path) -> None:
        """Copy ``remote`` here; ``local`` appears complete or not at all."""
        local = Path(local)
        fd, temp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent)
        os.close(fd)
        try:
            self.sftp().get(remote, temp)
            os.replace(temp, local)
        except FileNotFoundError:
            raise RemoteCommandFailed(f"'{remote}' does not exist on {self.name}",
                                      "check the path") from None
        except Exception as exc:
            if _linkdown(exc) or not self.connected:
                raise self._dropped(f"downloading '{remote}'", exc) from None
            raise
        finally:
            Path(temp).unlink(missing_ok=True)

    # -- Target -------------------------------------------------------------------------------
    def probe(self) -> DeviceFacts:
        """The device's facts, as ``LocalTarget.probe()`` finds them here, from one remote
        Python run that needs nothing but the stdlib."""
        from edgeship.runtime import sysinfo
        from edgeship.runtime.formats import BACKENDS

        table = {name: list(b.modules) for name, b in BACKENDS.items()}
        blocked = sorted({m for b in BACKENDS.values() for m in b.blocked})
        return DeviceFacts.from_dict(self.run_script(
            "probe", Path(sysinfo.__file__).read_text(), json.dumps(table),
            json.dumps(MIN_DEVICE_PYTHON), json.dumps(blocked), what="the device probe"))

    def stage(self, model: Path) -> tuple[str, list[str], dict[str, str]]:
        """Deploy ``model`` and the runtime (cached by hash) and say how to run the agent."""
        from edgeship.targets.staging import deploy_to

        self.last_deploy = deploy_to(self, Path(model))
        return (self.last_deploy.model_path, [self.python],
                {"PYTHONPATH": self.last_deploy.runtime_path})

    def close(self) -> None:
        try:
            self.discard_temps()
        finally:
            self._disconnect()

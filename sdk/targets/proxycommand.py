"""``ProxyCommand`` from ``~/.ssh/config``: the SSH stream through a command's stdin/stdout.

OpenSSH runs the command with the user's shell (``exec CMD``); so does this, since the command
is the user's own config, but the tokens that come from the target (``%h %p %r %n``) were
shell-quoted when they were expanded (sshconfig.expand_tokens), so a host name can never add
words to it.  The command's stderr is collected (its last lines name the failure) instead of
being left in an unread pipe that would block it.
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import threading
from typing import Any

from edgeship.core.errors import ConnectionFailed


def open_proxy(command: str, alias: str) -> Any:
    """A socket-like paramiko.ProxyCommand running ``command`` with ``/bin/sh``."""
    import paramiko

    class CollectingProxy(paramiko.ProxyCommand):  # type: ignore[misc]
        def __init__(self, line: str) -> None:
            self.cmd = ["/bin/sh", "-c", "exec " + line]
            self.process = subprocess.Popen(self.cmd, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            bufsize=0, start_new_session=True)
            self.timeout = None
            self.stderr_tail: collections.deque[str] = collections.deque(maxlen=3)
            threading.Thread(target=self._drain, daemon=True,
                             name=f"edgeship-proxy-{alias}").start()

        def _drain(self) -> None:
            assert self.process.stderr is not None
            for raw in iter(self.process.stderr.readline, b""):
                text = raw.decode(errors="replace").strip()
                if text:
                    self.stderr_tail.append(text)

        def describe(self) -> str:
            tail = " | ".join(self.stderr_tail)
            code = self.process.poll()
            state = f"exited with {code}" if code is not None else "is running"
            return f"ProxyCommand '{command}' {state}" + (f": {tail}" if tail else "")

        def close(self) -> None:
            with contextlib.suppress(OSError):
                self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            for pipe in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()

    try:
        return CollectingProxy(command)
    except OSError as exc:
        raise ConnectionFailed(f"cannot start the ProxyCommand for {alias}: {exc.strerror}",
                               "fix ProxyCommand in ~/.ssh/config") from None

"""Keepalives that need answers, as OpenSSH's ``ServerAliveInterval``/``ServerAliveCountMax``.

paramiko's own keepalive (``Transport.set_keepalive``) asks for no reply, so it proves
nothing: a device whose sshd hangs (stopped, swapping to death, a wedged kernel) still ACKs
TCP, and a run would wait on it forever.  Here a ``keepalive@openssh.com`` global request with
``want_reply`` goes out every ``interval`` seconds; every SSH server must answer it (OpenSSH
answers "failure", which is an answer).  As in OpenSSH, any packet from the server proves it
alive too: on a slow link a reply can queue behind megabytes of an upload's window.  When a
request stays unanswered and nothing else arrives for ``interval * count`` seconds the link
counts as dead: the transport is closed, which wakes every waiting command and transfer, and
``reason`` says why in words for the one-line error.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

KEEPALIVE_REQUEST = "keepalive@openssh.com"


class KeepAlive:
    """One thread per transport sending keepalives and counting the missing replies."""

    def __init__(self, transport: Any, interval: float, count: int, name: str) -> None:
        self.transport = transport
        self.interval = max(0.1, float(interval))
        self.count = max(1, int(count))
        self.name = name
        self.reason: Optional[str] = None  # set once the peer stopped answering
        self._stop = threading.Event()
        self._answered = threading.Event()
        self._pending_since: Optional[float] = None
        self._rx = self._received()
        self._thread = threading.Thread(target=self._loop, name=f"edgeship-keepalive-{name}",
                                        daemon=True)

    @property
    def limit(self) -> float:
        return self.interval * self.count

    def start(self) -> KeepAlive:
        self._send()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _received(self) -> tuple[int, int]:
        """The packetizer's receive counters (private, hence the defaults): they move with
        every packet from the server, and a rekey resets them, which also moves them."""
        packetizer = getattr(self.transport, "packetizer", None)
        return (getattr(packetizer, "_Packetizer__received_packets", 0),
                getattr(packetizer, "_Packetizer__received_bytes", 0))

    def check(self) -> Optional[str]:
        """The reason the link is dead, once a request stayed unanswered too long (callers
        that poll check it too: the sender may itself be stuck writing to a dead socket)."""
        if self.reason is not None or self._pending_since is None:
            return self.reason
        if self._answered.is_set():
            self._pending_since = None
            return None
        rx = self._received()
        if rx != self._rx:  # the server sent something meanwhile: it is alive
            self._rx = rx
            self._pending_since = time.monotonic()
            return None
        if time.monotonic() - self._pending_since >= self.limit:
            self.reason = (f"{self.name} answered none of {self.count} keepalives in "
                           f"{self.limit:g} s (ServerAliveInterval {self.interval:g} x "
                           f"ServerAliveCountMax {self.count}): the device or its sshd hangs")
            self._stop.set()
            self.transport.close()  # wakes everything waiting on this connection
        return self.reason

    def _send(self) -> None:
        import paramiko
        from paramiko.common import cMSG_GLOBAL_REQUEST

        answered = threading.Event()
        self._answered = answered
        # paramiko sets transport.completion_event when a global reply (success or
        # failure) arrives; nothing else of edgeship's uses it after login.  A late reply
        # to an earlier request sets the newest event: it proves the server alive all the same.
        self.transport.completion_event = answered
        if self._pending_since is None:
            self._pending_since = time.monotonic()
            self._rx = self._received()
        m = paramiko.Message()
        m.add_byte(cMSG_GLOBAL_REQUEST)
        m.add_string(KEEPALIVE_REQUEST)
        m.add_boolean(True)
        self.transport._send_user_message(m)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.transport.is_active():
                return
            if self.check() is not None:
                return
            try:  # one request per interval, answered or not, as OpenSSH counts them
                self._send()
            except Exception:  # the transport died meanwhile; its users will say so
                return

"""Opening one SSH connection: socket options, jump hosts, host key check, key authentication.

The socket gets ``TCP_NODELAY`` (paramiko's default leaves Nagle on: 45 ms per command instead
of 2-7 ms), ``SO_KEEPALIVE`` and ``TCP_USER_TIMEOUT`` (a dead link fails within
``keepalive * keepalive_count`` seconds instead of blocking for minutes), and the transport
sends keepalives.  Host keys follow OpenSSH: a changed key is always refused, an unknown key is
refused with its fingerprint unless the caller accepts new keys, and then it is written to
``known_hosts``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgeship.errors import ConnectionFailed, HostKeyError
from edgeship.targets.sshconfig import HostSpec, resolve

# paramiko logs dropped links at ERROR; edgeship reports them as one-line errors instead
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass
class Connection:
    """An authenticated transport to the target and the jump transports it runs through."""

    transport: Any  # paramiko.Transport
    spec: HostSpec
    hops: list[Any] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return bool(self.transport.is_active())

    def close(self) -> None:
        for t in [self.transport, *reversed(self.hops)]:
            t.close()


def fingerprint(key: Any) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def tcp_socket(spec: HostSpec) -> socket.socket:
    """A connected TCP socket with the options a responsive, failure-aware SSH link needs."""
    try:
        sock = socket.create_connection((spec.hostname, spec.port), timeout=spec.connect_timeout)
    except socket.gaierror:
        raise ConnectionFailed(
            f"cannot resolve host name '{spec.hostname}' (target {spec.alias})",
            "check the name, or add a Host entry with HostName to ~/.ssh/config",
        ) from None
    except ConnectionRefusedError:
        raise ConnectionFailed(
            f"connection to {spec.hostname}:{spec.port} refused (target {spec.alias})",
            f"check that sshd runs on the device and listens on port {spec.port}",
        ) from None
    except (socket.timeout, TimeoutError):
        raise ConnectionFailed(
            f"no answer from {spec.hostname}:{spec.port} within {spec.connect_timeout:g} s",
            "check the address, the network and firewalls (ConnectTimeout raises the wait)",
        ) from None
    except OSError as exc:
        raise ConnectionFailed(
            f"cannot reach {spec.hostname}:{spec.port}: {exc.strerror or exc}",
            "check the address and the network",
        ) from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = max(1, int(spec.keepalive))
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", idle),
                        ("TCP_KEEPCNT", max(1, spec.keepalive_count)),
                        ("TCP_USER_TIMEOUT", int(idle * max(1, spec.keepalive_count) * 1000))):
        if hasattr(socket, name):  # Linux has all four; others keep SO_KEEPALIVE alone
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    return sock


def _known_keys(spec: HostSpec) -> Any:
    import paramiko

    keys = paramiko.HostKeys()
    for path in spec.known_hosts_files:
        if os.path.isfile(path):
            try:
                keys.load(path)
            except (OSError, paramiko.SSHException, paramiko.hostkeys.InvalidHostKey,
                    ValueError) as exc:  # ValueError: not UTF-8
                detail = " ".join(str(exc).split())[:160]
                raise HostKeyError(f"cannot read known hosts file '{path}': {detail}",
                                   "fix or remove the broken line") from None
    return keys.lookup(spec.known_hosts_name) or {}


def _prefer_known_types(transport: Any, known: Any) -> None:
    """Ask the server for a key type we already know for it, as OpenSSH does."""
    if not known:
        return
    options = transport.get_security_options()
    types = list(options.key_types)

    def base(name: str) -> str:
        return "ssh-rsa" if name.startswith("rsa-sha2-") else name

    options.key_types = [t for t in types if base(t) in known] + \
        [t for t in types if base(t) not in known]


def check_host_key(transport: Any, spec: HostSpec, accept_new: bool) -> None:
    """Refuse changed keys always and unknown ones unless ``accept_new``; record accepted ones."""
    key = transport.get_remote_server_key()
    known = _known_keys(spec)
    name, fp = spec.known_hosts_name, fingerprint(key)
    if key.get_name() in known:
        if known[key.get_name()] == key:
            return
        raise HostKeyError(
            f"the host key of {name} has CHANGED (now {key.get_name()} {fp}); someone may be "
            "intercepting the connection, or the device was reinstalled",
            f"if the device was reinstalled, remove the old key (ssh-keygen -R '{name}') and "
            "verify the new fingerprint",
        )
    if known:
        raise HostKeyError(
            f"{name} offered a {key.get_name()} host key ({fp}) but known_hosts holds only "
            f"{', '.join(sorted(known))} keys for it",
            f"verify the key, then remove the old entries (ssh-keygen -R '{name}')",
        )
    if not (accept_new or spec.accept_new_host_key):
        raise HostKeyError(
            f"the host key of {name} is unknown: {key.get_name()} {fp}",
            "verify the fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
            "then pass --accept-new-host-key",
        )
    path = Path(spec.known_hosts_files[0])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:  # one O_APPEND write: safe with a fleet adding keys at once
        f.write(f"{name} {key.get_name()} {key.get_base64()}\n")


def _agent_keys() -> list[Any]:
    import paramiko

    if not os.environ.get("SSH_AUTH_SOCK"):
        return []
    try:
        return list(paramiko.Agent().get_keys())
    except (paramiko.SSHException, OSError):
        return []


def authenticate(transport: Any, spec: HostSpec) -> None:
    """Public-key login with the agent's keys, then the identity files; no passwords."""
    import paramiko

    tried: list[str] = []
    candidates: list[tuple[str, Any]] = [(f"agent key {fingerprint(k)}", k) for k in _agent_keys()]
    for path in spec.identity_files:
        if not os.path.isfile(path):
            continue
        try:
            candidates.append((path, paramiko.PKey.from_path(path)))
        except paramiko.PasswordRequiredException:
            tried.append(f"{path} (encrypted: add it to ssh-agent)")
        except (paramiko.SSHException, OSError, ValueError) as exc:
            tried.append(f"{path} (unreadable: {exc})")
    for label, key in candidates:
        try:
            transport.auth_publickey(spec.user, key)
        except paramiko.BadAuthenticationType as exc:
            raise ConnectionFailed(
                f"{spec.address} does not accept key logins (it allows: "
                f"{', '.join(exc.allowed_types) or 'nothing'})",
                "enable PubkeyAuthentication in the device's sshd_config",
            ) from None
        except paramiko.AuthenticationException:
            tried.append(label)
            continue
        if transport.is_authenticated():
            return
    raise ConnectionFailed(
        f"authentication as {spec.address} failed (tried: {', '.join(tried) or 'no keys found'})",
        f"install your public key on the device (ssh-copy-id -p {spec.port} "
        f"{spec.user}@{spec.hostname}) or name the key with IdentityFile in ~/.ssh/config",
    )


def _handshake(sock: Any, spec: HostSpec, accept_new: bool) -> Any:
    import paramiko

    transport = paramiko.Transport(sock)
    transport.banner_timeout = spec.connect_timeout
    transport.handshake_timeout = spec.connect_timeout
    transport.auth_timeout = spec.connect_timeout
    _prefer_known_types(transport, _known_keys(spec))
    try:
        try:
            transport.start_client(timeout=spec.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(
                f"{spec.hostname}:{spec.port} did not answer as an SSH server ({exc or type(exc).__name__})",
                f"check that port {spec.port} is the device's sshd (ssh -p PORT user@host)",
            ) from None
        check_host_key(transport, spec, accept_new)
        try:
            authenticate(transport, spec)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(f"the connection to {spec.address} dropped during login: {exc}",
                                   "check the device's sshd log") from None
    except BaseException:
        transport.close()
        raise
    transport.set_keepalive(max(1, int(spec.keepalive)))
    return transport


def open_connection(
    spec: HostSpec, *, accept_new: bool = False, config_path: Optional[Path] = None
) -> Connection:
    """Connect (through ``spec.proxy_jump`` hops when set), check the host key, log in."""
    import paramiko

    hops: list[Any] = []
    try:
        chain = [resolve(h, config_path, follow_jumps=False) for h in spec.proxy_jump] + [spec]
        sock: Any = tcp_socket(chain[0])
        for i, hop in enumerate(chain):
            if i:
                try:
                    sock = hops[-1].open_channel("direct-tcpip", (hop.hostname, hop.port),
                                                 ("127.0.0.1", 0), timeout=hop.connect_timeout)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise ConnectionFailed(
                        f"jump host {chain[i - 1].address} could not reach "
                        f"{hop.hostname}:{hop.port}: {exc}",
                        "check ProxyJump in ~/.ssh/config and that the jump host allows "
                        "TCP forwarding",
                    ) from None
            transport = _handshake(sock, hop, accept_new)
            if hop is spec:
                return Connection(transport, spec, hops)
            hops.append(transport)
    except BaseException:
        for t in reversed(hops):
            t.close()
        raise
    raise AssertionError("unreachable")  # pragma: no cover

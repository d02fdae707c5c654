"""Opening one SSH connection: socket options, jump hosts, host key check, key authentication.

The socket gets ``TCP_NODELAY`` (paramiko's default leaves Nagle on: 45 ms per command instead
of 2-7 ms), ``SO_KEEPALIVE`` and ``TCP_USER_TIMEOUT`` (a dead link fails within
``keepalive * keepalive_count`` seconds instead of blocking for minutes), and the transport
sends keepalives that need replies (keepalive.py).  A ``ProxyCommand`` replaces the socket
(proxycommand.py); ``ProxyJump`` hops tunnel through the previous hop.  Host keys follow
OpenSSH across every known_hosts file it reads (knownhosts.py): a changed or ``@revoked`` key
is always refused, an unknown key is refused with its fingerprint unless the caller accepts
new keys, and then it is added to the first ``UserKnownHostsFile``.
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

from edgeship.core.errors import ConnectionFailed, HostKeyError
from edgeship.targets.keepalive import KeepAlive
from edgeship.targets.knownhosts import REVOKED, KnownKey, add_known_host, keys_for
from edgeship.targets.sshconfig import HostSpec, resolve

# paramiko logs dropped links at ERROR; edgeship reports them as one-line errors instead
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass
class Connection:
    """An authenticated transport to the target and the jump transports it runs through."""

    transport: Any  # paramiko.Transport
    spec: HostSpec
    hops: list[Any] = field(default_factory=list)
    keepalives: list[KeepAlive] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.lost is None and bool(self.transport.is_active())

    @property
    def lost(self) -> Optional[str]:
        """Why the link is dead, when keepalives went unanswered (None otherwise)."""
        for keepalive in self.keepalives:
            reason = keepalive.check()
            if reason:
                return reason
        return None

    def close(self) -> None:
        for keepalive in self.keepalives:
            keepalive.stop()
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


def _base_type(name: str) -> str:
    return "ssh-rsa" if name.startswith("rsa-sha2-") else name


def _known_keys(spec: HostSpec) -> list[KnownKey]:
    return keys_for(spec.known_hosts_name, spec.all_known_hosts_files)


def _prefer_known_types(transport: Any, known: list[KnownKey]) -> None:
    """Ask the server for a key type we already know for it, as OpenSSH does."""
    types_known = {k.key_type for k in known if k.marker is None}
    if not types_known:
        return
    options = transport.get_security_options()
    types = list(options.key_types)
    options.key_types = [t for t in types if _base_type(t) in types_known] + \
        [t for t in types if _base_type(t) not in types_known]


def check_host_key(transport: Any, spec: HostSpec, accept_new: bool) -> None:
    """Refuse revoked and changed keys always and unknown ones unless ``accept_new``; record
    accepted ones."""
    key = transport.get_remote_server_key()
    known = _known_keys(spec)
    name, fp, kind = spec.known_hosts_name, fingerprint(key), key.get_name()
    blob = key.asbytes()
    revoked = [k for k in known if k.marker == REVOKED and k.blob == blob]
    if revoked:
        raise HostKeyError(
            f"the host key of {name} ({kind} {fp}) is marked @revoked in {revoked[0].where}; "
            "edgeship will not connect to it",
            "if the device got a new key, verify it and list it in known_hosts; otherwise "
            "treat the device as compromised",
        )
    plain = [k for k in known if k.marker is None]
    if any(k.blob == blob for k in plain):
        return
    same_type = [k for k in plain if _base_type(k.key_type) == _base_type(kind)]
    if same_type:
        raise HostKeyError(
            f"the host key of {name} has CHANGED (now {kind} {fp}, known since "
            f"{same_type[0].where}); someone may be intercepting the connection, or the "
            "device was reinstalled",
            f"if the device was reinstalled, remove the old key (ssh-keygen -R '{name}' -f "
            f"{same_type[0].path}) and verify the new fingerprint",
        )
    if plain:
        raise HostKeyError(
            f"{name} offered a {kind} host key ({fp}) but known_hosts holds only "
            f"{', '.join(sorted({k.key_type for k in plain}))} keys for it ({plain[0].where})",
            f"verify the key, then remove the old entries (ssh-keygen -R '{name}')",
        )
    if not (accept_new or spec.accept_new_host_key):
        raise HostKeyError(
            f"the host key of {name} is unknown: {kind} {fp}",
            "verify the fingerprint on the device (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
            "then pass --accept-new-host-key",
        )
    if not spec.known_hosts_files:
        raise HostKeyError(f"cannot record the host key of {name}: UserKnownHostsFile is none",
                           "name a UserKnownHostsFile in ~/.ssh/config")
    try:
        add_known_host(spec.known_hosts_files[0], name, kind, key.get_base64(),
                       hash_name=spec.hash_known_hosts)
    except OSError as exc:
        raise HostKeyError(f"cannot record the host key of {name} in "
                           f"'{spec.known_hosts_files[0]}': {exc.strerror}",
                           "check that file's permissions") from None


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
            proxy = getattr(sock, "describe", None)
            if proxy is not None:
                raise ConnectionFailed(f"no SSH server answered through the ProxyCommand of "
                                       f"{spec.alias}: {proxy()}",
                                       "run that command by hand to see why") from None
            raise ConnectionFailed(
                f"{spec.hostname}:{spec.port} did not answer as an SSH server "
                f"({str(exc) or type(exc).__name__})",
                f"check that port {spec.port} is the device's sshd (ssh -p PORT user@host)",
            ) from None
        check_host_key(transport, spec, accept_new)
        try:
            authenticate(transport, spec)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise ConnectionFailed(f"the connection to {spec.address} dropped during login: "
                                   f"{str(exc) or 'the server closed it'}",
                                   "check the device's sshd log") from None
    except BaseException:
        transport.close()
        raise
    return transport


def _first_socket(spec: HostSpec) -> Any:
    if spec.proxy_command:
        from edgeship.targets.proxycommand import open_proxy

        return open_proxy(spec.proxy_command, spec.alias)
    return tcp_socket(spec)


def open_connection(
    spec: HostSpec, *, accept_new: bool = False, config_path: Optional[Path] = None
) -> Connection:
    """Connect (through ``spec.proxy_jump`` hops or ``spec.proxy_command`` when set), check
    the host key, log in, start keepalives that need replies on every hop."""
    import paramiko

    hops: list[Any] = []
    keepalives: list[KeepAlive] = []
    try:
        chain = [resolve(h, config_path, follow_jumps=False) for h in spec.proxy_jump] + [spec]
        sock: Any = _first_socket(chain[0])
        for i, hop in enumerate(chain):
            if i:
                try:
                    sock = hops[-1].open_channel("direct-tcpip", (hop.hostname, hop.port),
                                                 ("127.0.0.1", 0), timeout=hop.connect_timeout)
                except (paramiko.SSHException, EOFError, OSError) as exc:
                    raise ConnectionFailed(
                        f"jump host {chain[i - 1].address} could not reach "
                        f"{hop.hostname}:{hop.port}: {str(exc) or type(exc).__name__}",
                        "check ProxyJump in ~/.ssh/config and that the jump host allows "
                        "TCP forwarding",
                    ) from None
            transport = _handshake(sock, hop, accept_new)
            keepalives.append(KeepAlive(transport, hop.keepalive, hop.keepalive_count,
                                        hop.alias).start())
            if hop is spec:
                return Connection(transport, spec, hops, keepalives)
            hops.append(transport)
    except BaseException:
        for keepalive in keepalives:
            keepalive.stop()
        for t in reversed(hops):
            t.close()
        raise
    raise AssertionError("unreachable")  # pragma: no cover

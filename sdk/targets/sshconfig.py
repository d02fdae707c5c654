"""Target strings and ``~/.ssh/config``: which host, port, user, keys and jump hosts.

A target is ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6) or a ``Host`` alias from
``~/.ssh/config``; explicit user and port win over the config, as with ``ssh``.  Honoured
config keys: HostName, User, Port, IdentityFile, ProxyJump, UserKnownHostsFile, ConnectTimeout,
ServerAliveInterval, ServerAliveCountMax, StrictHostKeyChecking (``accept-new`` only: host keys
are always checked).  Target strings are validated before anything reads them, so a string
with spaces, quotes, ``;`` or ``$()`` is refused here and never reaches a shell or a config
``Match exec``.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgeship.errors import ConfigError

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_KEEPALIVE = 5.0  # seconds between keepalives
DEFAULT_KEEPALIVE_COUNT = 3  # missed keepalives before the link counts as dead
DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")

_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")


@dataclass(frozen=True)
class HostSpec:
    """Everything needed to open one SSH connection (one hop)."""

    alias: str  # the host as typed (an alias or an address)
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts_files: tuple[str, ...]
    proxy_jump: tuple[str, ...] = ()  # hops, first one first, each a target string
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    keepalive: float = DEFAULT_KEEPALIVE
    keepalive_count: int = DEFAULT_KEEPALIVE_COUNT
    accept_new_host_key: bool = False

    @property
    def address(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How ``known_hosts`` names this host: ``host``, or ``[host]:port`` off port 22."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def _invalid(spec: str, why: str) -> ConfigError:
    return ConfigError(
        f"{spec!r} is not a valid SSH target ({why})",
        "write [user@]host[:port] or a Host alias from ~/.ssh/config",
    )


def parse_target(spec: str) -> tuple[Optional[str], str, Optional[int]]:
    """Split ``[user@]host[:port]`` into its parts, refusing anything that is not plainly one."""
    user: Optional[str] = None
    rest = spec
    if "@" in spec:
        user, rest = spec.rsplit("@", 1)
        if not _USER.fullmatch(user):
            raise _invalid(spec, "the user name has characters a user name cannot have")
    port_text: Optional[str] = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep or not _IPV6.fullmatch(host) or (tail and not tail.startswith(":")):
            raise _invalid(spec, "a bracketed host must be an IPv6 address, [addr]:port")
        port_text = tail[1:] if tail else None
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    elif rest.count(":") > 1:
        host = rest
        if not _IPV6.fullmatch(host):
            raise _invalid(spec, "not an IPv6 address; put a port after [addr]:")
    else:
        host = rest
    if ":" not in host and not _HOST.fullmatch(host):
        raise _invalid(spec, "the host name has characters a host name cannot have")
    port: Optional[int] = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise _invalid(spec, f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return user, host, port


def _lookup(path: Optional[Path], host: str) -> Any:
    """``host``'s settings from the SSH config file (empty when there is no file)."""
    import paramiko

    path = path or Path(os.path.expanduser("~/.ssh/config"))
    try:
        config = paramiko.SSHConfig.from_path(str(path)) if path.is_file() \
            else paramiko.SSHConfig()
        return config.lookup(host)
    except Exception as exc:  # paramiko raises several types for malformed files or Match exec
        raise ConfigError(f"cannot read SSH config '{path}' for host '{host}': {exc}",
                          "fix the file (ssh -G HOST shows how ssh reads it)") from None


def _number(value: Any, key: str, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"~/.ssh/config: {key} {value!r} is not a number",
                          f"fix {key} in ~/.ssh/config") from None


def resolve(spec: str, config_path: Optional[Path] = None, *, follow_jumps: bool = True) -> HostSpec:
    """The connection facts for a target string, with ``~/.ssh/config`` applied."""
    user, host, port = parse_target(spec)
    entry = _lookup(config_path, host)
    hostname = entry.get("hostname", host)
    keyfiles = tuple(os.path.expanduser(p) for p in entry.get("identityfile", []))
    if not keyfiles:
        keyfiles = tuple(os.path.expanduser(f"~/.ssh/{name}") for name in DEFAULT_KEY_FILES)
    known = entry.get("userknownhostsfile", "~/.ssh/known_hosts").split()
    jump = entry.get("proxyjump", "none") if follow_jumps else "none"
    hops = () if jump.lower() == "none" else tuple(h.strip() for h in jump.split(",") if h.strip())
    return HostSpec(
        alias=host,
        hostname=hostname,
        port=port or _number(entry.get("port", 22), "Port", int),
        user=user or entry.get("user") or getpass.getuser(),
        identity_files=keyfiles,
        known_hosts_files=tuple(os.path.expanduser(p) for p in known),
        proxy_jump=hops,
        connect_timeout=_number(entry.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT),
                                "ConnectTimeout"),
        keepalive=_number(entry.get("serveraliveinterval", DEFAULT_KEEPALIVE),
                          "ServerAliveInterval") or DEFAULT_KEEPALIVE,
        keepalive_count=_number(entry.get("serveralivecountmax", DEFAULT_KEEPALIVE_COUNT),
                                "ServerAliveCountMax", int),
        accept_new_host_key=entry.get("stricthostkeychecking", "").lower() == "accept-new",
    )


def read_hosts_file(path: Path) -> list[str]:
    """Targets from a hosts file: one per line, ``#`` starts a comment, blank lines skipped."""
    from edgeship.runtime.textfiles import read_text

    text = read_text(path, f"hosts file '{path}'", "write one [user@]host[:port] or alias per "
                     "line, as UTF-8 text")
    hosts = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    hosts = [h for h in hosts if h]
    for h in hosts:
        parse_target(h)
    if not hosts:
        raise ConfigError(f"hosts file '{path}' names no targets",
                          "write one [user@]host[:port] or alias per line")
    return hosts

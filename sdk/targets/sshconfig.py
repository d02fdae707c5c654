"""Target strings and ``~/.ssh/config``: which host, port, user, keys and jump hosts.

A target is ``[user@]host[:port]`` (``[v6addr]:port`` for IPv6) or a ``Host`` alias from
``~/.ssh/config``; explicit user and port win over the config, as with ``ssh``.  Honoured
config keys: HostName, User, Port, IdentityFile, ProxyJump (``host``, ``user@host:port`` or
``ssh://user@host:port``, comma-separated hops), ProxyCommand (tokens %h %p %r %n %u %d %%,
each value shell-quoted), UserKnownHostsFile and GlobalKnownHostsFile (several files each),
HashKnownHosts, ConnectTimeout, ServerAliveInterval, ServerAliveCountMax,
StrictHostKeyChecking (``accept-new`` only: host keys are always checked).  Target strings
are validated before anything reads them, so a string with spaces, quotes, ``;`` or ``$()`` is
refused here and never reaches a shell or a config ``Match exec``.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgeship.core.errors import ConfigError

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_KEEPALIVE = 5.0  # seconds between keepalives
DEFAULT_KEEPALIVE_COUNT = 3  # missed keepalives before the link counts as dead
DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")
# what ssh reads when the config names none (ssh_config(5))
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")

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
    known_hosts_files: tuple[str, ...]  # UserKnownHostsFile: new keys go to the first
    global_known_hosts_files: tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS
    proxy_jump: tuple[str, ...] = ()  # hops, first one first, each a target string
    proxy_command: Optional[str] = None  # tokens expanded, values shell-quoted
    hash_known_hosts: bool = False
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

    @property
    def all_known_hosts_files(self) -> tuple[str, ...]:
        """Every known_hosts file ssh would read for this host, user files first."""
        return self.known_hosts_files + self.global_known_hosts_files


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


def _raw_config_class() -> Any:
    import paramiko

    class RawProxyCommand(paramiko.SSHConfig):  # type: ignore[misc]
        """paramiko expands ProxyCommand's tokens unquoted; keep it raw and expand it here."""

        TOKENS_BY_CONFIG_KEY = {k: v for k, v in paramiko.SSHConfig.TOKENS_BY_CONFIG_KEY.items()
                                if k != "proxycommand"}

    return RawProxyCommand


def _lookup(path: Optional[Path], host: str) -> Any:
    """``host``'s settings from the SSH config file (empty when there is no file)."""
    path = path or Path(os.path.expanduser("~/.ssh/config"))
    config_class = _raw_config_class()
    try:
        config = config_class.from_path(str(path)) if path.is_file() else config_class()
        return config.lookup(host)
    except Exception as exc:  # paramiko raises several types for malformed files or Match exec
        raise ConfigError(f"cannot read SSH config '{path}' for host '{host}': {exc}",
                          "fix the file (ssh -G HOST shows how ssh reads it)") from None


def expand_tokens(value: str, tokens: dict[str, str], key: str, *, quote: bool = False) -> str:
    """OpenSSH's ``%x`` tokens (and a leading ``~``) in a config value; with ``quote`` each
    value is shell-quoted, so a host name can never add words to a ProxyCommand."""
    out, i = [], 0
    if value.startswith("~/") or value == "~":
        value = os.path.expanduser("~") + value[1:]
    while i < len(value):
        c = value[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        token = value[i:i + 2]
        if token == "%%":
            out.append("%")
        elif token in tokens:
            out.append(shlex.quote(tokens[token]) if quote else tokens[token])
        else:
            raise ConfigError(f"~/.ssh/config: {key} uses {token!r}, which edgeship does not "
                              "expand", f"use only {' '.join(sorted(tokens))} %% in {key}")
        i += 2
    return "".join(out)


def _files(value: Optional[str], default: tuple[str, ...], key: str,
           tokens: dict[str, str]) -> tuple[str, ...]:
    if value is None:
        return tuple(os.path.expanduser(p) for p in default)
    try:
        names = shlex.split(value)
    except ValueError:
        raise ConfigError(f"~/.ssh/config: {key} {value!r} has unbalanced quotes",
                          f"fix {key}") from None
    if [n.lower() for n in names] == ["none"]:
        return ()
    return tuple(expand_tokens(n, tokens, key) for n in names)


def jump_hops(value: str) -> tuple[str, ...]:
    """ProxyJump's hops as target strings: ``[user@]host[:port]`` or ``ssh://`` URIs."""
    if value.strip().lower() == "none":
        return ()
    hops = []
    for hop in (h.strip() for h in value.split(",")):
        if not hop:
            continue
        if hop.lower().startswith("ssh://"):
            hop = hop[len("ssh://"):]
            hop = hop[:-1] if hop.endswith("/") else hop
        parse_target(hop)  # refused here, with the reason, before anything connects
        hops.append(hop)
    return tuple(hops)


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
    port = port or _number(entry.get("port", 22), "Port", int)
    user = user or entry.get("user") or getpass.getuser()
    tokens = {"%h": hostname, "%p": str(port), "%r": user, "%n": host,
              "%u": getpass.getuser(), "%d": os.path.expanduser("~")}
    jump = jump_hops(entry.get("proxyjump", "none")) if follow_jumps else ()
    command = entry.get("proxycommand")
    command = None if command is None or command.strip().lower() == "none" else \
        expand_tokens(command.strip(), tokens, "ProxyCommand", quote=True)
    if jump and command:
        raise ConfigError(f"~/.ssh/config sets both ProxyJump and ProxyCommand for '{host}'",
                          "keep one of them for that host")
    return HostSpec(
        alias=host,
        hostname=hostname,
        port=port,
        user=user,
        identity_files=keyfiles,
        known_hosts_files=_files(entry.get("userknownhostsfile"), DEFAULT_USER_KNOWN_HOSTS,
                                 "UserKnownHostsFile", tokens),
        global_known_hosts_files=_files(entry.get("globalknownhostsfile"),
                                        DEFAULT_GLOBAL_KNOWN_HOSTS, "GlobalKnownHostsFile",
                                        tokens),
        proxy_jump=jump,
        proxy_command=command,
        hash_known_hosts=entry.get("hashknownhosts", "no").lower() == "yes",
        connect_timeout=_number(entry.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT),
                                "ConnectTimeout"),
        keepalive=_number(entry.get("serveraliveinterval", DEFAULT_KEEPALIVE),
                          "ServerAliveInterval") or DEFAULT_KEEPALIVE,
        keepalive_count=max(1, _number(entry.get("serveralivecountmax", DEFAULT_KEEPALIVE_COUNT),
                                       "ServerAliveCountMax", int)),
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

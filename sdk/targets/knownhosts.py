"""known_hosts as OpenSSH reads and writes it.

Every file ssh would read counts: the ``UserKnownHostsFile`` list (default
``~/.ssh/known_hosts ~/.ssh/known_hosts2``) and the ``GlobalKnownHostsFile`` list (default
``/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2``), so a key that contradicts any of them
is refused even with ``--accept-new-host-key``.  Lines may be hashed (``|1|salt|hmac``), list
several patterns with ``*``/``?`` wildcards and ``!`` negation, and carry a marker:
``@revoked`` keys are refused; ``@cert-authority`` lines are skipped with a warning, since
paramiko never asks a server for a host certificate.  A malformed line is skipped with a
warning, as ssh skips it, instead of breaking every connection.

New keys go to the first user file, written atomically (a temporary file in the same
directory, renamed over the old one, with the old file's mode) under a lock on the directory,
so concurrent fleet workers never lose or join entries and a file without a trailing newline
is repaired rather than extended mid-line.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Optional

log = logging.getLogger("edgeship.ssh")
REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"


@dataclass(frozen=True)
class KnownKey:
    """One key line of a known_hosts file that names the host looked up."""

    path: str
    line: int
    marker: Optional[str]  # None, "@revoked" or "@cert-authority"
    key_type: str
    blob: bytes

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _glob(pattern: str, name: str) -> bool:
    """OpenSSH's pattern match: ``*`` and ``?`` only (``[`` is literal: ``[host]:port``)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE | re.DOTALL) is not None


def _hashed_match(entry: str, name: str) -> bool:
    parts = entry.split("|")  # "", "1", salt, digest
    if len(parts) != 4 or parts[1] != "1":
        return False
    try:
        salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def host_matches(patterns: str, name: str) -> bool:
    """Whether a line's host field names ``name`` (hashed, or a pattern list with negation)."""
    if patterns.startswith("|"):
        return _hashed_match(patterns, name)
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if _glob(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            matched = True
    return matched


@cache
def _warn_once(message: str) -> None:
    log.warning("warning: %s", message)


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except IsADirectoryError:
        _warn_once(f"known hosts file '{path}' is a directory; it is ignored")
        return []
    except PermissionError:
        _warn_once(f"cannot read known hosts file '{path}' (permission denied); it is ignored")
        return []


def keys_for(name: str, paths: Sequence[str]) -> list[KnownKey]:
    """Every key line in ``paths`` whose host field names ``name`` (``host`` or ``[host]:port``)."""
    found = []
    for path in paths:
        for number, text in enumerate(_read_lines(path), 1):
            fields = text.split()
            if not fields or fields[0].startswith("#"):
                continue
            marker = fields.pop(0) if fields[0].startswith("@") else None
            if marker not in (None, REVOKED, CERT_AUTHORITY):
                _warn_once(f"{path}:{number}: unknown marker {marker}; the line is ignored")
                continue
            if len(fields) < 3:
                _warn_once(f"{path}:{number}: not 'host keytype key'; the line is ignored")
                continue
            if not host_matches(fields[0], name):
                continue
            if marker == CERT_AUTHORITY:
                _warn_once(f"{path}:{number}: @cert-authority lines are not supported (host "
                           f"certificates are never requested); it is ignored for {name}")
                continue
            try:
                blob = base64.b64decode(fields[2], validate=True)
            except (binascii.Error, ValueError):
                _warn_once(f"{path}:{number}: the key is not base64; the line is ignored")
                continue
            found.append(KnownKey(path, number, marker, fields[1], blob))
    return found


def hashed_name(name: str) -> str:
    """``name`` as ``HashKnownHosts yes`` writes it: ``|1|base64(salt)|base64(hmac-sha1)``."""
    salt = secrets.token_bytes(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@contextlib.contextmanager
def _locked_dir(directory: str) -> Iterator[None]:
    """An exclusive lock on ``directory`` itself: no lock file is left behind, and separate
    opens conflict even inside one process (flock locks belong to the open file)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def add_known_host(path: str, name: str, key_type: str, key_base64: str, *,
                   hash_name: bool = False) -> None:
    """Add ``name key_type key`` to ``path`` atomically, keeping its mode (0600 if new)."""
    real = os.path.realpath(path)  # keep a symlinked known_hosts a symlink
    directory = os.path.dirname(real)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with _locked_dir(directory):
        try:
            with open(real, "rb") as f:
                old = f.read()
            mode = stat.S_IMODE(os.stat(real).st_mode)
        except FileNotFoundError:
            old, mode = b"", 0o600
        if any(host_matches(fields[0], name) and fields[1:3] == [key_type, key_base64]
               for fields in (ln.split() for ln in old.decode(errors="replace").splitlines())
               if len(fields) >= 3 and not fields[0].startswith("@")):
            return  # another worker of this fleet recorded it a moment ago
        if old and not old.endswith(b"\n"):
            old += b"\n"
        entry = f"{hashed_name(name) if hash_name else name} {key_type} {key_base64}\n"
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".known_hosts.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), mode)
                f.write(old + entry.encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, real)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

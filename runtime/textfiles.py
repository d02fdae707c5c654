"""Reading a user's text and JSON files: every way one can be wrong is one ConfigError.

A file from a user (a report, a manifest, a hosts file) may be binary, not UTF-8, nested
100000 deep (the parser recurses), or hold a 5000-digit integer (Python refuses to parse
integers over 4300 digits); none of those may surface as a traceback.  Stdlib only: the runtime
reads manifests on the device with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

from edgeship.runtime.errors import ConfigError

MAX_TEXT_BYTES = 64 * 1024 * 1024  # no profile, recipe, report or manifest is this big


def read_text(path: Union[str, Path], what: str, fix: str) -> str:
    """The UTF-8 text of ``path``; ``what`` names the file in the error ("hosts file 'x'")."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            raise ConfigError(f"{what} is {path.stat().st_size // 2**20} MB, larger than any "
                              "such file should be", fix)
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist", "check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory", "pass a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x})",
                          fix) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", "check the path and "
                          "its permissions") from None


@contextmanager
def refusing_absurd_files(what: str, fix: str, language: str) -> Iterator[None]:
    """What JSON and YAML parsers share: they recurse (absurd nesting is a RecursionError) and
    parse integers with ``int()`` (one over 4300 digits is a ValueError)."""
    try:
        yield
    except RecursionError:
        raise ConfigError(f"{what} nests too deeply to be a real file", fix) from None
    except ValueError as exc:
        detail = ("an integer too long to be real" if "digits" in str(exc)
                  else " ".join(str(exc).split())[:120])
        raise ConfigError(f"{what} holds a value {language} readers refuse ({detail})",
                          fix) from None


def parse_json(text: str, what: str, fix: str) -> Any:
    """``json.loads`` where malformed, absurdly nested or absurdly long numbers are ConfigErrors."""
    with refusing_absurd_files(what, fix, "JSON"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg})", fix) from None


def read_json(path: Union[str, Path], what: str, fix: str) -> Any:
    """``parse_json(read_text(path))``."""
    return parse_json(read_text(path, what, fix), what, fix)

"""Reading a user's YAML (profiles, recipes): every way it can be wrong is one ConfigError.

``yaml.safe_load`` builds no objects, but it recurses (5000 nested brackets are a
RecursionError), and it parses integers with ``int()`` (a 5000-digit one is a ValueError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from edgeship.core.errors import ConfigError
from edgeship.runtime.textfiles import read_text, refusing_absurd_files


def parse_yaml(text: str, what: str, fix: str) -> Any:
    """``yaml.safe_load(text)``; ``what`` names the source in the error ("profile 'x.yaml'")."""
    import yaml

    with refusing_absurd_files(what, fix, "YAML"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            problem = (getattr(exc, "problem", None) or " ".join(str(exc).split())[:120]
                       or "syntax error")
            raise ConfigError(f"{what} is not valid YAML{where}: {problem}", fix) from None


def read_yaml(path: Union[str, Path], what: str, fix: str) -> Any:
    """``parse_yaml(read_text(path))``: missing, unreadable and non-UTF-8 files included."""
    return parse_yaml(read_text(path, what, fix), what, fix)

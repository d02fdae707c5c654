"""Small stdlib-only Python programs that run on the device (``python3 -c SOURCE ARGS``).

They are ordinary files so they can be read, linted and tested here; ``source(name)`` hands
their text to the SSH target.  Each keeps to Python 3.5 syntax (no f-strings, no annotations)
so that an old device Python can still run far enough to say it is too old.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def source(name: str) -> str:
    """The text of ``remote/<name>.py``."""
    return (Path(__file__).parent / f"{name}.py").read_text()

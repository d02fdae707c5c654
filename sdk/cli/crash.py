"""What the CLI does with an exception nobody expected: save the traceback, say where, exit 70.

Exit 1 means "a budget was missed" to CI, so a bug must never exit 1; 70 is EX_SOFTWARE
(sysexits.h).  The traceback goes to the user's state directory, never the current directory
(a user's folders are theirs): ``$XDG_STATE_HOME/edgeship/crash/`` when that is set, else
``~/.cache/edgeship/crash/``, else the system temp directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

from edgeship.runtime.errors import EXIT_INTERNAL, EXIT_INTERRUPTED

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "crash_dirs", "report_crash", "save_traceback"]


def crash_dirs() -> list[Path]:
    """Where tracebacks go, in order of preference."""
    state = os.environ.get("XDG_STATE_HOME")
    dirs = [Path(state) / "edgeship" / "crash"] if state else []
    dirs.append(Path.home() / ".cache" / "edgeship" / "crash")
    dirs.append(Path(tempfile.gettempdir()) / f"edgeship-crash-{os.getuid()}")
    return dirs


def save_traceback(exc: BaseException, argv: list[str]) -> Optional[Path]:
    """Write the traceback (and the command line) to a new file; None when nowhere is writable.
    An error the measurement agent sent back carries the agent's traceback: that one is saved."""
    remote = getattr(exc, "traceback_text", "")
    text = (f"edgeship {' '.join(argv)}\npython {sys.version.split()[0]} on {sys.platform}\n\n"
            + (f"the measurement agent's traceback:\n{remote}" if remote else
               "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))))
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for folder in crash_dirs():
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, name = tempfile.mkstemp(prefix=f"{stamp}-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
                out.write(text)
            return Path(name)
        except OSError:
            continue
    return None


def report_crash(exc: BaseException, argv: list[str]) -> int:
    """Print the one line for an unexpected exception and return its exit code (70)."""
    saved = save_traceback(exc, argv)
    detail = " ".join((str(getattr(exc, "problem", "")) or f"{type(exc).__name__}: {exc}"
                       ).split())[:200]
    where = f"traceback saved to {saved}" if saved else "the traceback could not be saved"
    print(f"error: internal error ({detail}); {where}. Fix: this is a bug in edgeship; "
          "please report it with that file", file=sys.stderr)
    return EXIT_INTERNAL

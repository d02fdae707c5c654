"""An output directory written all at once: staged in a hidden temporary directory beside it,
renamed into place at the end, never half-written, never over a user's files.

- ``DIR`` missing: created by one rename at the end.
- ``DIR`` exists: refused unless ``force``; with ``force`` it is replaced only when everything
  in it was written by edgeship (listed in its ``summary.json``) or it is empty.
- Anything failing before the rename (a disk filling up included) removes the staging
  directory and leaves ``DIR`` as it was.

Example:
    >>> with OutputDir("out", force=False) as out:          # doctest: +SKIP
    ...     out.write("summary.json", "{}")
    ...     out.commit()
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

from edgeship.core.errors import ConfigError

SUMMARY = "summary.json"
SUMMARY_SCHEMA = "edgeship.compress/1"


def foreign_files(path: Path) -> list[str]:
    """Files in ``path`` that edgeship's ``summary.json`` there does not list (all of them when
    there is no such summary)."""
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir()
                   or p.is_symlink())
    try:
        summary = json.loads((path / SUMMARY).read_text(encoding="utf-8"))
        ours = set(summary.get("files") or []) if summary.get("schema") == SUMMARY_SCHEMA else set()
    except (OSError, ValueError, AttributeError):
        ours = set()
    return [f for f in files if f not in ours]


def check_output_dir(path: Union[str, Path], force: bool) -> None:
    """Refuse (exit 2) an output directory that exists, unless ``force`` and edgeship owns it."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise ConfigError(f"output '{path}' exists and is not a directory",
                          "choose another output directory with -o")
    if not force:
        raise ConfigError(f"output directory '{path}' already exists",
                          "pass --force to replace an earlier compress output, or choose another -o")
    foreign = foreign_files(path)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConfigError(f"output directory '{path}' holds files edgeship did not write ({shown}); "
                          "--force only replaces an earlier compress output",
                          "move those files away or choose another -o")


def disk_error(exc: OSError, path: Path) -> ConfigError:
    """An OSError while writing output, as one line that says nothing was left behind."""
    what = "no space left on the device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    fix = ("free some space or write to another disk with -o" if exc.errno == errno.ENOSPC
           else "check the permissions of the output's parent directory, or choose another -o")
    return ConfigError(f"{what} while writing '{path}' (nothing was written)", fix)


class OutputDir:
    """Stage files for ``path``; ``commit()`` moves them into place in one rename."""

    def __init__(self, path: Union[str, Path], force: bool = False) -> None:
        self.path = Path(path).absolute()
        self.force = force
        self.staging: Optional[Path] = None
        self.files: list[str] = []
        self.committed = False

    def __enter__(self) -> OutputDir:
        check_output_dir(self.path, self.force)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.edgeship-",
                                                 dir=self.path.parent))
        except OSError as exc:
            raise disk_error(exc, self.path) from None
        umask = os.umask(0)
        os.umask(umask)
        self.staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would outlive the rename
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.staging is not None and not self.committed:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _target(self, relative: str) -> Path:
        assert self.staging is not None, "use OutputDir as a context manager"
        target = self.staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        self.files.append(relative)
        return target

    def write(self, relative: str, data: Union[str, bytes]) -> Path:
        target = self._target(relative)
        with open(target, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        return target

    def copy(self, source: Path, relative: str) -> Path:
        target = self._target(relative)
        shutil.copyfile(source, target)
        return target

    def commit(self) -> Path:
        """Move the staged directory into place (replacing an edgeship-owned one with force)."""
        assert self.staging is not None
        check_output_dir(self.path, self.force)  # again: the search took a while
        old = None
        if self.path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.edgeship-old-",
                                        dir=self.path.parent))
            os.replace(self.path, old / "previous")
        try:
            os.rename(self.staging, self.path)
        except OSError:
            if old is not None:
                os.replace(old / "previous", self.path)
                shutil.rmtree(old, ignore_errors=True)
            raise
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

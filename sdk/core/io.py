"""File output: the one rule for where a command writes (``resolve_output``) and atomic writes
(a temporary name beside the target, fsync, rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union


def write_atomic(path: Union[str, Path], data: Union[str, bytes]) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def resolve_output(output: Union[str, Path, None], default: Path, *, force: bool,
                   model: bool = False) -> Path:
    """The one output rule of every command that writes a file.

    ``output`` names a file, or an existing directory (then ``default``'s name inside it);
    None means ``default``.  A file that exists already (for a ``model``, also its manifest
    and companion files: the formats table's ``.bin`` beside an OpenVINO ``.xml``) is refused
    unless ``force``, with the same words whichever command asks.

    Example:
        >>> resolve_output("out/", Path("m.int8.onnx"), force=False)   # doctest: +SKIP
        PosixPath('out/m.int8.onnx')
    """
    from edgeship.core.errors import ConfigError

    target = Path(default) if output is None else Path(output)
    if output is not None and target.is_dir():
        target = target / Path(default).name
    elif output is not None and str(output).endswith(("/", os.sep)):
        raise ConfigError(f"output directory '{output}' does not exist",
                          "create it first, or name an output file with -o")
    if target.is_dir():
        raise ConfigError(f"output '{target}' is a directory", "name an output file with -o")
    if not force:
        taken = [p for p in (target, *(_beside(target) if model else ())) if p.exists()]
        if taken:
            raise ConfigError(f"output '{taken[0]}' already exists",
                              "pass --force to replace it, or choose another -o")
    return target


def _beside(model: Path) -> list[Path]:
    """The files that belong to a model written at ``model``: its manifest and companions."""
    from edgeship.runtime.formats import companions
    from edgeship.runtime.manifest import manifest_path

    return [manifest_path(model), *companions(model)]

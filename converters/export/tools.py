"""Converters that cannot be plain dependencies of edgeship, installed by one explicit command.

``edgeship tools install converters`` installs all of them (``edgeship tools install NAME``
one); a conversion that needs a missing one says which command installs it and never installs
anything itself.  Two kinds:

- own environment (onnx2tf: it pins tensorflow 2.19, numpy 1.26, onnx 1.19, onnxruntime 1.23):
  a virtual environment under ``$EDGESHIP_CACHE_DIR/tools/NAME`` (default
  ``~/.cache/edgeship/tools/NAME``), run as a subprocess;
- beside edgeship, without dependency resolution (onnx2torch, litert-torch): they hand back or
  take a live torch module, so they must share the process and its torch.  Their declared
  dependencies would break it (onnx2torch's torchvision replaces the CPU torch with a CUDA
  build, litert-torch's pins downgrade pydantic and pull transformers), so exactly the packages
  their conversions import are installed with ``pip --no-deps``.

Example:
    >>> from edgeship.converters.export.tools import install_tool
    >>> install_tool("onnx2tf")                       # doctest: +SKIP
    PosixPath('/home/me/.cache/edgeship/tools/onnx2tf')
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from edgeship.core.errors import ConfigError, MissingBackendError

MARKER = "edgeship-tool.json"  # written last: a venv without it is an unfinished install


@dataclass(frozen=True)
class Tool:
    name: str
    requirement: str  # what pip installs (own env: its own pins come with it)
    commands: tuple[str, ...]  # own env: executables in the venv that must answer "-h"
    purpose: str
    own_env: bool = True
    module: str = ""  # beside edgeship: the module whose presence means it is installed
    companions: tuple[str, ...] = ()  # beside edgeship: what its conversions import, --no-deps


TOOLS: dict[str, Tool] = {
    "onnx2tf": Tool("onnx2tf", "onnx2tf==1.29.24", ("onnx2tf", "onnxsim"), "ONNX -> TFLite"),
    "onnx2torch": Tool("onnx2torch", "onnx2torch==1.5.15", (), "ONNX -> torch (prune, distill)",
                       own_env=False, module="onnx2torch"),
    "litert-torch": Tool(
        "litert-torch", "litert-torch==0.10.0", (), "torch -> TFLite (fp32, fp16, int8)",
        own_env=False, module="litert_torch",
        companions=("litert-converter==0.5.0", "ai-edge-quantizer==0.10.0", "xdsl==0.28.0",
                    "torchao==0.18.0", "absl-py", "immutabledict==4.2.1", "ordered-set==4.1.0",
                    "lark", "multipledispatch", "litert-lm-builder", "jax==0.10.2",
                    "jaxlib==0.10.2", "opt_einsum==3.4.0")),
}
CONVERTERS = tuple(TOOLS)  # what `edgeship tools install converters` installs
INSTALL_ALL = "edgeship tools install converters"


def tools_dir() -> Path:
    base = os.environ.get("EDGESHIP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgeship")
    return Path(base) / "tools"


def get_tool(name: str) -> Tool:
    try:
        return TOOLS[name]
    except KeyError:
        raise ConfigError(f"unknown tool '{name}'", f"use one of: {', '.join(TOOLS)}") from None


def tool_env(name: str) -> Optional[Path]:
    """The finished environment of tool ``name``, or None when it is not installed (a tool
    beside edgeship: the directory its module is imported from)."""
    tool = get_tool(name)
    if not tool.own_env:
        import importlib.util

        spec = importlib.util.find_spec(tool.module)
        origin = spec.origin if spec is not None else None
        return Path(origin).parent if origin else None
    env = tools_dir() / tool.name
    ready = (env / MARKER).is_file() and all((env / "bin" / c).is_file() for c in tool.commands)
    return env if ready else None


def tool_version(env: Path, name: str = "onnx2tf") -> str:
    tool = get_tool(name)
    if not tool.own_env:
        from importlib import metadata

        try:
            return metadata.version(tool.requirement.split("==")[0])
        except metadata.PackageNotFoundError:
            return "unknown"
    return str(json.loads((env / MARKER).read_text())["version"])


def _run(argv: list[str], tool: Tool, cleanup: Optional[Path] = None, quiet: bool = False) -> None:
    out: Any = subprocess.PIPE if quiet else sys.stderr
    done = subprocess.run(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        if quiet:
            sys.stderr.write((done.stdout or b"").decode(errors="replace")[-4000:])
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise MissingBackendError(
            f"installing {tool.name} failed at '{Path(argv[0]).name} {' '.join(argv[1:3])}' "
            f"(exit {done.returncode})",
            f"check access to the package index and free disk space, then run "
            f"edgeship tools install {tool.name} again",
        )


def install_beside(tool: Tool, python: str = sys.executable) -> Path:
    """pip-install a tool and its companions into edgeship's own environment, --no-deps."""
    _run([python, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps",
          tool.requirement, *tool.companions], tool)
    _run([python, "-c", "import importlib.util, sys; "
          f"sys.exit(importlib.util.find_spec({tool.module!r}) is None)"], tool)
    return Path(python).parent.parent


def install_tool(name: str, force: bool = False, python: str = sys.executable) -> Path:
    """Create tool ``name``'s venv and pip-install it there; pip's output goes to stderr.

    An install that fails removes what it started and raises MissingBackendError.
    """
    tool = get_tool(name)
    if not tool.own_env:
        return install_beside(tool, python)
    env = tools_dir() / tool.name
    if tool_env(name) and not force:
        return env
    shutil.rmtree(env, ignore_errors=True)
    env.parent.mkdir(parents=True, exist_ok=True)
    py = str(env / "bin" / "python")
    steps = [[python, "-m", "venv", str(env)],
             [py, "-m", "pip", "install", "--disable-pip-version-check", tool.requirement]]
    for argv in steps:
        _run(argv, tool, cleanup=env)
    for command in tool.commands:  # each answers -h; its help text is shown only if it fails
        _run([str(env / "bin" / command), "-h"], tool, cleanup=env, quiet=True)
    dist = tool.requirement.split("==")[0]
    version = subprocess.run(
        [py, "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
        capture_output=True, text=True, check=True).stdout.strip()
    (env / MARKER).write_text(json.dumps({"tool": tool.name, "version": version,
                                          "requirement": tool.requirement}) + "\n")
    return env

"""Tool environments: converters whose pinned dependencies cannot share edgeship's environment.

Each tool gets its own virtual environment under ``$EDGESHIP_CACHE_DIR/tools/NAME`` (default
``~/.cache/edgeship/tools/NAME``), created only by ``edgeship tools install NAME``: a conversion
that needs a missing tool says which command installs it and never installs anything itself.

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
from typing import Optional

from edgeship.errors import ConfigError, MissingBackendError

MARKER = "edgeship-tool.json"  # written last: a venv without it is an unfinished install


@dataclass(frozen=True)
class Tool:
    name: str
    requirement: str  # what pip installs into the tool's venv (its own pins come with it)
    commands: tuple[str, ...]  # executables in the venv that must answer "-h"
    purpose: str


TOOLS: dict[str, Tool] = {
    # onnx2tf pins tensorflow 2.19, numpy 1.26, onnx 1.19, onnxruntime 1.23: never beside edgeship.
    "onnx2tf": Tool("onnx2tf", "onnx2tf==1.29.24", ("onnx2tf", "onnxsim"), "ONNX -> TFLite"),
}


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
    """The finished environment of tool ``name``, or None when it is not installed."""
    tool = get_tool(name)
    env = tools_dir() / tool.name
    ready = (env / MARKER).is_file() and all((env / "bin" / c).is_file() for c in tool.commands)
    return env if ready else None


def tool_version(env: Path) -> str:
    return str(json.loads((env / MARKER).read_text())["version"])


def install_tool(name: str, force: bool = False, python: str = sys.executable) -> Path:
    """Create tool ``name``'s venv and pip-install it there; pip's output goes to stderr.

    An install that fails removes what it started and raises MissingBackendError.
    """
    tool = get_tool(name)
    env = tools_dir() / tool.name
    if tool_env(name) and not force:
        return env
    shutil.rmtree(env, ignore_errors=True)
    env.parent.mkdir(parents=True, exist_ok=True)
    py = str(env / "bin" / "python")
    steps = [[python, "-m", "venv", str(env)],
             [py, "-m", "pip", "install", "--disable-pip-version-check", tool.requirement],
             *([str(env / "bin" / c), "-h"] for c in tool.commands)]
    for argv in steps:
        done = subprocess.run(argv, stdout=sys.stderr, stderr=sys.stderr, stdin=subprocess.DEVNULL,
                              check=False)
        if done.returncode != 0:
            shutil.rmtree(env, ignore_errors=True)
            raise MissingBackendError(
                f"installing {tool.name} failed at '{Path(argv[0]).name} {' '.join(argv[1:3])}' "
                f"(exit {done.returncode})",
                f"check access to the package index and free disk space, then run "
                f"edgeship tools install {tool.name} again",
            )
    dist = tool.requirement.split("==")[0]
    version = subprocess.run(
        [py, "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
        capture_output=True, text=True, check=True).stdout.strip()
    (env / MARKER).write_text(json.dumps({"tool": tool.name, "version": version,
                                          "requirement": tool.requirement}) + "\n")
    return env

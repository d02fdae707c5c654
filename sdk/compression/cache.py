"""Built compress candidates, cached by what determines them: the source model's sha256, the
recipe's steps and runtime, the calibration/training samples, and the versions of the tools
that build them.  A re-run with other budgets then only re-judges and re-measures.

The cache lives in ``$EDGESHIP_CACHE_DIR/candidates`` (default ``~/.cache/edgeship/candidates``);
``compress(cache=False)`` / ``--no-cache`` turns it off, ``cache=PATH`` / ``--cache-dir`` moves
it.  Entries are written to a temporary folder and renamed into place, so a crashed build never
leaves a half entry; a damaged entry is ignored and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

# the packages whose versions change what a recipe builds
TOOLS = ("edgeship", "onnx", "onnxruntime", "openvino", "nncf", "torch", "litert-torch",
         "ai-edge-litert", "onnx2torch", "torch-pruning")
META = "candidate.json"
# bumped when what a build writes changes meaning: 2, manifests record each tensor's source_name
# and source_perm (the runtime maps onnx2tf's NHWC back; a build without them would be misjudged);
# 3, full-int8 TFLite from ONNX is TensorFlow's converter on onnx2tf's saved_model
BUILD_FORMAT = 3


def default_cache_dir() -> Path:
    """``$EDGESHIP_CANDIDATE_CACHE``, else ``candidates`` in edgeship's cache root
    (``$EDGESHIP_CACHE_DIR``, default ``~/.cache/edgeship``, which also holds the tools)."""
    own = os.environ.get("EDGESHIP_CANDIDATE_CACHE")
    if own:
        return Path(own)
    root = os.environ.get("EDGESHIP_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "edgeship") / "candidates"


def tool_versions() -> dict[str, Optional[str]]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Optional[str]] = {}
    for name in TOOLS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    # onnx2tf lives in its own venv (edgeship tools install): its version is in its marker
    from edgeship.converters.export.tools import tool_env, tool_version

    env = tool_env("onnx2tf")
    found["onnx2tf"] = tool_version(env) if env is not None else None
    return found


def data_digest(arrays: list[Any]) -> str:
    """sha256 over the shapes, dtypes and bytes of the samples a build reads."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class CachedBuild:
    path: Path
    steps: list[dict[str, Any]]
    macs: Optional[int]


class CandidateCache:
    """Get and put built candidates under one key per (source, recipe, data, tools)."""

    def __init__(self, root: Union[str, Path], source_sha256: str, data_sha256: str) -> None:
        self.root = Path(root)
        self.base = {"build_format": BUILD_FORMAT, "source_sha256": source_sha256,
                     "data_sha256": data_sha256,
                     "tools": tool_versions()}

    def key(self, recipe: Any, extra: Optional[dict[str, Any]] = None) -> str:
        """``extra``: what else the build read (an accuracy-aware search's budget)."""
        what = {"steps": recipe.to_dict()["steps"], "backend": recipe.runs_on,
                "precision": recipe.precision, "extra": extra or {}} | self.base
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, recipe: Any, into: Path, extra: Optional[dict[str, Any]] = None
            ) -> Optional[CachedBuild]:
        """Copy a cached build into the directory ``into`` (the search edits its manifest)."""
        entry = self.root / self.key(recipe, extra)
        try:
            meta = json.loads((entry / META).read_text())
            into.mkdir(parents=True, exist_ok=True)
            for name in meta["files"]:
                shutil.copyfile(entry / name, into / name)
        except (OSError, ValueError, KeyError):
            return None
        return CachedBuild(into / meta["model"], meta["steps"], meta.get("macs"))

    def put(self, recipe: Any, path: Path, steps: list[dict[str, Any]], macs: Optional[int],
            extra: Optional[dict[str, Any]] = None) -> Optional[Path]:
        """Store a built model (its files and manifest); a full or read-only disk only costs
        the cache, never the search."""
        from edgeship.runtime.manifest import files_with_manifest

        entry = self.root / self.key(recipe, extra)
        if entry.is_dir():
            return entry
        files = files_with_manifest(path)
        staging = self.root / f".{entry.name}.{os.getpid()}.tmp"
        try:
            staging.mkdir(parents=True, exist_ok=False)
            for f in files:
                shutil.copyfile(f, staging / f.name)
            meta = {"model": path.name, "files": [f.name for f in files], "steps": steps,
                    "macs": macs, "recipe": recipe.to_dict(), **self.base}
            (staging / META).write_text(json.dumps(meta, indent=2, default=str))
            os.replace(staging, entry)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return None
        return entry

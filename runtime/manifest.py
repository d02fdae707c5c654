"""The one manifest reader: the JSON beside a model (``X.ext`` -> ``X.ext.manifest.json``).

The device reads manifests with this module alone (stdlib only), so it is the reader every
layer uses: ``edgeship.core.artifact`` validates what it returns into a typed ``Manifest``
and writes manifests (``ModelArtifact.save``, the one writer); nothing else parses them.
(``sdk/targets/remote/preflight.py`` keeps its own few lines: it ships as a lone script.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

from edgeship.runtime.errors import ModelError
from edgeship.runtime.formats import MANIFEST_SUFFIX, files_of


def manifest_path(model: Union[str, Path]) -> Path:
    """Where a model's manifest lives: ``X.ext.manifest.json`` beside ``X.ext``."""
    model = Path(model)
    return model.with_name(model.name + MANIFEST_SUFFIX)


def read_manifest_file(path: Union[str, Path]) -> dict[str, Any]:
    """A manifest file's JSON object; anything else is a one-line ModelError."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # bad UTF-8/JSON, 5000-digit ints
        raise ModelError(f"manifest '{path}' is unreadable: {' '.join(str(exc).split())[:160]}",
                         "re-export the model, or delete the broken manifest") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"manifest '{path}' is not a JSON object", "re-export the model")
    return manifest


def read_manifest(model: Union[str, Path]) -> Optional[dict[str, Any]]:
    """The manifest beside ``model`` as a dict, or None when there is none."""
    path = manifest_path(model)
    return read_manifest_file(path) if path.is_file() else None


def files_with_manifest(model: Union[str, Path]) -> list[Path]:
    """Everything to copy to move a model: ``formats.files_of`` and its manifest, if any."""
    path = manifest_path(model)
    return [*files_of(model), *([path] if path.is_file() else [])]

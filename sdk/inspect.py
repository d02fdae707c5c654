"""Describe a model: its inputs, outputs, what backend runs it, and its manifest."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Union


def inspect_model(
    model: Union[str, Path], backend: Optional[str] = None, threads: Optional[int] = None
) -> dict[str, Any]:
    """Load ``model`` once and describe it.

    Example:
        >>> inspect_model("examples/models/digits_cnn.onnx")["inputs"][0]["shape"]  # doctest: +SKIP
        [1, 1, 8, 8]
    """
    from edgeship.runtime import load
    from edgeship.runtime.bench import model_files

    path = Path(model)
    session = load(path, backend=backend, threads=threads)
    manifest_path = path.with_name(path.name + ".manifest.json")
    manifest = None
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError, RecursionError):  # bad UTF-8 or JSON, absurd nesting
            manifest = {"error": f"unreadable manifest {manifest_path.name}"}
    return {
        "model": str(path),
        "size_bytes": sum(f.stat().st_size for f in model_files(path)),
        "inputs": [s.to_dict() for s in session.inputs],
        "outputs": [s.to_dict() for s in session.outputs],
        "backend": asdict(session.info),
        "manifest": manifest,
    }

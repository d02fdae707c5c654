"""Shared by the model-zoo scripts: ONNX export (opset 17, TorchScript exporter) and the manifest.

The manifest follows edgeship's convention (sdk/artifact.py): ``X.onnx.manifest.json`` beside
``X.onnx`` with inputs/outputs, the preprocessing spec the model was trained with, labels and
provenance (the source weights file and its sha256, the steps that made the ONNX file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "examples" / "models"
DATA = REPO / "examples" / "data"


def export_onnx(model: Any, example: Any, path: Path, input_name: str = "input",
                output_name: str = "logits") -> Path:
    """Export an eval-mode torch module with a dynamic batch axis (opset 17, dynamo=False)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with torch.no_grad():
        torch.onnx.export(
            model.eval(), (example,), str(tmp), dynamo=False, opset_version=17,
            input_names=[input_name], output_names=[output_name],
            dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}},
        )
    tmp.replace(path)
    return path


def write_manifest(
    model_path: Path,
    *,
    preprocessing: Optional[dict[str, Any]],
    labels: Optional[list[str]],
    source: Path,
    steps: list[dict[str, Any]],
    task: Optional[str] = "classification",
    layout: Optional[str] = "NCHW",
) -> Path:
    """Describe ``model_path`` (read with onnx) and write its manifest beside it."""
    import onnx
    from edgeship import __version__
    from edgeship.core.io import write_atomic
    from edgeship.runtime.bench import sha256_file

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def tensors(values: Any, with_layout: bool) -> list[dict[str, Any]]:
        out = []
        for v in values:
            if v.name in initializers:
                continue
            t = v.type.tensor_type
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                     for d in t.shape.dim]
            entry: dict[str, Any] = {"name": v.name, "shape": shape,
                                     "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name}
            if with_layout:
                entry["layout"] = layout
            out.append(entry)
        return out

    manifest = {
        "schema": "edgeship.manifest/1",
        "format": "onnx",
        "file": model_path.name,
        "files": [model_path.name],
        "inputs": tensors(graph.input, True),
        "outputs": tensors(graph.output, False),
        "preprocessing": preprocessing,
        "labels": labels,
        "task": task,
        "provenance": {
            "source": source.name,
            "source_sha256": sha256_file(source),
            "steps": steps,
            "created_by": f"edgeship {__version__}",
        },
        "quantization": None,
        "parity": None,
    }
    path = model_path.with_name(model_path.name + ".manifest.json")
    write_atomic(path, json.dumps(manifest, indent=2) + "\n")
    return path

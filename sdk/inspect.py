"""Describe a model: its inputs, outputs, precision, cost, the backend that runs it, its manifest."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Union

from edgeship.runtime.formats import is_format


def inspect_model(
    model: Union[str, Path],
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
) -> dict[str, Any]:
    """Load ``model`` once and describe it.

    ``input_shapes`` sizes dynamic dimensions: each input then also shows the ``run_shape`` it
    would run at, a TFLite model is resized to it, and MACs are counted at it.  MACs that need
    a dimension nobody sized are ``None`` (unknown), with the reason in ``macs_unknown``.

    Example:
        >>> inspect_model("examples/models/digits_cnn.onnx")["inputs"][0]["shape"]  # doctest: +SKIP
        [1, 1, 8, 8]
    """
    from edgeship.core.errors import ConfigError
    from edgeship.precision import model_precision
    from edgeship.runtime import load
    from edgeship.runtime.formats import files_of
    from edgeship.runtime.inputs import check_input_names, resolve_shapes

    path = Path(model)
    session = load(path, backend=backend, threads=threads, input_shapes=input_shapes)
    check_input_names(session.inputs, input_shapes or {}, "--input-shape")
    unsized = None
    try:
        run_shapes: dict[str, Any] = resolve_shapes(session.inputs, input_shapes)
    except ConfigError as exc:
        run_shapes = {}  # a dynamic dimension nobody sized: shown as the model states it
        unsized = f"{exc.problem}: {exc.fix}"
    inputs = [s.to_dict() | {"run_shape": list(run_shapes[s.name]) if s.name in run_shapes
                             else None} for s in session.inputs]
    precision = model_precision(path, session)
    return {
        "model": str(path),
        "size_bytes": sum(f.stat().st_size for f in files_of(path)),
        "inputs": inputs,
        "outputs": [s.to_dict() for s in session.outputs],
        "precision": precision.to_dict() if precision else None,
        **_cost(path, run_shapes, unsized),
        "backend": asdict(session.info),
        "manifest": _manifest(path),
    }


def _cost(path: Path, shapes: dict[str, tuple[int, ...]], unsized: Optional[str]) -> dict[str, Any]:
    """Params and MACs counted on an ONNX graph at ``shapes``; MACs unknown (None) for other
    formats, or where a dynamic dimension has no size (``unsized`` says which)."""
    unknown: dict[str, Any] = {"params": None, "macs": None, "flops": None}
    if not is_format(path, "onnx"):
        return unknown | {"macs_unknown": f"counted on ONNX graphs, not {path.suffix} files"}
    from edgeship.converters.evaluate import count_onnx

    try:
        cost = count_onnx(path, shapes or None)
    except Exception as exc:  # noqa: BLE001 - a cost figure never blocks inspect
        return unknown | {"macs_unknown": f"could not be counted ({type(exc).__name__}: {exc})"[:200]}
    reason = None
    if cost.macs is None:
        reason = unsized or "; ".join(cost.uncounted)
    elif cost.uncounted:
        reason = f"{len(cost.uncounted)} compute node(s) not counted: " + ", ".join(cost.uncounted[:3])
    return {"params": cost.params, "macs": cost.macs, "flops": cost.flops, "macs_unknown": reason}


def _manifest(path: Path) -> Optional[dict[str, Any]]:
    from edgeship.core.errors import ModelError
    from edgeship.runtime.manifest import manifest_path, read_manifest

    try:
        return read_manifest(path)
    except ModelError:  # bad UTF-8 or JSON, absurd nesting, not an object: inspect goes on
        return {"error": f"unreadable manifest {manifest_path(path).name}"}

"""Move models between files and torch modules, for pruning and distillation.

In: an ONNX file becomes a torch module with onnx2torch, parity-checked against onnxruntime;
torch.export (.pt2) and TorchScript (.pt) files go through ONNX first.  Out: a pruned or
distilled module is written with ``edgeship.export`` (parity check + manifest), or as .pt2.

onnx2torch imports torchvision at import time, for two ops only (NonMaxSuppression and
RoiAlign).  Installing torchvision next to the CPU torch edgeship pins replaces torch with a
multi-GB CUDA build, so edgeship installs onnx2torch with ``pip install --no-deps onnx2torch`` and,
when torchvision is absent, lends it a placeholder module for the duration of that import only.
The placeholder's ops raise UnsupportedError naming the op if a converted model ever calls them;
no other code sees it, because it is removed from ``sys.modules`` straight after the import.

Example:
    >>> from edgeship.converters.onnx_to_torch import onnx_to_torch
    >>> module = onnx_to_torch("digits.onnx")       # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from edgeship.core.errors import MissingBackendError, ModelError, UnsupportedError
from edgeship.runtime.formats import FORMATS, SOURCES, is_format

# torchvision names onnx2torch binds at import time, and the ONNX op each one serves
_TORCHVISION_OPS = {
    "nms": "NonMaxSuppression",
    "box_convert": "NonMaxSuppression",
    "roi_align": "RoiAlign",
}


def _unavailable(name: str, onnx_op: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        raise UnsupportedError(
            f"the ONNX op {onnx_op} needs torchvision.ops.{name}, which edgeship does not install "
            "(it replaces the CPU torch build)",
            f"remove {onnx_op} from the model before pruning or distilling it",
        )

    return call


@contextmanager
def _torchvision_placeholder() -> Iterator[None]:
    """Make ``import torchvision`` succeed while onnx2torch imports, then forget it."""
    if importlib.util.find_spec("torchvision") is not None:
        yield  # a real torchvision is installed: use it
        return
    package = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    for name, onnx_op in _TORCHVISION_OPS.items():
        setattr(ops, name, _unavailable(name, onnx_op))
    package.ops = ops  # type: ignore[attr-defined]
    package.__path__ = []  # type: ignore[attr-defined]  # a package, so "torchvision.ops" resolves
    sys.modules["torchvision"], sys.modules["torchvision.ops"] = package, ops
    try:
        yield
    finally:
        # only onnx2torch's modules keep a reference; torch and everyone else see no torchvision
        for name in ("torchvision.ops", "torchvision"):
            if sys.modules.get(name) in (package, ops):
                del sys.modules[name]


def import_onnx2torch() -> Any:
    """The onnx2torch module, imported without torchvision."""
    if "onnx2torch" in sys.modules:
        return sys.modules["onnx2torch"]
    if importlib.util.find_spec("onnx2torch") is None:
        raise MissingBackendError(
            "pruning or distilling an ONNX model needs onnx2torch, which is not installed",
            "run: edgeship tools install converters (it installs onnx2torch without its "
            "torchvision requirement, which would replace torch)",
        )
    with _torchvision_placeholder():
        return importlib.import_module("onnx2torch")


def onnx_to_torch(
    model: Union[str, Path],
    *,
    check: bool = True,
    samples: Optional[np.ndarray] = None,
) -> Any:
    """Convert an ONNX file to a torch ``nn.Module`` (a ``torch.fx.GraphModule``).

    With ``check`` (default) the module and onnxruntime run the same inputs (8 seeded random
    ones, plus ``samples`` when given) and a difference beyond the "exact" parity tolerance
    raises OutputMismatchError naming the output and the figures.
    """
    from edgeship.converters.export.source import read_onnx

    path = Path(model)
    if not path.is_file():
        raise ModelError(f"model file '{path}' does not exist", "check the path")
    converter = import_onnx2torch()
    proto = read_onnx(path)
    try:
        module = converter.convert(proto)
    except NotImplementedError as exc:  # onnx2torch's way of saying "no converter for this op"
        raise UnsupportedError(
            f"onnx2torch cannot convert '{path.name}': {str(exc).splitlines()[0][:200]}",
            "prune or distill the source torch model instead of its ONNX export",
        ) from None
    module.eval()
    if check:
        check_conversion(path, module, samples)
    return module


def check_conversion(path: Path, module: Any, samples: Optional[np.ndarray] = None,
                     tolerance: str = "exact") -> Any:
    """The parity report of ``module`` against onnxruntime running ``path``; raises
    OutputMismatchError beyond ``tolerance`` (a key of ``parity.TOLERANCES``)."""
    from edgeship.converters.parity import (
        TOLERANCES,
        check_parity,
        fixed_batch,
        make_samples,
        session_runner,
    )
    from edgeship.runtime import load

    session = load(path, backend="onnxruntime")
    batch = make_samples(session.inputs, random=8, data=samples)

    def torch_runner(arrays: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        with torch.no_grad():  # errors propagate as they are (an UnsupportedError names its op)
            out = module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        return [t.numpy() for t in (out if isinstance(out, (tuple, list)) else [out])]

    return check_parity(
        session_runner(session), torch_runner, batch, tolerance=TOLERANCES[tolerance],
        output_names=[s.name for s in session.outputs],
        reference_name=f"onnxruntime running '{path.name}'",
        candidate_name="its onnx2torch conversion",
        reference_batch=fixed_batch(session.inputs),
    )


def load_torch_model(
    path: Union[str, Path], example: Optional[np.ndarray] = None
) -> tuple[Any, Optional[np.ndarray]]:
    """A model file as a trainable, prunable torch module with real layers (``nn.Conv2d``...),
    and one example batch to trace it with (``example``, or one the file defines).

    .onnx goes through onnx2torch.  A .pt2 (torch.export) or .pt (TorchScript) file is exported
    to ONNX first, then converted, each step parity-checked: their own modules cannot switch
    to train mode (exported programs) or hide their layer types (TorchScript), and torch-pruning
    needs both.  TorchScript records no input shape, so it needs ``example`` (one batch).
    Pickled modules and state_dicts are refused (edgeship never unpickles).
    """
    import tempfile

    import torch
    from edgeship.converters.export.base import ExportOptions
    from edgeship.converters.export.onnx import torch_to_onnx
    from edgeship.converters.export.source import resolve_source

    path = Path(path)
    source = resolve_source(path, None if example is None else torch.from_numpy(example))
    if example is None and source.kind == "torch":
        example = source.example_inputs[0].numpy()
    elif example is None:
        from edgeship.runtime.inputs import random_inputs

        example = next(iter(random_inputs(source.inputs[:1], seed=0).values()))
    if source.kind == "onnx":
        return onnx_to_torch(path), example
    with tempfile.TemporaryDirectory(prefix="edgeship-onnx2torch-") as tmp:
        onnx_path = Path(tmp) / FORMATS["onnx"].filename(path.stem)
        torch_to_onnx(source, onnx_path, ExportOptions(to="onnx"))
        return onnx_to_torch(onnx_path), example


# ---------------------------------------------------------------------------------------------
# back to files


def origin_of(model: Any) -> Optional[Path]:
    """The model file a step started from, when it started from one."""
    return Path(model) if isinstance(model, (str, Path)) else None


def torch_to_onnx_file(module: Any, path: Path, example: np.ndarray,
                       input_names: Optional[list[str]] = None,
                       output_names: Optional[list[str]] = None) -> Path:
    """The module as ONNX at ``path`` with the exporter ``edgeship export`` uses (no parity
    check, no manifest: for counting and for conversion round trips)."""
    import torch
    from edgeship.converters.export.base import ExportOptions
    from edgeship.converters.export.onnx import torch_to_onnx
    from edgeship.converters.export.source import resolve_source

    source = resolve_source(module, torch.from_numpy(example), input_names=input_names,
                            output_names=output_names)
    torch_to_onnx(source, path, ExportOptions(to="onnx"))
    return path


def _io_names(origin: Optional[Path]) -> tuple[Optional[list[str]], Optional[list[str]]]:
    """Keep an ONNX source's input and output names, so apps calling it by name still work."""
    if origin is None or not is_format(origin, "onnx"):
        return None, None
    from edgeship.converters.export.source import resolve_source

    source = resolve_source(origin)
    return [s.name for s in source.inputs], source.output_names


# what a pruned or distilled module is written as: ONNX, or torch.export's archive
MODEL_SUFFIXES = (FORMATS["onnx"].suffix, SOURCES["torch"].written)


def check_output(output: Union[str, Path, None]) -> Optional[Path]:
    """Refuse an output path that cannot be written before any training starts."""
    import os

    from edgeship.core.errors import ConfigError

    if output is None:
        return None
    path = Path(output)
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ConfigError(f"cannot write '{path.name}': unknown model suffix",
                          f"write {MODEL_SUFFIXES[0]} (exported, parity-checked) or "
                          f"{MODEL_SUFFIXES[1]} (torch.export)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to '{path.parent}': {exc.strerror or exc}",
                          "choose a writable output path with -o") from None
    if not os.access(path.parent, os.W_OK) or path.is_dir():
        raise ConfigError(f"cannot write '{path}'", "choose a writable output file with -o")
    return path


def save_torch(module: Any, output: Union[str, Path], example: np.ndarray, *,
               origin: Optional[Path] = None, step: Optional[dict[str, Any]] = None) -> Path:
    """Write a pruned or distilled module: .onnx through ``edgeship.export`` (parity-checked
    against the module, manifest whose provenance continues the origin's with ``step``), or
    .pt2 (``torch.export``, dynamic batch)."""
    path = check_output(output)
    assert path is not None
    if is_format(path, "onnx"):
        return _save_onnx(module, path, example, origin, step)
    return _save_pt2(module, path, example)


def _save_onnx(module: Any, output: Path, example: np.ndarray, origin: Optional[Path],
               step: Optional[dict[str, Any]]) -> Path:
    import torch
    from edgeship.converters.export import export
    from edgeship.core.artifact import Provenance, StepRecord, sha256_file
    from edgeship.runtime.manifest import read_manifest

    upstream = (read_manifest(origin) if origin else None) or {}
    inputs, outputs = _io_names(origin)
    artifact = export(module, "onnx", output, example_input=torch.from_numpy(example),
                      input_names=inputs, output_names=outputs,
                      preprocessing=upstream.get("preprocessing"), labels=upstream.get("labels"),
                      task=upstream.get("task"))
    # provenance continues the origin's: its source, its steps, then this step and the export
    exported = artifact.manifest.provenance
    artifact.manifest.provenance = Provenance.continued(
        upstream, [*([StepRecord(**step)] if step else []), exported.steps[-1]],
        source=str(origin) if origin else exported.source,
        source_sha256=sha256_file(origin) if origin else exported.source_sha256)
    artifact.save()
    return artifact.path


def _save_pt2(module: Any, output: Path, example: np.ndarray) -> Path:
    import tempfile

    import torch

    output.parent.mkdir(parents=True, exist_ok=True)
    # an example batch of 2: torch.export specialises a size-1 dimension to a constant
    two = torch.from_numpy(np.concatenate([example[:1], example[:1]]))
    program = torch.export.export(module.eval(), (two,),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    with tempfile.TemporaryDirectory(prefix=".edgeship-", dir=output.parent) as tmp:
        staged = Path(tmp) / output.name
        torch.export.save(program, str(staged))
        staged.replace(output)
    return output

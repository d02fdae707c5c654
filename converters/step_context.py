"""What a step works on and with: the ``Artifact`` between steps and the ``BuildContext``.

A recipe's steps (``edgeship.converters.steps``) run one after the other on an ``Artifact``,
a torch module (after prune or distill) or a model file with its manifest beside it (after
export or quantize).  The ``BuildContext`` carries what every step may need and no step owns:
the original model (the reference, and its torch form), the scratch directory each step
writes into, one example input, the training split (fine-tuning, distillation, the
accuracy-aware search) and the calibration samples, and the accuracy budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError, ModelError
from edgeship.runtime.session import TensorSpec

CALIB_SAMPLES = 300
EXPORT_PARITY_SAMPLES = 16


class Reference(Protocol):
    """The model a build starts from (``edgeship.compression.original.Original``)."""

    kind: str  # torch | onnx | openvino | tflite
    path: Optional[Path]
    specs: list[TensorSpec]
    manifest: Optional[dict[str, Any]]
    input_shapes: dict[str, tuple[int, ...]]
    input_fills: dict[str, Any]

    @property
    def stem(self) -> str: ...

    @property
    def module(self) -> Any: ...

    def torch(self, example: np.ndarray) -> Any: ...

    def reference(self) -> tuple[str, Callable[[list[np.ndarray]], list[np.ndarray]],
                                 Optional[int]]: ...


@dataclass(frozen=True)
class Artifact:
    """A model between steps: a torch module, or a file (its manifest beside it); the records
    of the steps that made it, and its MACs after a structural step (None: the original's)."""

    module: Any = None
    path: Optional[Path] = None
    steps: tuple[dict[str, Any], ...] = ()
    macs: Optional[int] = None

    def then(self, record: dict[str, Any], *, module: Any = None, path: Optional[Path] = None,
             macs: Optional[int] = None) -> Artifact:
        """The artifact a step made from this one (a module or a file), with the step's record
        appended; its MACs stay this one's unless the step counted new ones."""
        return Artifact(module, path, (*self.steps, record), self.macs if macs is None else macs)


@dataclass
class BuildContext:
    """What the steps of a build share; see the module docstring."""

    original: Reference
    scratch: Path
    example: np.ndarray  # one model-ready sample with its batch axis, for tracing
    train: Optional[SampleSet]  # pruning fine-tuning, distillation, the accuracy-aware search
    calibration: Optional[SampleSet]
    disjoint: bool = True  # the training samples are not the evaluation ones
    max_accuracy_drop: Optional[float] = None
    _count: int = field(default=0, repr=False)
    # ONNX files whose torch route to TFLite failed, and why: the next TFLite step (int8 after
    # fp32) goes to onnx2tf at once instead of failing the same way again
    _torch_failed: dict[Path, str] = field(default_factory=dict, repr=False)

    def start(self) -> Artifact:
        """The original, as the first step gets it."""
        return Artifact(module=self.original.module, path=self.original.path)

    def workdir(self) -> Path:
        """A fresh directory under the scratch directory (one per step output)."""
        self._count += 1
        path = self.scratch / f"step{self._count:03d}"
        path.mkdir(parents=True)
        return path

    def output(self, suffix: str) -> Path:
        """Where a step writes its model file: a fresh directory, the original's stem."""
        return self.workdir() / f"{self.original.stem}{suffix}"

    def torch(self, artifact: Artifact) -> Any:
        """The artifact as a torch module (the original's torch form is loaded once)."""
        if artifact.module is not None:
            return artifact.module
        if artifact.path == self.original.path:
            return self.original.torch(self.example)
        from edgeship.converters.onnx_to_torch import load_torch_model

        assert artifact.path is not None
        return load_torch_model(artifact.path, self.example)[0]

    def torch_input(self, artifact: Artifact) -> tuple[Any, Optional[np.ndarray]]:
        """What a torch-only converter (TFLite) takes: a torch file as it is, else a module
        (and the example input to trace it with)."""
        from edgeship.converters.export.source import TORCH_SUFFIXES

        if artifact.path is not None and artifact.path.suffix.lower() in TORCH_SUFFIXES:
            return artifact.path, None
        return self.torch(artifact), self.example

    def tflite_route(self, artifact: Artifact, convert: Callable[[Any, Any], Any]) -> Any:
        """``convert(model, example)`` through torch first, then through onnx2tf when the
        torch route fails on an ONNX file (EfficientNet-Lite0's program, Paddle graphs).  The
        onnx2tf runs of a build are shared (one per file, whatever the precision)."""
        from edgeship.converters.export.onnx2tf import shared_runs
        from edgeship.core.errors import EdgeshipError

        onnx_file = _onnx_for_tflite(artifact)
        torch_error = self._torch_failed.get(onnx_file) if onnx_file is not None else None
        if torch_error is None:
            try:
                return convert(*self.torch_input(artifact))
            except (EdgeshipError, Exception) as exc:  # noqa: BLE001 - onnx2tf is the fallback
                if onnx_file is None:
                    raise
                torch_error = self._torch_failed[onnx_file] = " ".join(str(exc).split())[:120]
        try:
            with shared_runs(self.scratch / "onnx2tf"):
                return convert(onnx_file, None)
        except EdgeshipError as exc:
            raise ModelError(f"{exc.one_line()} (and through torch: {torch_error})",
                             "export the model to ONNX/OpenVINO instead") from None

    def training(self, what: str) -> SampleSet:
        """The training split, for a step that trains (single-input models only)."""
        if self.train is None:
            raise ConfigError(f"{what} needs training samples", "pass --train-data (or --data)")
        if len(self.train.x) != 1:
            raise ConfigError(f"{what} here takes single-input models", "use a precision recipe")
        return self.train

    def calibration_data(self, limit: int = CALIB_SAMPLES) -> Any:
        """Up to ``limit`` calibration samples as the converters take them (None: random)."""
        samples = self.calibration
        return None if samples is None else samples.take(limit).for_converters(self.original.specs)

    def shapes(self, model: Any) -> Optional[dict[str, tuple[int, ...]]]:
        """``--input-shape`` for a converter reading the original's file (names match there)."""
        shapes = self.original.input_shapes
        return shapes or None if isinstance(model, Path) and model == self.original.path else None

    def search_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Labelled samples for an accuracy-aware search, never the evaluation ones: the training
        split's labels, or without labels the original's top-1 (so the search keeps agreement)."""
        train = self.train
        if train is None or not self.disjoint or self.max_accuracy_drop is None:
            raise ConfigError("accuracy-aware quantization needs an accuracy budget and training "
                              "samples apart from the evaluation ones",
                              "pass --max-accuracy-drop and --train-data (or more --data)")
        if len(train.x) != 1:
            raise ConfigError("the accuracy-aware search here takes single-input models",
                              "use plain int8 recipes")
        if train.y is not None:
            return train.x[0], train.y
        from edgeship.converters.evaluate import top1
        from edgeship.converters.parity import run_batched

        _, runner, batch = self.original.reference()
        return train.x[0], top1(run_batched(runner, train.x, batch)[0])


def _onnx_for_tflite(artifact: Artifact) -> Optional[Path]:
    """An ONNX file that onnx2tf can convert as it is (when installed), for a TFLite step
    whose torch route (onnx2torch + litert-torch, which keeps NCHW) fails."""
    from edgeship.converters.export.tools import tool_env
    from edgeship.runtime.formats import get_format

    # a file with a module is the original and its torch form (``then`` keeps one of them):
    # the file itself is what onnx2tf converts
    if artifact.path is not None and \
            artifact.path.suffix.lower() in get_format("onnx").suffixes and \
            tool_env("onnx2tf") is not None:
        return artifact.path
    return None


def copy_manifest_fields(path: Path, meta: Optional[dict[str, Any]]) -> None:
    """A model quantized from a torch module has no upstream manifest: give it the original's
    preprocessing, labels and task so the edge app gets what accuracy was measured with."""
    from edgeship.core.artifact import ModelArtifact

    if not meta:
        return
    try:
        artifact = ModelArtifact.load(path)
    except ModelError:
        return
    m = artifact.manifest
    changed = False
    for key in ("preprocessing", "labels", "task"):
        if getattr(m, key) is None and meta.get(key) is not None:
            setattr(m, key, meta[key])
            changed = True
    if changed:
        artifact.save()


__all__ = ["Artifact", "BuildContext", "Reference", "copy_manifest_fields"]

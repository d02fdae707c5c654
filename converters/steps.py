"""The steps: prune, distill, quantize, export, each a typed config and one ``apply``.

A step's config is a pydantic dataclass (unknown keys forbidden), which is also the recipe
YAML schema (``edgeship.recipe``): the ``step`` field (``prune | distill | quantize |
export``) says which one an entry is.  ``apply(artifact, ctx) -> artifact`` runs the step on
the model a recipe has so far (``step_context.Artifact``) with what the build shares
(``step_context.BuildContext``), by calling the public function of the same name
(``edgeship.prune``, ``distill``, ``quantize``, ``export``): one implementation, and a
step's defaults are that function's (``tests/test_steps.py`` holds them equal), save one:
a recipe's prune step removes channels (``structured: true``), the only pruning that makes a
model faster, where ``edgeship.prune`` zeroes weights unless told ``structured=True``.

To add a step: a frozen dataclass here with ``__pydantic_config__ = _FORBID``, a
``step: Literal["name"]`` field first, ``label()`` and ``apply(artifact, ctx)`` (a thin call of
its public function; put what every step needs on ``BuildContext``), then add it to ``Step``:
recipes load it by its ``step`` key and compress's builder runs it like the others.

Example:
    >>> QuantizeStep(backend="openvino").label()
    'quantize(int8 static, per-channel, openvino)'
    >>> ExportStep(to="tflite").format
    'tflite'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal, Optional, Union

from edgeship.converters.step_context import (
    EXPORT_PARITY_SAMPLES,
    Artifact,
    BuildContext,
    copy_manifest_fields,
)
from pydantic import ConfigDict, Field

_FORBID = ConfigDict(extra="forbid")


def native_format(backend: str) -> Optional[str]:
    """The format a backend is the first choice for in the formats table (onnxruntime -> onnx);
    also the format ``edgeship.quantize`` writes with that backend."""
    from edgeship.runtime.formats import FORMATS

    return next((name for name, fmt in FORMATS.items() if fmt.backends[0] == backend), None)


def _suffix(fmt: str) -> str:
    from edgeship.runtime.formats import get_format

    return get_format(fmt).suffixes[0]


@dataclass(frozen=True)
class PruneStep:
    """Remove a share of channels (structured) or weights; torch-pruning underneath."""

    __pydantic_config__ = _FORBID
    step: Literal["prune"] = "prune"
    sparsity: Annotated[float, Field(gt=0, lt=1)] = 0.5
    structured: bool = True
    importance: Literal["l1", "l2", "taylor"] = "l1"
    finetune_epochs: Annotated[int, Field(ge=0)] = 0

    def label(self) -> str:
        what = "channels" if self.structured else "weights"
        return f"prune({self.sparsity:.0%} {what}, {self.importance})"

    def apply(self, artifact: Artifact, ctx: BuildContext) -> Artifact:
        from edgeship.converters.prune import prune

        train = ctx.training("pruning")
        tune = (train.x[0], train.y) if self.finetune_epochs and train.y is not None else None
        result = prune(ctx.torch(artifact), self.sparsity, structured=self.structured,
                       importance=self.importance, example_input=ctx.example,
                       finetune_data=tune, epochs=self.finetune_epochs if tune else 0,
                       progress=False)
        record = {"step": "prune", "config": asdict(self) | {"achieved": result.achieved,
                                                              "macs_ratio": result.macs_ratio}}
        return Artifact(result.model, None, (*artifact.steps, record), result.after.macs)


@dataclass(frozen=True)
class DistillStep:
    """Train the current model to reproduce the original's outputs (and labels, if any)."""

    __pydantic_config__ = _FORBID
    step: Literal["distill"] = "distill"
    epochs: Annotated[int, Field(ge=1)] = 10
    temperature: Annotated[float, Field(gt=0)] = 4.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.7
    lr: Annotated[float, Field(gt=0)] = 1e-3

    def label(self) -> str:
        return f"distill({self.epochs} epochs, T={self.temperature:g})"

    def apply(self, artifact: Artifact, ctx: BuildContext) -> Artifact:
        from edgeship.converters.distill import distill

        train = ctx.training("distillation")
        original = ctx.original
        # an ONNX original teaches through onnxruntime (one pass), not through its torch form
        teacher = original.path if original.module is None and original.kind == "onnx" \
            else original.torch(ctx.example)
        data = (train.x[0], train.y) if train.y is not None else train.x[0]
        result = distill(teacher, ctx.torch(artifact), data, epochs=self.epochs,
                         temperature=self.temperature, alpha=self.alpha, lr=self.lr,
                         progress=False)
        best = max((h.val_accuracy for h in result.history if h.val_accuracy is not None),
                   default=None)
        record = {"step": "distill", "config": asdict(self) | {"val_accuracy": best,
                                                                "samples": len(train)}}
        return artifact.then(record, module=result.student)


@dataclass(frozen=True)
class QuantizeStep:
    """Quantize with one of ``edgeship.quantize``'s backends (which also fixes the format)."""

    __pydantic_config__ = _FORBID
    step: Literal["quantize"] = "quantize"
    mode: Literal["static", "dynamic", "fp16"] = "static"
    backend: Literal["onnxruntime", "openvino", "tflite"] = "onnxruntime"
    per_channel: bool = True
    calibration: Literal["minmax", "entropy", "percentile"] = "minmax"
    accuracy_aware: bool = False  # keep sensitive layers in fp32 until the accuracy budget holds
    # onnxruntime only: activation type (weights are always int8) and 7-bit weights for x86
    # CPUs without VNNI, whose vpmaddubsw saturates
    activations: Literal["uint8", "int8"] = "uint8"
    reduce_range: bool = False

    @property
    def format(self) -> str:
        fmt = native_format(self.backend)
        assert fmt is not None, f"the formats table has no format for {self.backend}"
        return fmt

    def label(self) -> str:
        what = {"static": "int8 static", "dynamic": "int8 dynamic", "fp16": "fp16"}[self.mode]
        extra = ", per-channel" if self.per_channel and self.mode == "static" else ""
        if self.backend == "onnxruntime" and self.mode == "static":
            extra += f", QDQ {'u8s8' if self.activations == 'uint8' else 's8s8'}"
            extra += ", 7-bit weights" if self.reduce_range else ""
        extra += ", accuracy-aware" if self.accuracy_aware else ""
        return f"quantize({what}{extra}, {self.backend})"

    def apply(self, artifact: Artifact, ctx: BuildContext) -> Artifact:
        from edgeship.converters.quantize import quantize

        if self.backend != "tflite":
            artifact = _as_file(artifact, ctx)
        out = ctx.output(_suffix(self.format))
        aware = self.accuracy_aware
        labelled = ctx.search_labels() if aware else None

        ort_only: dict[str, Any] = ({"activations": self.activations,
                                     "reduce_range": self.reduce_range}
                                    if self.backend == "onnxruntime" else {})

        def convert(model: Any, example: Any) -> Any:
            return quantize(
                model, out, mode=self.mode, backend=self.backend,
                calib=ctx.calibration_data() if self.mode == "static" else None,
                per_channel=self.per_channel, calibration=self.calibration, **ort_only,
                max_accuracy_drop=ctx.max_accuracy_drop if aware else None,
                data=labelled, example_input=example, input_shapes=ctx.shapes(model),
                input_fills=ctx.original.input_fills or None)

        result = (ctx.tflite_route(artifact, convert) if self.backend == "tflite"
                  else convert(artifact.path, None))
        config: dict[str, Any] = asdict(self) | {"params": result.params}
        if aware:
            config["search_labels"] = ("the training split's labels" if ctx.train is not None
                                       and ctx.train.y is not None
                                       else "the original model's top-1 (no labels given)")
        copy_manifest_fields(result.path, ctx.original.manifest)
        return artifact.then({"step": "quantize", "config": config}, path=result.path)


@dataclass(frozen=True)
class ExportStep:
    """Convert to a format (parity-checked by the exporter)."""

    __pydantic_config__ = _FORBID
    step: Literal["export"] = "export"
    to: Literal["onnx", "openvino", "tflite"] = "onnx"
    precision: Literal["fp32", "fp16"] = "fp32"

    @property
    def format(self) -> str:
        return self.to

    def label(self) -> str:
        return f"export({self.to}{'' if self.precision == 'fp32' else ', ' + self.precision})"

    def apply(self, artifact: Artifact, ctx: BuildContext) -> Artifact:
        from edgeship.converters.export import export

        out = ctx.output(_suffix(self.to))
        meta = ctx.original.manifest or {}

        # the exporter's parity check runs its real samples as one batch: a few bound its memory
        # (64 EfficientNet-Lite0 crops at once peaked at 3 GB); the Judge checks every sample
        def convert(model: Any, example: Any) -> Any:
            return export(model, self.to, out, precision=self.precision,
                          data=ctx.calibration_data(EXPORT_PARITY_SAMPLES), example_input=example,
                          input_shapes=ctx.shapes(model),
                          input_fills=ctx.original.input_fills or None,
                          preprocessing=meta.get("preprocessing"), labels=meta.get("labels"),
                          task=meta.get("task"))

        if artifact.path is not None and self.to != "tflite":
            exported = convert(artifact.path, None)
        elif self.to == "tflite":
            exported = ctx.tflite_route(artifact, convert)
        else:
            exported = convert(*ctx.torch_input(artifact))
        return artifact.then({"step": "export", "config": asdict(self)}, path=exported.path)


def _as_file(artifact: Artifact, ctx: BuildContext) -> Artifact:
    """The artifact as a file onnxruntime/OpenVINO quantizers read: ONNX exported if needed."""
    from edgeship.runtime.formats import get_format

    readable = (*get_format("onnx").suffixes, *get_format("openvino").suffixes)
    if artifact.path is not None and artifact.path.suffix.lower() in readable:
        return artifact
    return ExportStep(to="onnx").apply(artifact, ctx)


Step = Union[PruneStep, DistillStep, QuantizeStep, ExportStep]
StepField = Annotated[Step, Field(discriminator="step")]
TRAINING_STEPS = (PruneStep, DistillStep)  # steps that train on data (and are worth caching)

__all__ = ["DistillStep", "ExportStep", "PruneStep", "QuantizeStep", "Step", "StepField",
           "TRAINING_STEPS", "native_format"]

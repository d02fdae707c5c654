"""The pieces of one compress candidate: the original model, the data, building a recipe,
and judging the result against the original (parity and accuracy).

``compress`` (sdk/compress.py) drives these; the converters do the work (export, quantize,
prune, distill), this module only chains them and keeps what a report needs.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
from edgeship.core.errors import ConfigError, ModelError
from edgeship.recipe import DistillStep, ExportStep, PruneStep, QuantizeStep, Recipe, Step
from edgeship.runtime.session import TensorSpec

HOLDOUT_SHARE = 0.5  # without --train-data, this share of --data is kept for evaluation only
MIN_SPLIT = 20  # fewer samples than this are not split: calibration then sees the eval samples
RANDOM_EVAL_SAMPLES = 64  # evaluation inputs when no data is given (judged without labels)
CALIB_SAMPLES = 300
EXPORT_PARITY_SAMPLES = 16


# -- the original model ------------------------------------------------------------------------
@dataclass
class Original:
    """The model the user gave, and how to run it as the reference."""

    kind: str  # torch | onnx | openvino | tflite
    path: Optional[Path]
    specs: list[TensorSpec]
    output_names: list[str]
    sha256: str
    description: str
    manifest: Optional[dict[str, Any]]
    source: Any = None  # converters.export.source.Source for torch and ONNX models
    _torch: Any = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # --input-shape
    input_fills: dict[str, Any] = field(default_factory=dict)  # --input-value/--input-range

    @classmethod
    def open(cls, model: Any, example_input: Any = None,
             input_shapes: Optional[dict[str, tuple[int, ...]]] = None) -> Original:
        from edgeship.converters.onnx_shapes import fix_specs
        from edgeship.runtime.preprocess import read_manifest

        shapes = dict(input_shapes or {})
        if isinstance(model, (str, Path)) and Path(model).suffix.lower() in (".xml", ".tflite"):
            from edgeship.core.artifact import sha256_file
            from edgeship.runtime import load

            path = Path(model)
            session = load(path, precision="fp32" if path.suffix.lower() == ".xml" else None,
                           input_shapes=shapes or None)
            kind = "openvino" if path.suffix.lower() == ".xml" else "tflite"
            return cls(kind, path, fix_specs(list(session.inputs), shapes),
                       [s.name for s in session.outputs], sha256_file(path), str(path),
                       read_manifest(path), input_shapes=shapes)
        from edgeship.converters.export.source import resolve_source

        src = resolve_source(model, example_input, input_shapes=shapes or None)
        manifest = read_manifest(src.path) if src.path is not None else None
        return cls(src.kind, src.path, list(src.inputs), list(src.output_names), src.sha256,
                   src.description, manifest, source=src,
                   _torch=src.module if src.path is None else None,  # files: see torch()
                   input_shapes=shapes)

    @property
    def stem(self) -> str:
        return self.path.stem if self.path is not None else "model"

    @property
    def view(self) -> Any:
        """What ``Dataset.for_model`` binds to: the inputs, and the manifest (preprocessing)."""
        return _ModelView(self.specs, self.manifest)

    def layouts(self) -> list[Optional[str]]:
        ins = (self.manifest or {}).get("inputs") or []
        given = [i.get("layout") for i in ins] if len(ins) == len(self.specs) else []
        return given or [("NCHW" if len(s.shape) == 4 else None) for s in self.specs]

    def reference(self) -> tuple[str, Callable[[list[np.ndarray]], list[np.ndarray]], Optional[int]]:
        if self.source is not None:
            name, runner, batch = self.source.reference()
            return name, runner, batch
        from edgeship.converters.parity import session_batch, session_runner
        from edgeship.runtime import load

        assert self.path is not None
        session = load(self.path, precision="fp32" if self.kind == "openvino" else None,
                       input_shapes=self.input_shapes or None)
        return (f"{session.info.backend} {session.info.version}", session_runner(session),
                session_batch(session))

    def torch(self, example: np.ndarray) -> Any:
        """The original as a trainable torch module (ONNX through onnx2torch, parity-checked)."""
        if self._torch is None:
            if self.kind not in ("torch", "onnx") or self.path is None:
                raise ModelError(f"a {self.kind} model cannot be brought into torch",
                                 "start from the torch model or its ONNX export")
            from edgeship.converters.onnx_to_torch import load_torch_model

            self._torch, _ = load_torch_model(self.path, example)
        return self._torch


@dataclass(frozen=True)
class _ModelView:
    inputs: list[TensorSpec]
    manifest: Optional[dict[str, Any]]


# -- data -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Model-ready samples (one array per input, samples along axis 0) and optional labels."""

    x: list[np.ndarray]
    y: Optional[np.ndarray]
    source: str

    def __len__(self) -> int:
        return len(self.x[0])

    def take(self, index: np.ndarray) -> Split:
        return Split([a[index] for a in self.x], None if self.y is None else self.y[index],
                     self.source)

    def for_converters(self, specs: list[TensorSpec]) -> Union[np.ndarray, dict[str, np.ndarray]]:
        """What export/quantize take: one array for single-input models, else arrays by name."""
        return self.x[0] if len(self.x) == 1 else {s.name: a for s, a in zip(specs, self.x)}


@dataclass(frozen=True)
class Data:
    """The evaluation split every candidate is judged on, and the training split (calibration,
    distillation, the accuracy-aware search), never the same samples unless said so."""

    eval: Split
    train: Optional[Split]
    how: str
    disjoint: bool = True  # train and eval share no samples

    @property
    def training_samples(self) -> int:
        """Samples a model may be trained on without being evaluated on them too."""
        return len(self.train) if self.train is not None and self.disjoint else 0

    @property
    def labelled(self) -> bool:
        return self.eval.y is not None

    @property
    def calibration(self) -> Optional[Split]:
        return self.train

    def describe(self) -> dict[str, Any]:
        return {"evaluation_samples": len(self.eval), "evaluation_source": self.eval.source,
                "training_samples": len(self.train) if self.train is not None else 0,
                "training_source": self.train.source if self.train is not None else None,
                "labelled": self.labelled, "how": self.how}


def _bind(data: Any, original: Original) -> Split:
    from edgeship.core.data import Dataset

    dataset = data if isinstance(data, Dataset) else Dataset(data)
    feeds, labels = dataset.for_model(original.view).arrays()
    return Split([feeds[s.name] for s in original.specs], labels, str(dataset.source))


def load_data(original: Original, data: Any, train_data: Any, seed: int = 0) -> Data:
    """Bind the user's data to the model (shape, dtype, labels are checked here, before any
    candidate runs) and decide which samples evaluate and which train/calibrate."""
    from edgeship.converters.parity import batchable
    from edgeship.core.errors import UnsupportedError

    if not batchable(original.specs, {}):
        odd = next(s for s in original.specs if not s.shape or (isinstance(s.shape[0], int)
                                                                 and s.shape[0] > 1))
        raise UnsupportedError(
            f"compress evaluates samples stacked along axis 0, and input '{odd.name}' of shape "
            f"{list(odd.shape)} has no batch axis there (a scalar or a recurrent state)",
            "quantize or export the model (edgeship quantize/export run it sample by sample) "
            "and measure it with edgeship bench")
    if data is None:
        from edgeship.runtime.inputs import random_inputs

        if train_data is not None:
            raise ConfigError("--train-data without --data", "pass --data for evaluation too")
        specs = [TensorSpec(s.name, (1, *s.shape[1:]), s.dtype) for s in original.specs]
        feeds = [random_inputs(specs, seed=seed + i, fills=original.input_fills or None)
                 for i in range(RANDOM_EVAL_SAMPLES)]
        x = [np.concatenate([f[s.name] for f in feeds]) for s in specs]
        return Data(Split(x, None, "random inputs"), None,
                    f"no --data: {RANDOM_EVAL_SAMPLES} seeded random inputs, judged against the "
                    "original without labels; calibration on random inputs")
    evaluation = _bind(data, original)
    if train_data is not None:
        return Data(evaluation, _bind(train_data, original),
                    "--data evaluates, --train-data calibrates and trains")
    if len(evaluation) < MIN_SPLIT:
        return Data(evaluation, evaluation,
                    f"only {len(evaluation)} samples: calibration uses the evaluation samples, "
                    "nothing is trained on them", disjoint=False)
    order = np.random.default_rng(seed).permutation(len(evaluation))
    cut = int(round(len(order) * (1 - HOLDOUT_SHARE)))
    return Data(evaluation.take(np.sort(order[cut:])), evaluation.take(np.sort(order[:cut])),
                f"no --train-data: --data split (seed {seed}) into {len(order) - cut} samples "
                f"held out for evaluation and {cut} for calibration and training")


# -- building ---------------------------------------------------------------------------------
@dataclass
class _State:
    """A model between steps: a torch module, or a file (with its manifest beside it)."""

    module: Any = None
    path: Optional[Path] = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    macs: Optional[int] = None  # after structural steps; None: the original's


@dataclass
class Built:
    path: Path  # the model file (its side files and manifest beside it)
    steps: list[dict[str, Any]]
    macs: Optional[int]
    cached: bool = False  # copied from the candidate cache, not built now


class Builder:
    """Runs recipes; results of shared step prefixes (prune + distill) are reused."""

    def __init__(self, original: Original, data: Data, scratch: Path,
                 max_accuracy_drop: Optional[float], cache_dir: Optional[Path] = None) -> None:
        self.original = original
        self.data = data
        self.scratch = scratch
        self.max_accuracy_drop = max_accuracy_drop
        self._cache: dict[tuple[Step, ...], _State] = {}
        self._count = 0
        self.built_cache = None
        if cache_dir is not None:
            from edgeship.candidate_cache import CandidateCache, data_digest

            train = data.train
            arrays = [*(train.x if train is not None else []),
                      train.y if train is not None else None]
            self.built_cache = CandidateCache(cache_dir, original.sha256, data_digest(arrays))

    @property
    def example(self) -> np.ndarray:
        return np.ascontiguousarray(self.data.eval.x[0][:1])

    def build(self, recipe: Recipe) -> Built:
        """The recipe's model: from the candidate cache when it holds this exact build."""
        extra = self.cache_extra(recipe)
        if self.built_cache is not None:
            hit = self.built_cache.get(recipe, self._workdir(), extra)
            if hit is not None:
                return Built(hit.path, hit.steps, hit.macs, cached=True)
        built = self._build(recipe)
        if self.built_cache is not None:
            self.built_cache.put(recipe, built.path, built.steps, built.macs, extra)
        return built

    def cache_extra(self, recipe: Recipe) -> Optional[dict[str, Any]]:
        """What else a build reads, for its candidate-cache key (the accuracy-aware budget)."""
        return {"max_accuracy_drop": self.max_accuracy_drop} if any(
            isinstance(s, QuantizeStep) and s.accuracy_aware for s in recipe.steps) else None

    def _build(self, recipe: Recipe) -> Built:
        state = _State(path=self.original.path, module=self.original._torch)
        done: tuple[Step, ...] = ()
        for step in recipe.steps:
            done = (*done, step)
            cached = self._cache.get(done)
            if cached is None:
                cached = self._apply(step, state)
                if isinstance(step, (PruneStep, DistillStep)):
                    self._cache[done] = cached
            state = cached
        if state.path is None:
            raise ConfigError(f"recipe '{recipe.name}' ends without a model file",
                              "end it with an export or quantize step")
        return Built(state.path, state.steps, state.macs)

    def _workdir(self) -> Path:
        self._count += 1
        path = self.scratch / f"step{self._count:03d}"
        path.mkdir(parents=True)
        return path

    def _torch(self, state: _State) -> Any:
        if state.module is not None:
            return state.module
        if state.path == self.original.path:
            return self.original.torch(self.example)
        from edgeship.converters.onnx_to_torch import load_torch_model

        assert state.path is not None
        return load_torch_model(state.path, self.example)[0]

    def _file(self, state: _State) -> _State:
        """The state as a file onnxruntime/OpenVINO quantizers read: ONNX exported if needed."""
        if state.path is not None and state.path.suffix.lower() in (".onnx", ".xml"):
            return state
        return self._apply(ExportStep(to="onnx"), state)

    def _onnx_for_tflite(self, state: _State) -> Optional[Path]:
        """An ONNX file that onnx2tf can convert as it is (when installed), for a TFLite step
        whose torch route (onnx2torch + litert-torch, which keeps NCHW) fails."""
        from edgeship.converters.export.tools import tool_env

        if state.module is None and state.path is not None and \
                state.path.suffix.lower() == ".onnx" and tool_env("onnx2tf") is not None:
            return state.path
        return None

    def _tflite_route(self, state: _State, convert: Callable[[Any, Any], Any]) -> Any:
        """``convert(model, example)`` through torch first, then through onnx2tf when the
        torch route fails on an ONNX file (EfficientNet-Lite0's program, Paddle graphs)."""
        from edgeship.core.errors import EdgeshipError

        onnx_file = self._onnx_for_tflite(state)
        try:
            return convert(*self._torch_input(state))
        except (EdgeshipError, Exception) as exc:  # noqa: BLE001 - onnx2tf is the fallback
            if onnx_file is None:
                raise
            torch_error = exc
        try:
            return convert(onnx_file, None)
        except EdgeshipError as exc:
            raise ModelError(f"{exc.one_line()} (and through torch: "
                             f"{' '.join(str(torch_error).split())[:120]})",
                             "export the model to ONNX/OpenVINO instead") from None

    def _torch_input(self, state: _State) -> tuple[Any, Optional[np.ndarray]]:
        """What a torch-only converter (TFLite) takes: a torch file as it is, else a module
        (and the example input to trace it with)."""
        from edgeship.converters.export.source import TORCH_SUFFIXES

        if state.path is not None and state.path.suffix.lower() in TORCH_SUFFIXES:
            return state.path, None
        return self._torch(state), self.example

    def _apply(self, step: Step, state: _State) -> _State:
        if isinstance(step, PruneStep):
            return self._prune(step, state)
        if isinstance(step, DistillStep):
            return self._distill(step, state)
        if isinstance(step, ExportStep):
            return self._export(step, state)
        return self._quantize(step, state)

    def _training(self, what: str) -> Split:
        train = self.data.train
        if train is None:
            raise ConfigError(f"{what} needs training samples", "pass --train-data (or --data)")
        if len(train.x) != 1:
            raise ConfigError(f"{what} here takes single-input models", "use a precision recipe")
        return train

    def _prune(self, step: PruneStep, state: _State) -> _State:
        from edgeship.converters.prune import prune

        train = self._training("pruning")
        tune = (train.x[0], train.y) if step.finetune_epochs and train.y is not None else None
        result = prune(self._torch(state), step.sparsity, structured=step.structured,
                       importance=step.importance, example_input=self.example,
                       finetune_data=tune, epochs=step.finetune_epochs if tune else 0,
                       progress=False)
        record = {"step": "prune", "config": asdict(step) | {"achieved": result.achieved,
                                                              "macs_ratio": result.macs_ratio}}
        return _State(module=result.model, steps=[*state.steps, record], macs=result.after.macs)

    def _distill(self, step: DistillStep, state: _State) -> _State:
        from edgeship.converters.distill import distill

        train = self._training("distillation")
        original = self.original
        teacher = original.path if original._torch is None and original.kind == "onnx" \
            else original.torch(self.example)
        data = (train.x[0], train.y) if train.y is not None else train.x[0]
        result = distill(teacher, self._torch(state), data, epochs=step.epochs,
                         temperature=step.temperature, alpha=step.alpha, lr=step.lr,
                         progress=False)
        best = max((h.val_accuracy for h in result.history if h.val_accuracy is not None),
                   default=None)
        record = {"step": "distill", "config": asdict(step) | {"val_accuracy": best,
                                                                "samples": len(train)}}
        return _State(module=result.student, steps=[*state.steps, record], macs=state.macs)

    def _calibration(self, limit: int = CALIB_SAMPLES) -> Any:
        split = self.data.calibration
        return None if split is None else split.take(np.arange(min(len(split), limit))) \
            .for_converters(self.original.specs)

    def _export(self, step: ExportStep, state: _State) -> _State:
        from edgeship.converters.export import export
        from edgeship.runtime.formats import get_format

        out = self._workdir() / f"{self.original.stem}{get_format(step.to).suffixes[0]}"
        meta = self.original.manifest or {}
        # the exporter's parity check runs its real samples as one batch: a few bound its memory
        # (64 EfficientNet-Lite0 crops at once peaked at 3 GB); the Judge checks every sample
        def convert(model: Any, example: Any) -> Any:
            return export(model, step.to, out, precision=step.precision,
                          data=self._calibration(EXPORT_PARITY_SAMPLES), example_input=example,
                          input_shapes=self._shapes(model),
                          input_fills=self.original.input_fills or None,
                          preprocessing=meta.get("preprocessing"), labels=meta.get("labels"),
                          task=meta.get("task"))

        if state.path is not None and step.to != "tflite":
            artifact = convert(state.path, None)
        elif step.to == "tflite":
            artifact = self._tflite_route(state, convert)
        else:
            artifact = convert(*self._torch_input(state))
        record = {"step": "export", "config": asdict(step)}
        return _State(path=artifact.path, steps=[*state.steps, record], macs=state.macs)

    def _quantize(self, step: QuantizeStep, state: _State) -> _State:
        from edgeship.converters.quantize import quantize
        from edgeship.runtime.formats import get_format

        if step.backend != "tflite":
            state = self._file(state)
        out = self._workdir() / f"{self.original.stem}{get_format(step.format).suffixes[0]}"
        aware = step.accuracy_aware
        labelled = self._search_labels() if aware else None

        def convert(model: Any, example: Any) -> Any:
            return quantize(
                model, out, mode=step.mode, backend=step.backend,
                calib=self._calibration() if step.mode == "static" else None,
                per_channel=step.per_channel, calibration=step.calibration,
                **({"activations": step.activations, "reduce_range": step.reduce_range}
                   if step.backend == "onnxruntime" else {}),
                max_accuracy_drop=self.max_accuracy_drop if aware else None,
                data=labelled, example_input=example, input_shapes=self._shapes(model),
                input_fills=self.original.input_fills or None)

        result = (self._tflite_route(state, convert) if step.backend == "tflite"
                  else convert(state.path, None))
        config: dict[str, Any] = asdict(step) | {"params": result.params}
        if aware:
            config["search_labels"] = ("the training split's labels" if self.data.train
                                       and self.data.train.y is not None
                                       else "the original model's top-1 (no labels given)")
        record = {"step": "quantize", "config": config}
        _copy_manifest_fields(result.path, self.original.manifest)
        return _State(path=result.path, steps=[*state.steps, record], macs=state.macs)


    def _shapes(self, model: Any) -> Optional[dict[str, tuple[int, ...]]]:
        """``--input-shape`` for a converter reading the original's file (names match there)."""
        shapes = self.original.input_shapes
        return shapes or None if isinstance(model, Path) and model == self.original.path else None

    def _search_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """Labelled samples for an accuracy-aware search, never the evaluation ones: the training
        split's labels, or without labels the original's top-1 (so the search keeps agreement)."""
        train = self.data.train
        if train is None or not self.data.disjoint or self.max_accuracy_drop is None:
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


def _copy_manifest_fields(path: Path, meta: Optional[dict[str, Any]]) -> None:
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


def finish_manifest(path: Path, original: Original, steps: list[dict[str, Any]],
                    evaluation: Any) -> Optional[Path]:
    """Record the whole chain (from the user's model) and the parity/accuracy figures in the
    candidate's manifest; returns the manifest path (None when the file has none)."""
    from edgeship.core.artifact import ModelArtifact, Provenance, StepRecord, created_by

    try:
        artifact = ModelArtifact.load(path)
    except ModelError:
        return None
    m = artifact.manifest
    m.provenance = Provenance(source=original.description, source_sha256=original.sha256,
                              steps=[StepRecord(step=s["step"], config=_jsonable(s["config"]))
                                     for s in steps], created_by=created_by())
    export_parity = m.parity
    m.parity = evaluation.parity | {
        "accuracy": {"metric": evaluation.metric, "value": evaluation.accuracy,
                     "baseline": evaluation.baseline, "drop_points": evaluation.drop,
                     "estimated": evaluation.fidelity.estimated, "samples": evaluation.samples},
        "fidelity": _jsonable(evaluation.fidelity.to_dict()),
        "export": export_parity}
    return artifact.save()


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def copy_model(path: Path, directory: Path, stem: str) -> list[Path]:
    """Copy a model's files and manifest into ``directory`` as ``stem``; returns the copies."""
    from edgeship.runtime.bench import model_files
    from edgeship.runtime.preprocess import manifest_path

    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for f in model_files(path):
        target = directory / f"{stem}{f.suffix}"
        shutil.copyfile(f, target)
        copies.append(target)
    man = manifest_path(path)
    if man.is_file():
        import json

        data = json.loads(man.read_text())
        data["file"] = copies[0].name
        data["files"] = [c.name for c in copies]
        target = manifest_path(copies[0])
        target.write_text(json.dumps(data, indent=2) + "\n")
        copies.append(target)
    return copies


__all__ = ["Builder", "Built", "Data", "Original", "Split", "copy_model", "finish_manifest",
           "load_data"]

"""The model a compress run starts from, and the data it is judged and trained on.

``Original`` is the user's model and how to run it as the reference; ``load_data`` binds the
user's data to it (shapes, dtypes, labels checked before any candidate runs) and splits it
into the samples every candidate is evaluated on and the samples it is trained and calibrated
on (``Data``, two ``edgeship.core.data.SampleSet``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError, ModelError
from edgeship.runtime.formats import exact_precision_for
from edgeship.runtime.session import TensorSpec

HOLDOUT_SHARE = 0.5  # without --train-data, this share of --data is kept for evaluation only
MIN_SPLIT = 20  # fewer samples than this are not split: calibration then sees the eval samples
RANDOM_EVAL_SAMPLES = 64  # evaluation inputs when no data is given (judged without labels)


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
        from edgeship.runtime.manifest import read_manifest

        shapes = dict(input_shapes or {})
        kind = _session_kind(model)
        if kind is not None:
            from edgeship.core.artifact import sha256_file
            from edgeship.runtime import load

            path = Path(model)
            # OpenVINO runs bf16 on CPUs with AMX unless told otherwise: the reference runs
            # the file as it is (the formats table's exact precision)
            session = load(path, precision=exact_precision_for(path), input_shapes=shapes or None)
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
    def module(self) -> Any:
        """The torch module given (None for a file: its torch form loads on demand)."""
        return self._torch

    @property
    def stem(self) -> str:
        return self.path.stem if self.path is not None else "model"

    @property
    def view(self) -> Any:
        """What ``Dataset.for_model`` binds to: the inputs, and the manifest (preprocessing)."""
        from edgeship.converters.quantize.calib import ModelInputs

        return ModelInputs(self.specs, self.manifest)

    def reference(self) -> tuple[str, Callable[[list[np.ndarray]], list[np.ndarray]], Optional[int]]:
        if self.source is not None:
            name, runner, batch = self.source.reference()
            return name, runner, batch
        from edgeship.converters.parity import session_batch, session_runner
        from edgeship.runtime import load

        assert self.path is not None
        session = load(self.path, precision=exact_precision_for(self.path),
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


def _session_kind(model: Any) -> Optional[str]:
    """openvino or tflite for a file the runtime reads (no torch form, no ONNX source)."""
    if not isinstance(model, (str, Path)):
        return None
    from edgeship.runtime.formats import source_kind

    kind = source_kind(model)
    return kind if kind in ("openvino", "tflite") else None


# -- data -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Data:
    """The evaluation split every candidate is judged on, and the training split (calibration,
    distillation, the accuracy-aware search), never the same samples unless said so."""

    eval: SampleSet
    train: Optional[SampleSet]
    how: str
    disjoint: bool = True  # train and eval share no samples

    @property
    def training_samples(self) -> int:
        """SampleSet a model may be trained on without being evaluated on them too."""
        return len(self.train) if self.train is not None and self.disjoint else 0

    @property
    def labelled(self) -> bool:
        return self.eval.y is not None

    @property
    def calibration(self) -> Optional[SampleSet]:
        return self.train

    def describe(self) -> dict[str, Any]:
        return {"evaluation_samples": len(self.eval), "evaluation_source": self.eval.source,
                "training_samples": len(self.train) if self.train is not None else 0,
                "training_source": self.train.source if self.train is not None else None,
                "labelled": self.labelled, "how": self.how}


def _bind(data: Any, original: Original) -> SampleSet:
    from edgeship.core.data import Dataset

    dataset = data if isinstance(data, Dataset) else Dataset(data)
    samples = dataset.for_model(original.view).samples()
    by_name = samples.by_name()
    return SampleSet([by_name[s.name] for s in original.specs], samples.y, samples.source,
                     tuple(s.name for s in original.specs))


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
        return Data(SampleSet(x, None, "random inputs", tuple(s.name for s in specs)), None,
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




__all__ = ["Data", "Original", "load_data"]

"""Knowledge distillation: train a small student to reproduce a teacher's soft outputs.

loss = alpha * KL(softmax(t / T) || softmax(s / T)) * T^2 + (1 - alpha) * CE(s, labels)

The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T grows
(Hinton et al., 2015).  Without labels the loss is the soft term alone.  The teacher is a torch
module or any model file edgeship runs (ONNX through onnxruntime, OpenVINO IR, TFLite): its
outputs are computed once over the training samples, so an ONNX teacher costs one pass.  The
same training loop, with alpha = 0 and no teacher, fine-tunes pruned models.

Example:
    >>> import edgeship
    >>> result = edgeship.distill("teacher.onnx", student, "train.npz", epochs=20)  # doctest: +SKIP
    >>> result.history[-1].val_accuracy                                              # doctest: +SKIP
    0.97
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from edgeship.converters.evaluate import DataLike, ModelStats, load_labelled
from edgeship.converters.onnx_to_torch import check_output
from edgeship.converters.training import (
    EpochLog,
    TrainConfig,
    model_outputs,
    train_student,
)
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError


@dataclass
class DistillResult:
    """The trained student (best validation epoch), how it got there, teacher vs student.

    ``before`` holds the teacher's figures and ``after`` the student's, accuracy on the
    validation samples (None without labels).
    """

    student: Any  # torch.nn.Module
    history: list[EpochLog]
    config: TrainConfig
    before: ModelStats
    after: ModelStats
    output: Optional[Path] = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "history": [asdict(h) for h in self.history],
            "teacher": self.before.to_dict(),
            "student": self.after.to_dict(),
            "output": str(self.output) if self.output else None,
            "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------
# the step


def _split(data: SampleSet, val_data: Optional[DataLike], share: float, seed: int
           ) -> tuple[SampleSet, Optional[SampleSet]]:
    if val_data is not None:
        return data, load_labelled(val_data)
    if data.y is None or share == 0 or len(data) < 20:
        return data, None
    return data.split(share, seed)


def _check_outputs(teacher_out: np.ndarray, student_out: np.ndarray, labels: Optional[np.ndarray]
                   ) -> None:
    if teacher_out.ndim != 2 or student_out.ndim != 2:
        raise ConfigError(
            f"distillation needs (batch, classes) outputs; teacher gives "
            f"{teacher_out.shape[1:]}, student {student_out.shape[1:]}",
            "distill classifiers whose first output is the logits",
        )
    if teacher_out.shape[1] != student_out.shape[1]:
        raise ConfigError(
            f"the teacher has {teacher_out.shape[1]} outputs, the student {student_out.shape[1]}",
            "give a student with the same number of classes as the teacher",
        )
    if labels is not None and (labels.min() < 0 or labels.max() >= teacher_out.shape[1]):
        raise ConfigError(
            f"labels range over {labels.min()}..{labels.max()}, the model has "
            f"{teacher_out.shape[1]} classes", "pass class indices 0..classes-1",
        )


def resolve_student(student: Any, teacher: Any, sparsity: float, example: np.ndarray) -> Any:
    """The student as a torch module: a module (copied), a model file, or "pruned[:R]", the
    teacher with a share R of its channels removed (structured, L1, output layer protected)."""
    from edgeship.converters.onnx_to_torch import load_torch_model
    from edgeship.converters.prune import prune

    if isinstance(student, str) and (student == "pruned" or student.startswith("pruned:")):
        ratio = student.partition(":")[2]
        try:
            share = float(ratio) if ratio else sparsity
        except ValueError:
            raise ConfigError(f"bad student '{student}'", "write pruned:0.5, or pruned with "
                              "--sparsity") from None
        return prune(teacher, share, structured=True, example_input=example, progress=False).model
    if isinstance(student, (str, Path)):
        return load_torch_model(student, example)[0]
    return copy.deepcopy(student)


def _stats(model: Any, example: np.ndarray, val: Optional[SampleSet]) -> ModelStats:
    from edgeship.converters.evaluate import model_stats, module_stats

    labelled = val if val is not None and val.y is not None else None
    if isinstance(model, (str, Path)):
        return model_stats(model, *((labelled.array, labelled.y) if labelled else (None, None)))
    return module_stats(model, example, labelled)


def distill(
    teacher: Union[str, Path, Any],
    student: Union[str, Path, Any],
    data: DataLike,
    *,
    temperature: float = 4.0,
    alpha: float = 0.7,
    epochs: int = 10,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 64,
    sparsity: float = 0.5,
    val_data: Optional[DataLike] = None,
    output: Optional[Union[str, Path]] = None,
    progress: bool = True,
    seed: int = 0,
) -> DistillResult:
    """Distill ``teacher`` into ``student`` on ``data`` and return the trained student.

    Args:
        teacher: a torch module, or a model file (.onnx runs with onnxruntime; .xml, .tflite).
        student: a torch module (trained on a copy), a model file (.pt2, .pt TorchScript, .onnx
            via onnx2torch), or "pruned" / "pruned:R": the teacher with a share R (default
            ``sparsity``) of each layer's channels removed.
        data: .npz (``x`` samples, optional ``y`` labels), an array, or (x, y).
        val_data: validation samples; by default 10 % of a labelled ``data`` is held out.
        output: also export the student there (.onnx or .pt2).

    Example:
        >>> result = distill("teacher.onnx", "pruned:0.5", "train.npz", epochs=20)  # doctest: +SKIP
        >>> result.after.macs / result.before.macs                                   # doctest: +SKIP
        0.31
    """
    config = TrainConfig(temperature=temperature, alpha=alpha, epochs=epochs, lr=lr,
                         optimizer=optimizer, batch_size=batch_size, seed=seed)
    check_output(output)
    everything = load_labelled(data)
    train, val = _split(everything, val_data, config.val_share, seed)
    teacher_out = model_outputs(teacher, train.array, "teacher")
    student_spec = student if isinstance(student, (str, Path)) else type(student).__name__
    student = resolve_student(student, teacher, sparsity, train.array[:1])
    _check_outputs(teacher_out, model_outputs(student, train.array[:2], "student"), everything.y)
    before = _stats(teacher, train.array[:1], val)
    history = train_student(student, train, config=config, soft_targets=teacher_out, val=val,
                            progress=progress)
    result = DistillResult(student, history, config, before, _stats(student, train.array[:1], val))
    if output is not None:
        from edgeship.converters.onnx_to_torch import origin_of, save_torch

        origin = origin_of(teacher)
        result.output = save_torch(student, output, train.array[:1], origin=origin,
                                   step={"step": "distill", "config": asdict(config) | {
                                       "teacher": str(origin or type(teacher).__name__),
                                       "student": str(student_spec)}})
    return result


# ---------------------------------------------------------------------------------------------
# candidates for benchmarks/compression.py (and compress)


@dataclass(frozen=True)
class PrunedCandidate:
    """One pruned (and maybe distilled) model written as ONNX, ready to evaluate and bench."""

    name: str  # e.g. "prune-channels-50+distill"
    technique: str  # prune-unstructured | prune-channels | prune-channels+distill
    path: Path
    config: dict[str, Any]
    seconds: float  # wall time of pruning / distilling


def pruned_candidates(
    model: Union[str, Path, Any],
    data: DataLike,
    out_dir: Union[str, Path],
    *,
    sparsity: float = 0.5,
    epochs: int = 15,
    lr: float = 1e-2,
    example_input: Optional[np.ndarray] = None,
) -> list[PrunedCandidate]:
    """Write the prune rows of a compression table for ``model`` into ``out_dir``.

    Three ONNX files: unstructured magnitude pruning at ``sparsity``; structured channel
    pruning at ``sparsity`` with no training (what pruning alone does to accuracy); and the same
    structured prune distilled from ``model`` on labelled ``data`` for ``epochs``.  Accuracy,
    MACs and latency are for the caller to measure, on its own held-out data.

    Example:
        >>> rows = pruned_candidates("digits.onnx", "train.npz", "out/")   # doctest: +SKIP
        >>> [r.name for r in rows]                                         # doctest: +SKIP
        ['prune-unstructured-50', 'prune-channels-50', 'prune-channels-50+distill']
    """
    import time

    from edgeship.converters.prune import prune
    from edgeship.runtime.formats import FORMATS

    out = Path(out_dir)
    train = load_labelled(data)
    example = train.array[:1] if example_input is None else example_input
    pct = f"{round(100 * sparsity)}"
    rows = []
    runs: list[tuple[str, str, Callable[[Path], Any]]] = [
        (f"prune-unstructured-{pct}", "prune-unstructured",
         lambda path: prune(model, sparsity, example_input=example, output=path, progress=False)),
        (f"prune-channels-{pct}", "prune-channels",
         lambda path: prune(model, sparsity, structured=True, example_input=example, output=path,
                            progress=False)),
        (f"prune-channels-{pct}+distill", "prune-channels+distill",
         lambda path: distill(model, f"pruned:{sparsity}", train, epochs=epochs, lr=lr,
                              output=path, progress=False)),
    ]
    for name, technique, run in runs:
        start = time.perf_counter()
        target = out / FORMATS["onnx"].filename(name)
        result = run(target)
        rows.append(PrunedCandidate(name, technique, target,
                                    result.to_dict()["config"], time.perf_counter() - start))
    return rows

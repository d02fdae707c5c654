"""The training loop edgeship's converters share: knowledge distillation (soft targets at a
temperature, optionally with labels) and, with alpha = 0 and no teacher, the fine-tuning of
pruned models (``prune``).  ``distill`` builds a student and calls it; ``prune`` calls it to
recover accuracy after removing weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.converters.evaluate import accuracy_of
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """How a student is trained; validated on creation."""

    temperature: float = 4.0
    alpha: float = 0.7  # weight of the soft (teacher) term; 1 - alpha goes to the labels
    epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    weight_decay: float = 0.0
    val_share: float = 0.1  # held out for validation when no val_data is given and labels exist
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature:g}",
             "use a temperature such as 4"),
            (0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha:g}",
             "use e.g. 0.7 (1 = teacher only, 0 = labels only)"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}", "pass --epochs 10"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr:g}", "use e.g. 1e-3"),
            (self.optimizer in OPTIMIZERS, f"unknown optimizer '{self.optimizer}'",
             f"use one of {', '.join(OPTIMIZERS)}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}",
             "pass a positive batch size"),
            (0 <= self.val_share < 1, f"validation share must be in [0, 1), got {self.val_share}",
             "use e.g. 0.1"),
        ]
        for ok, problem, fix in checks:
            if not ok:
                raise ConfigError(problem, fix)


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    loss: float
    val_accuracy: Optional[float]


# ---------------------------------------------------------------------------------------------
# running models


def torch_outputs(module: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """A torch module's (first) output over all samples, in eval mode, as float32 numpy."""
    import torch

    was_training = module.training
    module.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                out = module(torch.from_numpy(x[start : start + batch_size]))
                out = out[0] if isinstance(out, (tuple, list)) else out
                chunks.append(out.float().numpy())
    finally:
        module.train(was_training)
    return np.concatenate(chunks)


def model_outputs(model: Any, x: np.ndarray, role: str) -> np.ndarray:
    """Outputs of a torch module or a model file on ``x``; a shape mismatch is a ConfigError."""
    from edgeship.converters.evaluate import predict

    if isinstance(model, (str, Path)):
        return predict(model, x)  # the runtime checks shapes and dtypes with a clear message
    try:
        return torch_outputs(model, x)
    except RuntimeError as exc:  # torch's message for mismatched shapes is long: name the cause
        raise ConfigError(
            f"the {role} cannot run samples of shape {tuple(x.shape[1:])}: "
            f"{str(exc).splitlines()[0][:160]}",
            f"give data shaped the way the {role} expects",
        ) from None


# ---------------------------------------------------------------------------------------------
# the training loop


def _optimizer(params: Any, config: TrainConfig) -> Any:
    import torch

    make = {"sgd": lambda: torch.optim.SGD(params, lr=config.lr, momentum=0.9,
                                           weight_decay=config.weight_decay),
            "adam": lambda: torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay),
            "adamw": lambda: torch.optim.AdamW(params, lr=config.lr,
                                               weight_decay=config.weight_decay)}
    return make[config.optimizer]()


def _loss(student_out: Any, soft: Optional[Any], labels: Optional[Any], config: TrainConfig) -> Any:
    import torch.nn.functional as F

    T, alpha = config.temperature, config.alpha
    if soft is None:
        assert labels is not None  # train_student refuses data with neither
        return F.cross_entropy(student_out, labels)
    kd = F.kl_div(F.log_softmax(student_out / T, dim=1), F.log_softmax(soft / T, dim=1),
                  reduction="batchmean", log_target=True) * (T * T)
    if labels is None or alpha == 1:
        return kd
    return alpha * kd + (1 - alpha) * F.cross_entropy(student_out, labels)


def _progress(enabled: bool, description: str) -> Any:
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def train_student(
    student: Any,
    train: SampleSet,
    *,
    config: TrainConfig,
    soft_targets: Optional[np.ndarray] = None,
    val: Optional[SampleSet] = None,
    after_step: Optional[Callable[[], None]] = None,
    progress: bool = True,
    description: str = "distilling",
) -> list[EpochLog]:
    """Train ``student`` in place; keeps the weights of the best validation epoch.

    ``soft_targets`` are the teacher's outputs for ``train.array`` (None: labels only, i.e.
    fine-tuning).  ``after_step`` runs after every optimizer step (pruning masks use it).
    The learning rate follows a cosine decay over all steps.
    """
    import torch

    if soft_targets is None and train.y is None:
        raise ConfigError("training needs labels or a teacher", "pass data with labels y")
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.from_numpy(train.array)
    y = None if train.y is None else torch.from_numpy(train.y)
    soft = None if soft_targets is None else torch.from_numpy(soft_targets.astype(np.float32))
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = _optimizer(params, config)
    steps_per_epoch = -(-len(x) // config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch)
    history: list[EpochLog] = []
    best: tuple[float, Any] = (-1.0, None)
    with _progress(progress, description) as bar:
        task = bar.add_task(description, total=config.epochs * steps_per_epoch,
                            status="") if bar else None
        for epoch in range(1, config.epochs + 1):
            student.train()
            total, seen = 0.0, 0
            for idx in torch.randperm(len(x), generator=generator).split(config.batch_size):
                optimizer.zero_grad()
                out = student(x[idx])
                loss = _loss(out, None if soft is None else soft[idx],
                             None if y is None else y[idx], config)
                loss.backward()
                optimizer.step()
                schedule.step()
                if after_step:
                    after_step()
                total += loss.item() * len(idx)
                seen += len(idx)
                if bar:
                    bar.advance(task)
            val_acc = _val_accuracy(student, val)
            history.append(EpochLog(epoch, total / seen, val_acc))
            if val_acc is not None and val_acc > best[0]:
                best = (val_acc, copy.deepcopy(student.state_dict()))
            if bar:
                acc = "" if val_acc is None else f"  val acc {100 * val_acc:.1f}%"
                bar.update(task, status=f"epoch {epoch}  loss {total / seen:.4f}{acc}")
    if best[1] is not None:
        student.load_state_dict(best[1])
    student.eval()
    return history


def _val_accuracy(student: Any, val: Optional[SampleSet]) -> Optional[float]:
    if val is None or val.y is None:
        return None
    return accuracy_of(torch_outputs(student, val.array), val.y).accuracy



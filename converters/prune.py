"""Pruning: remove weights (unstructured), neurons (Linear) or whole channels (structured).

- **unstructured**: zero the smallest weights of Conv/Linear layers, globally ranked or per
  layer, exactly ``round(sparsity * n)`` of them.  Honest note: dense runtimes (onnxruntime,
  OpenVINO, LiteRT) still store and multiply the zeros, so the model is neither faster nor
  smaller on disk; it compresses better (zip, and after quantization) and it is the first half
  of sparse-kernel deployments.
- **channels** (``structured``): remove output channels with torch-pruning's dependency graph,
  so every layer coupled to a removed channel (the next conv's input, BatchNorm, both sides of
  a residual add, a concat's slice) shrinks with it.  ``sparsity`` is the share of channels
  removed from each pruned layer (torch-pruning's ``pruning_ratio``); MACs fall faster, since a
  conv loses both input and output channels.
- **neurons**: the same on Linear layers only (hidden neurons of MLP heads).

The layers producing the model's outputs (the classifier) are always protected, so the output
shape never changes; ``protect`` adds more.  A structured-protected layer keeps all its output
channels (its inputs still follow the layer before it).  ``importance``: l1 / l2 weight
magnitude, or taylor (|weight x gradient| on the fine-tuning data).

Example:
    >>> import edgeship
    >>> result = edgeship.prune(model, 0.5, structured=True, example_input=x[:1])  # doctest: +SKIP
    >>> result.after.macs / result.before.macs                                       # doctest: +SKIP
    0.31
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from edgeship.converters.evaluate import DataLike, ModelStats, load_labelled, module_stats
from edgeship.converters.onnx_to_torch import check_output, save_torch
from edgeship.converters.onnx_to_torch import origin_of as _origin
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError

METHODS = ("unstructured", "channels", "neurons")
IMPORTANCES = ("l1", "l2", "taylor")
SCOPES = ("global", "layer")
DENSE_RUNTIME_NOTE = (
    "unstructured sparsity: dense runtimes (onnxruntime, OpenVINO, LiteRT) store and compute the "
    "zeros, so this model is not faster and its raw size is unchanged; the zeros make it "
    "compress better (see compressed size) and help after quantization. For speed, use "
    "--structured."
)


def _check_ratio(value: float, what: str) -> None:
    if not 0 < value < 1:
        raise ConfigError(f"{what} must be between 0 and 1 (exclusive), got {value:g}",
                          "use e.g. 0.5 to remove half")


@dataclass(frozen=True)
class PruneConfig:
    """What to prune and how; validated on creation."""

    sparsity: float = 0.5
    method: str = "unstructured"
    importance: str = "l1"
    # "global": rank across layers; "layer": the same share in each layer.  Default: global
    # for unstructured (weights compete fairly), layer for structured (no layer is emptied)
    scope: Optional[str] = None
    per_layer: dict[str, float] = field(default_factory=dict)  # layer name -> its own share
    protect: tuple[str, ...] = ()
    epochs: int = 0  # fine-tuning epochs on labelled data after pruning
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.scope is None:
            object.__setattr__(self, "scope", "global" if self.method == "unstructured" else "layer")
        _check_ratio(self.sparsity, "sparsity")
        for name, ratio in self.per_layer.items():
            _check_ratio(ratio, f"sparsity for layer '{name}'")
        for value, allowed, what in ((self.method, METHODS, "pruning method"),
                                     (self.importance, IMPORTANCES, "importance"),
                                     (self.scope, SCOPES, "scope")):
            if value not in allowed:
                raise ConfigError(f"unknown {what} '{value}'", f"use one of {', '.join(allowed)}")
        if self.epochs < 0 or self.lr <= 0:
            raise ConfigError("epochs must be ≥ 0 and the learning rate > 0",
                              "pass e.g. --epochs 5 --lr 1e-3")


@dataclass(frozen=True)
class LayerReport:
    name: str
    kind: str
    shape_before: tuple[int, ...]
    shape_after: tuple[int, ...]
    outputs_before: int  # output channels / features
    outputs_after: int
    zero_share: float  # share of this layer's weights that are zero after pruning
    protected: bool


@dataclass
class PruneResult:
    """The pruned torch module and the figures before and after."""

    model: Any  # torch.nn.Module
    config: PruneConfig
    layers: list[LayerReport]
    before: ModelStats
    after: ModelStats
    achieved: float  # unstructured: zero share of prunable weights; else share of channels removed
    finetune: list[Any] = field(default_factory=list)  # training.EpochLog per fine-tuning epoch
    output: Optional[Path] = None
    notes: list[str] = field(default_factory=list)

    @property
    def macs_ratio(self) -> Optional[float]:
        if self.before.macs and self.after.macs is not None:
            return self.after.macs / self.before.macs
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config) | {"protect": list(self.config.protect)},
            "achieved": self.achieved,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "macs_ratio": self.macs_ratio,
            "layers": [asdict(layer) for layer in self.layers],
            "finetune": [asdict(e) for e in self.finetune],
            "output": str(self.output) if self.output else None,
            "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------
# layers


def prunable_layers(module: Any) -> dict[str, Any]:
    """Conv and Linear layers by their ``named_modules`` name, in definition order."""
    from torch import nn

    kinds = (nn.modules.conv._ConvNd, nn.Linear)
    return {name: m for name, m in module.named_modules() if isinstance(m, kinds)}


def output_layers(module: Any, example: Any) -> list[Any]:
    """The Conv/Linear layers that run last on the way to the model's output (the classifier)."""
    import torch

    order: list[Any] = []
    layers = prunable_layers(module).values()
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in layers]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in hooks:
            h.remove()
    return order[-1:]


def _resolve(names: Any, layers: dict[str, Any], what: str) -> None:
    unknown = [n for n in names if n not in layers]
    if unknown:
        raise ConfigError(f"{what} names unknown layers {unknown}",
                          f"use Conv/Linear layer names: {', '.join(layers) or '(none)'}")


# ---------------------------------------------------------------------------------------------
# importance from data


def _accumulate_gradients(module: Any, data: Optional[SampleSet], limit: int = 512) -> None:
    """Fill ``.grad`` of every parameter with the cross-entropy gradient on up to ``limit`` samples."""
    import torch
    import torch.nn.functional as F

    if data is None or data.y is None:
        raise ConfigError("taylor importance needs labelled data to take gradients on",
                          "pass finetune_data with labels (CLI: --finetune-data DATA.npz)")
    module.zero_grad()
    x, y = torch.from_numpy(data.array[:limit]), torch.from_numpy(data.y[:limit])
    for idx in torch.arange(len(x)).split(64):
        F.cross_entropy(module(x[idx]), y[idx], reduction="sum").backward()


# ---------------------------------------------------------------------------------------------
# unstructured


def _scores(weight: Any, importance: str) -> Any:
    if importance == "taylor":
        return (weight.detach() * weight.grad).abs().flatten()
    return weight.detach().abs().flatten()  # l1 and l2 rank single weights identically


def _smallest(scores: Any, k: int) -> Any:
    import torch

    return torch.argsort(scores, stable=True)[:k]


def prune_unstructured(module: Any, config: PruneConfig, targets: dict[str, Any]) -> dict[str, Any]:
    """Zero exactly round(share * n) weights; returns the masks (name -> bool tensor, True = kept)."""
    import torch

    masks = {name: torch.ones_like(layer.weight, dtype=torch.bool)
             for name, layer in targets.items()}
    own = {n: r for n, r in config.per_layer.items() if n in targets}
    pooled = [n for n in targets if n not in own]
    groups: list[tuple[list[str], float]] = [([n], r) for n, r in own.items()]
    if config.scope == "global":
        groups.append((pooled, config.sparsity))
    else:
        groups += [([n], config.sparsity) for n in pooled]
    with torch.no_grad():
        for names, share in groups:
            if not names:
                continue
            scores = torch.cat([_scores(targets[n].weight, config.importance) for n in names])
            flat = torch.ones(len(scores), dtype=torch.bool)
            flat[_smallest(scores, int(round(share * len(scores))))] = False
            for n, piece in zip(names, flat.split([targets[n].weight.numel() for n in names])):
                masks[n] = piece.view_as(targets[n].weight)
                targets[n].weight.mul_(masks[n])
    return masks


# ---------------------------------------------------------------------------------------------
# structured


def prune_structured(module: Any, example: Any, config: PruneConfig, protected: list[Any]) -> None:
    """Remove channels (or Linear neurons) with torch-pruning's dependency graph, in place."""
    from torch import nn

    tp = _torch_pruning()
    importance = {
        "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
        "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
        "taylor": lambda: tp.importance.GroupTaylorImportance(),
    }[config.importance]()
    layers = prunable_layers(module)
    roots = [nn.Linear] if config.method == "neurons" else [nn.modules.conv._ConvNd, nn.Linear]
    pruner = tp.pruner.MetaPruner(
        module,
        example,
        importance=importance,
        pruning_ratio=config.sparsity,
        pruning_ratio_dict={layers[n]: r for n, r in config.per_layer.items()},
        global_pruning=config.scope == "global",
        ignored_layers=protected,
        root_module_types=roots,
    )
    pruner.step()


def _torch_pruning() -> Any:
    try:
        import torch_pruning
    except ImportError:
        from edgeship.core.errors import MissingBackendError

        raise MissingBackendError("structured pruning needs torch-pruning, which is not installed",
                                  "pip install torch-pruning") from None
    return torch_pruning


# ---------------------------------------------------------------------------------------------
# the step


def _zero_share(weight: Any) -> float:
    return float((weight == 0).sum()) / weight.numel()


def _outputs(layer: Any) -> int:
    return int(getattr(layer, "out_channels", None) or layer.out_features)


def _layer_reports(before: dict[str, tuple[tuple[int, ...], int]], module: Any,
                   protected: set[str]) -> list[LayerReport]:
    layers = prunable_layers(module)
    return [
        LayerReport(name, type(layers[name]).__name__, shape, tuple(layers[name].weight.shape),
                    outputs, _outputs(layers[name]), _zero_share(layers[name].weight.detach()),
                    name in protected)
        for name, (shape, outputs) in before.items()
    ]


def _channels_removed(reports: list[LayerReport], method: str) -> float:
    """The share of output channels (neurons) removed from the layers the method prunes."""
    pruned = [r for r in reports if not r.protected and (method != "neurons" or r.kind == "Linear")]
    total = sum(r.outputs_before for r in pruned)
    return 1 - sum(r.outputs_after for r in pruned) / total if total else 0.0


def prune(
    model: Union[str, Path, Any],
    sparsity: float = 0.5,
    *,
    structured: bool = False,
    neurons: bool = False,
    importance: str = "l1",
    scope: Optional[str] = None,
    per_layer: Optional[dict[str, float]] = None,
    protect: tuple[str, ...] = (),
    example_input: Optional[np.ndarray] = None,
    finetune_data: Optional[DataLike] = None,
    epochs: int = 0,
    lr: float = 1e-3,
    eval_data: Optional[DataLike] = None,
    output: Optional[Union[str, Path]] = None,
    progress: bool = True,
) -> PruneResult:
    """Prune a torch module (or an ONNX / TorchScript / exported-program file) and report it.

    Args:
        model: a torch module (pruned on a copy) or a model file (.onnx via onnx2torch, .pt2,
            .pt TorchScript).
        sparsity: share in (0, 1) of weights (unstructured) or channels/neurons to remove.
        structured: remove whole channels; ``neurons``: remove Linear neurons only.
        importance: l1 | l2 | taylor (taylor needs labelled ``finetune_data``).
        scope: "global" ranks across layers, "layer" prunes each layer by the same share
            (default: global for unstructured, layer for structured).
        per_layer: layer name -> share, overriding ``sparsity`` for those layers.
        protect: layer names left unpruned; the output layer is always protected.
        example_input: one model-ready batch; taken from the data or the ONNX input if absent.
        finetune_data / epochs / lr: fine-tune on labelled data after pruning (masks kept).
        eval_data: labelled data to report accuracy before and after.
        output: export the pruned model there (.onnx, parity-checked; or .pt2).
    """
    import torch

    if structured and neurons:
        raise ConfigError("--structured and --neurons are two different methods",
                          "pass --structured for channels or --neurons for Linear neurons")
    method = "channels" if structured else "neurons" if neurons else "unstructured"
    config = PruneConfig(sparsity, method, importance, scope, dict(per_layer or {}),
                         tuple(protect), epochs, lr)
    check_output(output)
    tune = None if finetune_data is None else load_labelled(finetune_data)
    evaluation = None if eval_data is None else load_labelled(eval_data)
    if epochs and (tune is None or tune.y is None):
        raise ConfigError("fine-tuning needs labelled data",
                          "pass finetune_data with labels y (CLI: --finetune-data), or epochs=0")
    module, example = _as_module(model, example_input, tune or evaluation)
    layers = prunable_layers(module)
    example_t = torch.from_numpy(example)
    protected = _protected(module, layers, config, example_t)
    shapes = {n: (tuple(m.weight.shape), _outputs(m)) for n, m in layers.items()}
    before = module_stats(module, example, evaluation)
    masks = _prune_in_place(module, layers, config, protected, example_t, tune)
    reports = _layer_reports(shapes, module, protected)
    history = _finetune(module, tune, config, _reapply(layers, masks), progress)
    after = module_stats(module, example, evaluation)
    result = PruneResult(module, config, reports, before, after,
                         _achieved(module, masks, reports, config.method), history,
                         notes=_notes(config, tune))
    if output is not None:
        result.output = save_torch(module, output, example, origin=_origin(model),
                                   step={"step": "prune", "config": result.to_dict()["config"]})
    return result


def _protected(module: Any, layers: dict[str, Any], config: PruneConfig, example: Any) -> set[str]:
    """Layers left whole: the user's, plus (structured) the layers producing the outputs."""
    _resolve(config.per_layer, layers, "per-layer sparsity")
    _resolve(config.protect, layers, "protect")
    protected = set(config.protect)
    if config.method != "unstructured":
        last = output_layers(module, example)
        protected |= {n for n, m in layers.items() if any(m is o for o in last)}
    clash = sorted(set(config.per_layer) & protected)
    if clash:
        raise ConfigError(f"layers {clash} are protected and also given a sparsity",
                          "drop them from --per-layer (output layers are always protected)")
    return protected


def _prune_in_place(module: Any, layers: dict[str, Any], config: PruneConfig,
                    protected: set[str], example: Any, tune: Optional[SampleSet]) -> dict[str, Any]:
    """Apply the method; returns the unstructured masks (empty for structured methods)."""
    out_shape = tuple(_first(module(example)).shape)
    if config.importance == "taylor":
        _accumulate_gradients(module, tune)
    masks: dict[str, Any] = {}
    if config.method == "unstructured":
        masks = prune_unstructured(module, config,
                                   {n: m for n, m in layers.items() if n not in protected})
    else:
        shapes = {n: tuple(m.weight.shape) for n, m in layers.items()}
        prune_structured(module, example, config, [layers[n] for n in protected])
        if all(tuple(m.weight.shape) == shapes[n] for n, m in layers.items()):
            raise ConfigError(f"no {config.method} could be pruned in this model",
                              "protect fewer layers, or use unstructured pruning")
    module.zero_grad(set_to_none=True)
    if tuple(_first(module(example)).shape) != out_shape:
        raise ConfigError("pruning changed the model's output shape",
                          "protect the layers that produce the outputs with --protect NAME")
    return masks


def _finetune(module: Any, tune: Optional[SampleSet], config: PruneConfig, after_step: Any,
              progress: bool) -> list[Any]:
    from edgeship.converters.training import TrainConfig, train_student

    if not config.epochs or tune is None:
        return []
    train = TrainConfig(alpha=0.0, epochs=config.epochs, lr=config.lr, val_share=0.0)
    return train_student(module, tune, config=train, after_step=after_step, progress=progress,
                         description="fine-tuning")


def _achieved(module: Any, masks: dict[str, Any], reports: list[LayerReport], method: str
              ) -> float:
    if not masks:
        return _channels_removed(reports, method)
    weights = [prunable_layers(module)[n].weight for n in masks]
    return sum(float((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def _notes(config: PruneConfig, tune: Optional[SampleSet]) -> list[str]:
    notes = [DENSE_RUNTIME_NOTE] if config.method == "unstructured" else []
    if config.method != "unstructured" and not config.epochs:
        notes.append("removed channels take accuracy with them: fine-tune (--finetune-data DATA "
                     "--epochs N) or distill from the original (edgeship distill)")
    if tune is not None and not config.epochs and config.importance != "taylor":
        notes.append("fine-tuning data was given but epochs is 0: the model was not fine-tuned")
    return notes


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def _reapply(layers: dict[str, Any], masks: dict[str, Any]) -> Any:
    import torch

    def apply() -> None:
        with torch.no_grad():
            for name, mask in masks.items():
                layers[name].weight.mul_(mask)

    return apply if masks else None


def _as_module(model: Any, example: Optional[np.ndarray], data: Optional[SampleSet]
               ) -> tuple[Any, np.ndarray]:
    """A private copy of the model as a torch module, and one example batch for tracing."""
    from edgeship.converters.onnx_to_torch import load_torch_model

    if example is None and data is not None:
        example = data.array[:1]
    if isinstance(model, (str, Path)):
        module, example = load_torch_model(model, example)
    else:
        module = copy.deepcopy(model)
    if example is None:
        raise ConfigError("pruning a torch module needs one example input to trace it",
                          "pass example_input=x[:1] or data")
    return module.eval(), np.ascontiguousarray(example)


def default_output(model: Any, tag: str) -> Path:
    """``MODEL-<tag>.onnx`` beside a model file; a torch module needs an explicit output."""
    if not isinstance(model, (str, Path)):
        raise ConfigError("a model given as a torch module has no file to write beside",
                          "pass output=path.onnx")
    from edgeship.runtime.formats import FORMATS

    path = Path(model)
    return path.with_name(FORMATS["onnx"].filename(f"{path.stem}-{tag}"))

"""Build a recipe: run its steps, one after the other, on the original model.

``Builder.build(recipe)`` is ``for step in recipe.steps: artifact = step.apply(artifact,
ctx)`` (the steps are ``edgeship.converters.steps``, the context a ``BuildContext`` holding
the original, the scratch directory, an example input, the training and calibration samples
and the accuracy budget).  The results of shared prefixes of training steps (prune, distill)
are kept and reused by the next recipe that starts the same way, and a whole build comes from
the candidate cache when it holds this exact one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.compression.original import Data, Original
from edgeship.converters.step_context import Artifact, BuildContext
from edgeship.converters.steps import TRAINING_STEPS, QuantizeStep, Step
from edgeship.core.errors import ConfigError, ModelError
from edgeship.recipe import Recipe


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
        self.ctx = BuildContext(original, scratch, np.ascontiguousarray(data.eval.x[0][:1]),
                                train=data.train, calibration=data.calibration,
                                disjoint=data.disjoint, max_accuracy_drop=max_accuracy_drop)
        self._cache: dict[tuple[Step, ...], Artifact] = {}
        self.built_cache = None
        if cache_dir is not None:
            from edgeship.compression.cache import CandidateCache, data_digest

            train = data.train
            arrays = [*(train.x if train is not None else []),
                      train.y if train is not None else None]
            self.built_cache = CandidateCache(cache_dir, original.sha256, data_digest(arrays))

    @property
    def example(self) -> np.ndarray:
        return self.ctx.example

    def build(self, recipe: Recipe) -> Built:
        """The recipe's model: from the candidate cache when it holds this exact build."""
        extra = self.cache_extra(recipe)
        if self.built_cache is not None:
            hit = self.built_cache.get(recipe, self.ctx.workdir(), extra)
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
        artifact = self.ctx.start()
        done: tuple[Step, ...] = ()
        for step in recipe.steps:
            done = (*done, step)
            cached = self._cache.get(done)
            if cached is None:
                cached = step.apply(artifact, self.ctx)
                if isinstance(step, TRAINING_STEPS):
                    self._cache[done] = cached
            artifact = cached
        if artifact.path is None:
            raise ConfigError(f"recipe '{recipe.name}' ends without a model file",
                              "end it with an export or quantize step")
        path = artifact.path
        if self.ctx.original.path is not None and path.resolve() == self.ctx.original.path.resolve():
            # the model as given (an IR or .tflite no step rewrote): its manifest gets this
            # search's parity and accuracy (finish_manifest), so a copy carries them, never
            # the user's own file beside the source
            from edgeship.core.artifact import copy_model

            path = copy_model(path, self.ctx.workdir(), self.ctx.original.stem)[0]
        return Built(path, list(artifact.steps), artifact.macs)


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


__all__ = ["Builder", "Built", "finish_manifest"]

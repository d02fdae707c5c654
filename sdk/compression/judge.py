"""Judging a compress candidate against the original on the evaluation split: the parity
report, and the fidelity judge for the model's outputs (``edgeship.converters.fidelity``),
evaluated batch by batch so memory stays bounded; and the fidelity budget candidates are held
to (``search_budget``, ``fidelity_budget``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from edgeship.budget import Budget
from edgeship.compression.original import Data, Original
from edgeship.converters.fidelity import Fidelity
from edgeship.core.errors import ConfigError

DEFAULT_MAX_ACCURACY_DROP = 1.0  # points; compress never picks a model without an accuracy guard
# Outputs that are not class scores: error RMS at most 10 % of the output RMS.  int8 post-training
# quantization of conv nets lands around 20-35 dB at the output, fp16 above 50 dB; below 20 dB a
# regression or score output is visibly another function.
DEFAULT_MIN_SNR_DB = 20.0
DEFAULT_OUTPUT_LIMITS = {"snr_db": ("min_snr_db", DEFAULT_MIN_SNR_DB),
                         "rel_error": ("max_rel_error", 0.1), "cosine": ("min_cosine", 0.99)}


def search_budget(budget: Optional[Budget], profile: Any) -> Budget:
    """The budget a search starts from: the user's, else the profile's defaults; an unset
    ``max_accuracy_drop`` is ``DEFAULT_MAX_ACCURACY_DROP`` points."""
    if budget is None:
        budget = Budget(**profile.default_budget_dict())
    if budget.max_accuracy_drop is None:
        budget = dataclasses.replace(budget, max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP)
    return budget


def fidelity_budget(budget: Budget, spec: Any, metric_given: bool) -> tuple[Budget, Any]:
    """The budget and judge spec a search holds candidates to: outputs judged by output error
    get the metric the user budgeted (``--max-rel-error`` alone means rel_error) and, with no
    limit for it, the documented default (``DEFAULT_OUTPUT_LIMITS``)."""
    if spec.task == "classification":
        unused = [f"--{name.replace('_', '-')}" for name, _ in DEFAULT_OUTPUT_LIMITS.values()
                  if getattr(budget, name) is not None]
        if unused:
            raise ConfigError(f"{', '.join(unused)} hold outputs judged by output error; these "
                              f"are class scores, judged by the accuracy drop ({spec.reason})",
                              "use --max-accuracy-drop, or pass --task regression")
        return budget, spec
    if not metric_given:
        given = [m for m, (name, _) in DEFAULT_OUTPUT_LIMITS.items()
                 if getattr(budget, name) is not None]
        if given:
            spec = dataclasses.replace(spec, metric=given[0])
    name, default = DEFAULT_OUTPUT_LIMITS[spec.metric]
    if getattr(budget, name) is None:
        limit: dict[str, Any] = {name: default}
        budget = dataclasses.replace(budget, **limit)
    return budget, spec


@dataclass(frozen=True)
class Evaluation:
    """A candidate against the original on the evaluation split: its ``fidelity`` (judge,
    metric, value, every figure) and the parity report."""

    fidelity: Fidelity
    samples: int
    parity: dict[str, Any]

    @property
    def metric(self) -> str:
        """``top1`` (labelled), ``estimated_drop`` / ``agreement_drop`` (no labels), or the
        output-error metric (``snr_db``, ``rel_error``, ``cosine``, ``box_agreement``)."""
        return "top1" if self.fidelity.metric == "top1_drop" else self.fidelity.metric

    @property
    def accuracy(self) -> Optional[float]:
        """Top-1 accuracy in percent on labelled data; None without labels (nothing measures
        it then: the drop is an estimate) and for outputs that are not class scores."""
        return self.fidelity.figures.get("accuracy") if self.fidelity.metric == "top1_drop" else None

    @property
    def baseline(self) -> Optional[float]:
        return self.fidelity.figures.get("baseline_accuracy") \
            if self.fidelity.metric == "top1_drop" else None

    @property
    def drop(self) -> Optional[float]:
        """Accuracy points lost (labelled) or expected to be lost (estimated, no labels)."""
        return round(self.fidelity.value, 6) if self.fidelity.task == "classification" else None

    @property
    def score(self) -> float:
        """Higher is better, for the Pareto front: minus the drop, or the output-error metric."""
        f = self.fidelity
        return f.value if f.higher_is_better else -f.value


class Judge:
    """Runs the original once on the evaluation split; compares each candidate with it, batch
    by batch, with the fidelity judge for the model's outputs (``converters.fidelity``)."""

    def __init__(self, original: Original, data: Data, task: Optional[str] = None,
                 metric: Optional[str] = None) -> None:
        from edgeship.converters.fidelity import FidelitySpec
        from edgeship.converters.parity import run_batched

        self.original = original
        self.data = data
        self.reference_name, runner, batch = original.reference()
        self.reference = run_batched(runner, data.eval.x, batch)  # chunked: bounded memory
        given = task or (original.manifest or {}).get("task")
        source = "--task" if task else "the model's manifest"
        self.spec = FidelitySpec.infer(self.reference[0].shape, task=given, metric=metric,
                                       labelled=data.labelled, source=source)
        if data.labelled and self.spec.task != "classification":
            self.spec = replace(self.spec, reason=self.spec.reason + "; the labels are not "
                                "used (they apply to class scores)")
        self.baseline = self._baseline()

    def _baseline(self) -> Optional[float]:
        from edgeship.converters.evaluate import accuracy_of

        if not self.data.labelled or self.spec.task != "classification":
            return None
        assert self.data.eval.y is not None
        return 100.0 * accuracy_of(self.reference[0], self.data.eval.y).accuracy

    def evaluate(self, path: Path, backend: str, precision: Optional[str],
                 tolerance: str, gated: bool) -> Evaluation:
        from edgeship.converters.fidelity import judge
        from edgeship.converters.parity import (
            TOLERANCES,
            Samples,
            compare_outputs,
            run_batched,
            session_batch,
            session_runner,
        )
        from edgeship.runtime import load, parse_backend

        name, device = parse_backend(backend)
        session = load(path, backend=name, device=device, precision=precision,
                       input_shapes=(self.original.input_shapes or None)
                       if path == self.original.path else None)  # the model as given
        # a candidate that transposed the original's tensors (onnx2tf's NHWC TFLite) is shown in
        # the original's names and layout by the runtime (edgeship.runtime.iomap): no perms here
        runner = session_runner(session, [s.name for s in self.original.specs],
                                self.original.output_names)  # by name where names match
        outputs = run_batched(runner, self.data.eval.x, session_batch(session))
        samples = Samples(self.data.eval.x, 0, len(self.data.eval), self.data.eval.source)
        report = compare_outputs(
            self.reference, outputs, samples,
            tolerance=TOLERANCES[tolerance], output_names=self.original.output_names,
            reference_name=f"original ({self.reference_name})",
            candidate_name=f"{path.name} ({session.info.backend} {session.info.version}"
                           f"{', ' + session.info.precision if session.info.precision else ''})",
            raise_on_mismatch=gated)
        labels = self.data.eval.y if self.spec.metric == "top1_drop" else None
        fidelity = judge(self.reference, outputs, self.spec, labels)
        parity = report.to_dict() | {"gated": gated, "vs": "original model, evaluation split"}
        return Evaluation(fidelity, len(self.data.eval), parity)


__all__ = ["DEFAULT_MAX_ACCURACY_DROP", "DEFAULT_MIN_SNR_DB", "Evaluation", "Judge",
           "fidelity_budget", "search_budget"]

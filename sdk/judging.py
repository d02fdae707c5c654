"""Judging a compress candidate against the original on the evaluation split: the parity
report, and the fidelity judge for the model's outputs (``edgeship.converters.fidelity``),
evaluated batch by batch so memory stays bounded."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from edgeship.compress.original import Data, Original
from edgeship.converters.fidelity import Fidelity

EVAL_BATCH = 16  # samples per evaluation batch for dynamic-batch models: bounds peak memory


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
        self.reference = run_batched(runner, data.eval.x, batch or EVAL_BATCH)
        self.layouts = original.layouts()
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
            check_parity,
            run_batched,
            session_batch,
            session_runner,
        )
        from edgeship.runtime import load, parse_backend

        name, device = parse_backend(backend)
        session = load(path, backend=name, device=device, precision=precision,
                       input_shapes=(self.original.input_shapes or None)
                       if path == self.original.path else None)  # the model as given
        perms = self._perms(path)
        runner = session_runner(session, [s.name for s in self.original.specs],
                                self.original.output_names)  # by name where names match
        outputs = run_batched(runner, self.data.eval.x, session_batch(session) or EVAL_BATCH,
                              perms)
        samples = Samples(self.data.eval.x, 0, len(self.data.eval), self.data.eval.source)
        report = check_parity(
            lambda _: self.reference, lambda _: outputs, samples,
            tolerance=TOLERANCES[tolerance], output_names=self.original.output_names,
            reference_name=f"original ({self.reference_name})",
            candidate_name=f"{path.name} ({session.info.backend} {session.info.version}"
                           f"{', ' + session.info.precision if session.info.precision else ''})",
            raise_on_mismatch=gated)
        labels = self.data.eval.y if self.spec.metric == "top1_drop" else None
        fidelity = judge(self.reference, outputs, self.spec, labels)
        parity = report.to_dict() | {"gated": gated, "vs": "original model, evaluation split"}
        return Evaluation(fidelity, len(self.data.eval), parity)

    def _perms(self, path: Path) -> list[Optional[tuple[int, ...]]]:
        """Transpose NCHW data for a candidate whose manifest says its inputs are NHWC."""
        from edgeship.converters.parity import NCHW_TO_NHWC
        from edgeship.runtime.preprocess import read_manifest

        ins = (read_manifest(path) or {}).get("inputs") or []
        perms: list[Optional[tuple[int, ...]]] = []
        for i, layout in enumerate(self.layouts):
            theirs = ins[i].get("layout") if i < len(ins) else None
            perms.append(NCHW_TO_NHWC if layout == "NCHW" and theirs == "NHWC" else None)
        return perms


__all__ = ["EVAL_BATCH", "Evaluation", "Judge"]

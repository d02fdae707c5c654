"""Fidelity judges: how much a compressed candidate lost against the original, per output kind.

- **labelled classification**: top-1 accuracy drop in points, on the user's labels;
- **unlabelled classification**: the *expected* top-1 drop, estimated from the reference's own
  probabilities (``estimated_drop``), shown as "estimated (no labels)"; top-1 / top-5
  agreement, agreement on confident samples and KL divergence beside it;
- **output error** (regression, embeddings, [N,1] scores, audio, detector tensors): SNR in dB,
  relative error and cosine of the candidate's outputs against the original's; for
  ``task="detection"`` also the share of confident boxes matched at IoU >= 0.5 (a figure
  beside the deciding SNR: box layouts differ between detectors).

Argmax agreement is never computed on outputs that are not class scores: an [N,1] output has
one "class", so its argmax agrees 100 % whatever the model does.

The estimator.  Take the reference's softmax ``p`` as calibrated class probabilities for each
sample.  Then the reference is right with probability ``p[argmax_ref]`` and the candidate with
``p[argmax_cand]``, and the expected accuracy drop over the samples is
``mean(p[argmax_ref] - p[argmax_cand])``.  Every term is >= 0 and a flip between two near-tied
classes costs their (small) difference, where plain top-1 agreement counts a whole sample; on
out-of-distribution inputs (EfficientNet-Lite0 on photo crops, median confidence 0.32) that is
the difference between 16 pt and 0.5 pt.  Beside the mean, the standard error of the per-sample
terms gives ``estimated_drop_upper`` (one-sided 95 %), so a figure from 40 samples says how sure
it is.  ``benchmarks/fidelity_estimate.py`` measures the estimate against the true drop on
labelled data.

Example:
    >>> f = judge(reference, candidate, spec=FidelitySpec.infer(reference.shape))  # doctest: +SKIP
    >>> f.judge, f.metric, round(f.value, 2)                                       # doctest: +SKIP
    ('unlabelled classification', 'estimated_drop', 0.51)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Optional

import numpy as np
from edgeship.core.errors import ConfigError

Task = Literal["classification", "regression", "embedding", "detection"]
TASKS: tuple[str, ...] = ("classification", "regression", "embedding", "detection")
# metric -> (tasks it applies to, unit, higher is better)
METRICS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "top1_drop": (("classification",), "pt", False),  # labelled
    "estimated_drop": (("classification",), "pt", False),  # unlabelled (the default)
    "agreement_drop": (("classification",), "pt", False),  # 100 - top-1 agreement: strict
    "snr_db": (("regression", "embedding", "detection"), "dB", True),
    "rel_error": (("regression", "embedding", "detection"), "", False),
    "cosine": (("regression", "embedding", "detection"), "", True),
}
CONFIDENT = 0.5  # reference probability above which a sample counts as "confident"
Z95 = 1.645  # one-sided 95 % normal quantile for the estimate's upper bound
BOX_IOU = 0.5
BOX_SCORE = 0.25  # detector boxes below this score are not compared
SNR_EXACT = 200.0  # dB reported for identical outputs
REL_ERROR_CAP = 1e6  # relative error reported against an all-zero reference


@dataclass(frozen=True)
class FidelitySpec:
    """Which judge and metric apply to a model's outputs, and why (named by the user, the
    manifest, or inferred from the output shape: ``reason`` says which)."""

    task: str
    metric: str
    reason: str

    @classmethod
    def infer(cls, shape: Sequence[int], *, task: Optional[str] = None,
              metric: Optional[str] = None, labelled: bool = False,
              source: str = "--task") -> FidelitySpec:
        """The spec for an output of ``shape`` (samples first).  ``task``/``metric`` given by
        the user win; otherwise (N, C >= 2) is class scores and anything else is judged by
        output error, and the reason says it was inferred."""
        if task is not None and task not in TASKS:
            raise ConfigError(f"unknown task '{task}'", f"use one of {', '.join(TASKS)}")
        if metric is not None and metric not in METRICS:
            raise ConfigError(f"unknown fidelity metric '{metric}'",
                              f"use one of {', '.join(METRICS)}")
        dims = tuple(int(d) for d in shape[1:])
        if task is not None:
            reason = f"task {task} named by {source}"
        elif metric is not None:
            task = METRICS[metric][0][0]
            reason = f"task {task} implied by the metric {metric}"
        elif len(dims) == 1 and dims[0] >= 2:
            task = "classification"
            reason = (f"inferred from the output shape (N, {dims[0]}): {dims[0]} class scores "
                      "(pass --task regression or embedding if they are not)")
        else:
            task = "regression"
            what = "one score per sample" if int(np.prod(dims or (1,))) == 1 else \
                f"an output of shape (N, {', '.join(map(str, dims))})"
            reason = f"inferred from the output shape: {what} is not class scores, judged by output error"
        if task == "classification" and (len(dims) != 1 or dims[0] < 2):
            raise ConfigError(f"--task classification needs (N, classes) outputs, this one is "
                              f"(N, {', '.join(map(str, dims))})",
                              "pass --task regression (output error) for it")
        if metric is None:
            metric = ("top1_drop" if labelled else "estimated_drop") if task == "classification" \
                else "snr_db"
        if task not in METRICS[metric][0]:
            raise ConfigError(f"metric {metric} does not apply to task {task}",
                              f"use one of {', '.join(m for m, v in METRICS.items() if task in v[0])}")
        if metric == "top1_drop" and not labelled:
            raise ConfigError("metric top1_drop needs labelled data",
                              "pass --data with labels (y), or use --metric estimated_drop")
        return cls(task, metric, reason)


@dataclass(frozen=True)
class Fidelity:
    """One candidate's fidelity: the judge, the deciding metric and its value, every figure."""

    judge: str  # labelled classification | unlabelled classification | output error
    task: str
    metric: str
    value: float
    unit: str
    higher_is_better: bool
    estimated: bool  # True: no labels, an estimate from the reference's probabilities
    samples: int
    figures: dict[str, Optional[float]] = field(default_factory=dict)
    reason: str = ""  # how the task was chosen
    tolerance: Optional[float] = None  # the budget this metric is held to (set by the search)

    @property
    def label(self) -> str:
        """How the metric is shown: ``estimated drop (no labels)``, ``SNR``..."""
        return {"top1_drop": "top-1 drop (labelled)",
                "estimated_drop": "estimated drop (no labels)",
                "agreement_drop": "top-1 disagreement (no labels)", "snr_db": "SNR",
                "rel_error": "relative error", "cosine": "cosine"}[self.metric]

    def ok(self, tolerance: Optional[float]) -> Optional[bool]:
        if tolerance is None:
            return None
        return self.value >= tolerance if self.higher_is_better else self.value <= tolerance

    def with_tolerance(self, tolerance: Optional[float]) -> Fidelity:
        return replace(self, tolerance=tolerance)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"label": self.label}


# ---------------------------------------------------------------------------------------------
# the figures


def probabilities(outputs: np.ndarray) -> tuple[np.ndarray, str]:
    """Class probabilities from (N, C) outputs: as given when every row is non-negative and sums
    to 1, else the softmax of the outputs taken as logits; and which of the two."""
    x = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if x.min(initial=0.0) >= 0 and np.allclose(x.sum(1), 1.0, atol=1e-3):
        return x, "probabilities as given"
    z = np.exp(x - x.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True), "softmax of the outputs (taken as logits)"


def classification_figures(reference: np.ndarray, candidate: np.ndarray,
                           labels: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Every classification figure of a candidate against the reference (and the labels)."""
    _same_shape(reference, candidate)
    p, how = probabilities(reference)
    q, _ = probabilities(candidate)
    ref_top, cand_top = p.argmax(1), q.argmax(1)
    idx = np.arange(len(p))
    terms = p[idx, ref_top] - p[idx, cand_top]  # >= 0: the reference's chance it lost
    k = min(5, p.shape[1])
    top5 = np.argpartition(-q, k - 1, axis=1)[:, :k]
    confident = p[idx, ref_top] > CONFIDENT
    eps = 1e-12
    kl = (p * (np.log(p + eps) - np.log(q + eps))).sum(1)
    se = float(terms.std(ddof=1) / np.sqrt(len(terms))) if len(terms) > 1 else 0.0
    figures: dict[str, Any] = {
        "estimated_drop": 100.0 * float(terms.mean()),
        "estimated_drop_upper": 100.0 * (float(terms.mean()) + Z95 * se),
        "top1_agreement": 100.0 * float((ref_top == cand_top).mean()),
        "top5_agreement": 100.0 * float((top5 == ref_top[:, None]).any(1).mean()),
        "confident_agreement": 100.0 * float((ref_top == cand_top)[confident].mean())
        if confident.any() else None,
        "confident_share": 100.0 * float(confident.mean()),
        "kl_divergence": float(kl.mean()),
        "reference_confidence_median": float(np.median(p[idx, ref_top])),
        "probabilities": how,
    }
    figures["agreement_drop"] = 100.0 - figures["top1_agreement"]
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(p):
            raise ConfigError(f"{len(labels)} labels for {len(p)} samples", "pass one label per sample")
        figures["baseline_accuracy"] = 100.0 * float((ref_top == labels).mean())
        figures["accuracy"] = 100.0 * float((cand_top == labels).mean())
        figures["top1_drop"] = figures["baseline_accuracy"] - figures["accuracy"]
    return figures


def output_error_figures(reference: Sequence[np.ndarray],
                         candidate: Sequence[np.ndarray]) -> dict[str, Any]:
    """SNR (dB), relative error and cosine over every output, the worst output deciding."""
    snrs, rels, cosines, mins = [], [], [], []
    for ref, cand in zip(reference, candidate):
        _same_shape(ref, cand)
        a = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
        b = np.asarray(cand, dtype=np.float64).reshape(len(cand), -1)
        signal, noise = float((a * a).sum()), float(((a - b) ** 2).sum())
        # finite bounds, so every figure is plain JSON: identical outputs read SNR_EXACT (beyond
        # float32's ~150 dB), a zero reference against a non-zero candidate -SNR_EXACT
        snr = SNR_EXACT if noise == 0 else (-SNR_EXACT if signal == 0 else
                                            10 * np.log10(signal / noise))
        snrs.append(float(np.clip(snr, -SNR_EXACT, SNR_EXACT)))
        rels.append(0.0 if noise == 0 else (REL_ERROR_CAP if signal == 0 else
                                            min(REL_ERROR_CAP, float(np.sqrt(noise / signal)))))
        if a.shape[1] == 1:  # one value per sample: a per-sample cosine is only its sign
            a, b = a.T, b.T
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cos = np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1), 1.0 * (norms == 0))
        cosines.append(float(cos.mean()))
        mins.append(float(cos.min()))
    return {"snr_db": float(min(snrs)), "rel_error": float(max(rels)),
            "cosine": float(min(cosines)), "cosine_min": float(min(mins))}


def box_agreement(reference: np.ndarray, candidate: np.ndarray, iou: float = BOX_IOU,
                  score: float = BOX_SCORE) -> float:
    """Percent of the confident boxes (score >= ``score``) of either model that the other model
    has too (IoU >= ``iou``): outputs (N, K, >= 5) as x1, y1, x2, y2, score."""
    _same_shape(reference, candidate)
    if reference.ndim != 3 or reference.shape[2] < 5:
        raise ConfigError(f"box agreement needs (N, boxes, >= 5) outputs (x1, y1, x2, y2, score), "
                          f"got {reference.shape}", "use --metric snr_db for this output")
    matched = total = 0
    for ref, cand in zip(reference, candidate):
        r, c = ref[ref[:, 4] >= score, :4], cand[cand[:, 4] >= score, :4]
        total += max(len(r), len(c))
        if len(r) and len(c):
            matched += _greedy_matches(_iou(r, c), iou)
    return 100.0 if total == 0 else 100.0 * matched / total


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    area = lambda x: np.clip(x[:, 2:] - x[:, :2], 0, None).prod(1)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _greedy_matches(ious: np.ndarray, threshold: float) -> int:
    ious = ious.copy()
    count = 0
    while ious.size and ious.max() >= threshold:
        i, j = np.unravel_index(int(ious.argmax()), ious.shape)
        ious[i, :] = -1
        ious[:, j] = -1
        count += 1
    return count


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"outputs have shapes {a.shape} and {b.shape}",
                          "compare models with the same output")


# ---------------------------------------------------------------------------------------------
# the judge


def judge(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray], spec: FidelitySpec,
          labels: Optional[np.ndarray] = None) -> Fidelity:
    """Judge a candidate's outputs (one array per model output, samples first) against the
    reference's with the judge ``spec`` names.  Classification reads the first output."""
    samples = len(reference[0])
    unit, higher = METRICS[spec.metric][1], METRICS[spec.metric][2]
    if spec.task == "classification":
        figures = classification_figures(reference[0], candidate[0], labels)
        labelled = spec.metric == "top1_drop"
        name = "labelled classification" if labelled else "unlabelled classification"
        return Fidelity(name, spec.task, spec.metric, float(figures[spec.metric]), unit, higher,
                        estimated=not labelled, samples=samples, figures=figures,
                        reason=spec.reason)
    figures = output_error_figures(reference, candidate)
    if spec.task == "detection":
        figures["box_agreement"] = box_agreement(reference[0], candidate[0]) \
            if reference[0].ndim == 3 and reference[0].shape[2] >= 5 else None
    return Fidelity("output error", spec.task, spec.metric, float(figures[spec.metric]), unit,
                    higher, estimated=False, samples=samples, figures=figures, reason=spec.reason)


__all__ = ["METRICS", "TASKS", "Fidelity", "FidelitySpec", "box_agreement",
           "classification_figures", "judge", "output_error_figures", "probabilities"]

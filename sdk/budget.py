"""Budgets (limits a model must meet on a device) and the verdict of checking a result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from edgeship.core.errors import ConfigError

PERCENTILES = {"50": "p50", "90": "p90", "99": "p99", "p50": "p50", "p90": "p90", "p99": "p99"}


def _limit(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got '{value}'",
                          f"pass a positive number, e.g. {name} 20") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got '{value}'",
                          f"pass a positive number, e.g. {name} 20")
    return number


@dataclass(frozen=True)
class Check:
    """One budget compared with one measured value."""

    name: str  # latency | memory | size | accuracy_drop | snr | rel_error | cosine
    limit: float
    measured: Optional[float]
    unit: str
    detail: str = ""
    higher_is_better: bool = False  # a floor (SNR, cosine), not a ceiling

    @property
    def ok(self) -> bool:
        if self.measured is None:
            return False
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit

    @property
    def margin(self) -> Optional[float]:
        """How far inside (negative) or outside (positive) the limit, in the unit."""
        if self.measured is None:
            return None
        return self.limit - self.measured if self.higher_is_better else self.measured - self.limit

    @property
    def relation(self) -> str:
        """The sign a missed check is shown with: ``>`` past a ceiling, ``<`` under a floor."""
        return "<" if self.higher_is_better else ">"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit, "measured": self.measured,
                "unit": self.unit, "detail": self.detail, "ok": self.ok}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        """A check ``to_dict`` wrote.  ``ok`` follows from the numbers; whether the limit is a
        floor follows from the check's name (``FLOORS``), unless the dict says."""
        higher = data.get("higher_is_better")
        return cls(data["name"], float(data["limit"]),
                   None if data.get("measured") is None else float(data["measured"]),
                   str(data.get("unit", "")), str(data.get("detail", "")),
                   data["name"] in FLOORS if higher is None else bool(higher))


@dataclass(frozen=True)
class Verdict:
    """Every check of a budget against a result; ``ok`` when all pass."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        """The verdict as every JSON output writes it (bench --json, fleets, candidates)."""
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls([Check.from_dict(c) for c in data.get("checks", [])])

    def summary(self) -> str:
        if self.ok:
            return "all budgets met" if self.checks else "no budgets set"
        return "; ".join(
            f"{c.name} {c.measured:.3g} {c.unit} {c.relation} {c.limit:g} {c.unit}"
            if c.measured is not None
            else f"{c.name} not measured"
            for c in self.failed
        )


FIDELITY_LIMITS = ("max_accuracy_drop", "min_snr_db", "max_rel_error", "min_cosine")
# (check name, unit, higher is better) per fidelity metric a budget can hold
_FIDELITY_CHECKS: dict[str, tuple[str, str, str, bool]] = {
                    "top1_drop": ("max_accuracy_drop", "accuracy_drop", "pt", False),
                    "estimated_drop": ("max_accuracy_drop", "accuracy_drop", "pt", False),
                    "agreement_drop": ("max_accuracy_drop", "accuracy_drop", "pt", False),
                    "snr_db": ("min_snr_db", "snr", "dB", True),
                    "rel_error": ("max_rel_error", "rel_error", "", False),
                    "cosine": ("min_cosine", "cosine", "", True)}
FLOORS = frozenset(name for _, name, _, higher in _FIDELITY_CHECKS.values() if higher)


@dataclass(frozen=True)
class Budget:
    """Limits for a model on a device; None means no limit.

    Fidelity: ``max_accuracy_drop`` (points) holds classification, labelled (top-1) or not (the
    estimated drop); ``min_snr_db``, ``max_rel_error`` and ``min_cosine`` hold outputs judged by
    output error (regression, embeddings, [N,1] scores, detectors).

    Example:
        >>> Budget(max_latency_ms=20, max_memory_mb=150, percentile="p99").percentile
        'p99'
    """

    max_latency_ms: Optional[float] = None
    max_memory_mb: Optional[float] = None
    max_size_mb: Optional[float] = None
    max_accuracy_drop: Optional[float] = None  # in accuracy points (percent)
    percentile: str = "p50"
    min_snr_db: Optional[float] = None  # output error: signal-to-noise of the outputs, dB
    max_rel_error: Optional[float] = None  # output error: ||cand - ref|| / ||ref||
    min_cosine: Optional[float] = None  # output error: mean per-sample cosine (0..1]

    def __post_init__(self) -> None:
        for name in ("max_latency_ms", "max_memory_mb", "max_size_mb", "max_accuracy_drop",
                     "min_snr_db", "max_rel_error", "min_cosine"):
            object.__setattr__(self, name, _limit("--" + name.replace("_", "-"), getattr(self, name)))
        key = PERCENTILES.get(str(self.percentile).lower())
        if key is None:
            raise ConfigError(f"--percentile must be 50, 90 or 99, got '{self.percentile}'",
                              "pass --percentile 50, 90 or 99")
        object.__setattr__(self, "percentile", key)

    @property
    def is_empty(self) -> bool:
        return all(v is None for v in (self.max_latency_ms, self.max_memory_mb, self.max_size_mb,
                                       self.max_accuracy_drop, self.min_snr_db,
                                       self.max_rel_error, self.min_cosine))

    def fidelity_check(self, fidelity: Any) -> Optional[Check]:
        """The check of a ``converters.fidelity.Fidelity`` against this budget's limit for its
        metric (None: the budget sets none for it)."""
        found = _FIDELITY_CHECKS.get(fidelity.metric)
        if found is None or getattr(self, found[0]) is None:
            return None
        field_name, name, unit, higher = found
        return Check(name, getattr(self, field_name), fidelity.value, unit, fidelity.label,
                     higher_is_better=higher)

    def evaluate(self, result: Any, accuracy_drop: Optional[float] = None,
                 fidelity: Any = None) -> Verdict:
        """Check a BenchmarkResult (and an accuracy drop in points, or a ``Fidelity``)."""
        checks = []
        if self.max_latency_ms is not None:
            checks.append(Check("latency", self.max_latency_ms, result.latency(self.percentile),
                                "ms", self.percentile))
        if self.max_memory_mb is not None:
            checks.append(Check("memory", self.max_memory_mb, result.memory.peak_rss_mb,
                                "MB", "peak RSS"))
        if self.max_size_mb is not None:
            checks.append(Check("size", self.max_size_mb, result.model.size_mb, "MB",
                                "model files"))
        if fidelity is not None:
            check = self.fidelity_check(fidelity)
            if check is not None:
                checks.append(check)
        elif self.max_accuracy_drop is not None:
            checks.append(Check("accuracy_drop", self.max_accuracy_drop, accuracy_drop, "pt",
                                "vs original"))
        return Verdict(checks)

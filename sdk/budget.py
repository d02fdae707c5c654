"""Budgets (limits a model must meet on a device) and the verdict of checking a result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from edgeship.errors import ConfigError

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

    name: str  # latency | memory | size | accuracy_drop
    limit: float
    measured: Optional[float]
    unit: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.measured is not None and self.measured <= self.limit

    @property
    def margin(self) -> Optional[float]:
        """How far under (negative) or over (positive) the limit, in the unit."""
        return None if self.measured is None else self.measured - self.limit


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

    def summary(self) -> str:
        if self.ok:
            return "all budgets met" if self.checks else "no budgets set"
        return "; ".join(
            f"{c.name} {c.measured:.3g} {c.unit} > {c.limit:g} {c.unit}" if c.measured is not None
            else f"{c.name} not measured"
            for c in self.failed
        )


@dataclass(frozen=True)
class Budget:
    """Limits for a model on a device; None means no limit.

    Example:
        >>> Budget(max_latency_ms=20, max_memory_mb=150, percentile="p99").percentile
        'p99'
    """

    max_latency_ms: Optional[float] = None
    max_memory_mb: Optional[float] = None
    max_size_mb: Optional[float] = None
    max_accuracy_drop: Optional[float] = None  # in accuracy points (percent)
    percentile: str = "p50"

    def __post_init__(self) -> None:
        for name in ("max_latency_ms", "max_memory_mb", "max_size_mb", "max_accuracy_drop"):
            object.__setattr__(self, name, _limit("--" + name.replace("_", "-"), getattr(self, name)))
        key = PERCENTILES.get(str(self.percentile).lower())
        if key is None:
            raise ConfigError(f"--percentile must be 50, 90 or 99, got '{self.percentile}'",
                              "pass --percentile 50, 90 or 99")
        object.__setattr__(self, "percentile", key)

    @property
    def is_empty(self) -> bool:
        return all(v is None for v in (self.max_latency_ms, self.max_memory_mb, self.max_size_mb,
                                       self.max_accuracy_drop))

    def evaluate(self, result: Any, accuracy_drop: Optional[float] = None) -> Verdict:
        """Check a BenchmarkResult (and an accuracy drop in points, when known)."""
        checks = []
        if self.max_latency_ms is not None:
            checks.append(Check("latency", self.max_latency_ms, result.latency(self.percentile),
                                "ms", self.percentile))
        if self.max_memory_mb is not None:
            checks.append(Check("memory", self.max_memory_mb, result.memory.get("peak_rss_mb"),
                                "MB", "peak RSS"))
        if self.max_size_mb is not None:
            checks.append(Check("size", self.max_size_mb, result.model["size_bytes"] / 1e6, "MB",
                                "model files"))
        if self.max_accuracy_drop is not None:
            checks.append(Check("accuracy_drop", self.max_accuracy_drop, accuracy_drop, "pt",
                                "vs original"))
        return Verdict(checks)

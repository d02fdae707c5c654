"""A benchmark result read back from a user's JSON file (``report``), checked at the edge.

The agent writes ``edgeship.benchmark/1`` JSON; a file on disk may be anything, so it is
type-checked (pydantic) against the result's own dataclasses (``edgeship.runtime.results``:
one definition of every field) before ``BenchmarkResult.from_dict`` builds it.  Keys the
classes do not know pass (devices report what they have); wrong types and non-finite numbers
do not.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any, Optional

from edgeship.budget import Check, Verdict
from edgeship.core.errors import ConfigError
from edgeship.runtime.results import SCHEMA, BenchmarkResult
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError


class _Target(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Optional[str] = None


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="allow")
    checks: list[Check] = []


class _Edges(BaseModel):
    """What the host adds to the agent's object: where it ran, and the CLI's verdict."""

    model_config = ConfigDict(extra="allow")
    target: _Target = _Target()
    verdict: Optional[_Verdict] = None


@functools.cache
def _result_adapter() -> TypeAdapter[BenchmarkResult]:
    return TypeAdapter(BenchmarkResult)


def _non_finite(value: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield where
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(v, (*where, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite(v, (*where, i))


def errors_line(exc: ValidationError) -> str:
    """The first three problems pydantic found, on one line: ``latency_ms.p50: ...; ...``."""
    detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}"
                       for e in exc.errors()[:3])
    return " ".join(detail.split())[:300]


def read_verdict(data: Any, source: str, fix: str) -> Verdict:
    """A verdict as ``Verdict.to_dict`` writes it, its types checked."""
    try:
        _Verdict.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"'{source}' verdict is not valid: {errors_line(exc)}", fix) from None
    return Verdict.from_dict(data)


def read_bench_json(payload: Any, source: str, fix: str) -> tuple[BenchmarkResult, Optional[Verdict]]:
    """The result in ``payload`` and the verdict written beside it (``bench --json``), or one
    ConfigError naming the first fields that are missing or wrong."""
    if not isinstance(payload, dict):
        raise ConfigError(f"'{source}' is not a JSON object", fix)
    bad = next(_non_finite(payload), None)
    if bad is not None:
        raise ConfigError(f"'{source}' is not a valid result: {'.'.join(map(str, bad))}: "
                          "must be a finite number", fix)
    try:
        _result_adapter().validate_python(payload)
        edges = _Edges.model_validate(payload)
    except ValidationError as exc:
        raise ConfigError(f"'{source}' is not a valid result: {errors_line(exc)}", fix) from None
    try:
        result = BenchmarkResult.from_dict(payload)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"'{source}' is not a valid {SCHEMA} result: {exc}", fix) from None
    # the checks as written (types checked above): a floor's direction follows from its name
    return result, Verdict.from_dict(payload["verdict"]) if edges.verdict is not None else None

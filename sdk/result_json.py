"""The edge schema of a benchmark result read back from a user's JSON file (``report``).

The agent writes ``edgeship.benchmark/1`` JSON; a file on disk may be anything, so the fields
the report reads are type-checked here (pydantic at the edge) before ``BenchmarkResult`` holds
them.  Nested objects allow extra keys (devices report what they have); wrong types do not.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from edgeship.core.errors import ConfigError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

_OPEN = ConfigDict(extra="allow")


class _Finite(BaseModel):
    model_config = _OPEN

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class _Latency(_Finite):
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    runs: int


class _Model(_Finite):
    name: str = "model"
    size_bytes: int = 0


class _Backend(BaseModel):
    model_config = _OPEN
    backend: Optional[str] = None
    version: Optional[str] = None
    module: Optional[str] = None
    device: Optional[str] = None
    precision: Optional[str] = None
    threads: Optional[int] = None


class _Input(BaseModel):
    model_config = _OPEN
    name: str
    shape: list[Any]
    source: str = ""


class _Memory(_Finite):
    peak_rss_mb: Optional[float] = None
    delta_mb: Optional[float] = None


class _Frequency(_Finite):
    governor: Optional[str] = None
    mhz: Optional[float] = None


class _CpuFrequency(BaseModel):
    model_config = _OPEN
    before: Optional[_Frequency] = None
    after: Optional[_Frequency] = None


class _Zone(_Finite):
    celsius: Optional[float] = None


class _Thermal(BaseModel):
    model_config = _OPEN
    before: Optional[dict[str, _Zone]] = None
    after: Optional[dict[str, _Zone]] = None
    throttled: Optional[bool] = None


class _Coverage(_Finite):
    share_on_primary: Optional[float] = None
    nodes: Optional[int] = None


class _Target(BaseModel):
    model_config = _OPEN
    name: Optional[str] = None


class _Verdict(BaseModel):
    model_config = _OPEN
    checks: list[dict[str, Any]] = []


class BenchJSON(_Finite):
    """What a report needs of a result file (newer fields pass; BenchmarkResult decides)."""

    schema_: str = ""
    model: _Model
    backend: _Backend
    inputs: list[_Input]
    config: dict[str, Any]
    load_ms: float
    first_inference_ms: float
    latency_ms: _Latency
    throughput_ips: float
    memory: _Memory
    thermal: _Thermal
    cpu_frequency: _CpuFrequency
    host: dict[str, Any]
    node_coverage: Optional[_Coverage] = None
    samples_ms: list[float] = []
    timestamp: str = ""
    target: _Target = _Target()
    verdict: Optional[_Verdict] = None


def check_bench_json(payload: Any, source: str, fix: str) -> None:
    """Raise one ConfigError naming the first fields of ``payload`` that are missing or wrong."""
    if not isinstance(payload, dict):
        raise ConfigError(f"'{source}' is not a JSON object", fix)
    data = dict(payload)
    data["schema_"] = data.pop("schema", "")
    try:
        BenchJSON.model_validate(data)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'top level'}: {e['msg']}"
                           for e in exc.errors()[:3])
        raise ConfigError(f"'{source}' is not a valid result: {' '.join(detail.split())[:300]}",
                          fix) from None

"""The typed parts of a measurement (``edgeship.benchmark/1``), and their one JSON form.

Inside edgeship a result is dataclasses all the way down; dictionaries exist only at the JSON
edge, in ``BenchmarkResult.to_dict`` / ``from_dict``.  Stdlib only: the agent that fills these
runs on the device.  ``from_dict`` reads what the agent wrote; a file from elsewhere is
type-checked against these same classes first (``edgeship.result_json``), so there is one
definition of every field.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional, TypeVar

SCHEMA = "edgeship.benchmark/1"

T = TypeVar("T")


def known(cls: type[T], data: Optional[dict[str, Any]]) -> Optional[T]:
    """``cls`` from the keys of ``data`` it has fields for (a newer agent's extra keys pass)."""
    if data is None:
        return None
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class LatencyStats:
    """Milliseconds over the timed runs."""

    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    runs: int

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int]) -> LatencyStats:
        ms = sorted(s / 1e6 for s in samples_ns)
        return cls(
            min=ms[0],
            p50=_percentile(ms, 50),
            p90=_percentile(ms, 90),
            p99=_percentile(ms, 99),
            max=ms[-1],
            mean=statistics.fmean(ms),
            std=statistics.pstdev(ms),
            runs=len(ms),
        )


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class ModelFacts:
    """What the measured model costs on disk: its files, their size and the main file's hash."""

    path: str = ""
    name: str = "model"
    format: str = ""
    size_bytes: int = 0
    sha256: str = ""
    files: list[str] = field(default_factory=list)

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


@dataclass
class BackendInfo:
    """What actually ran the model, as measured, not as requested (every backend fills the
    first four; a result file that lacks one reads back with it empty)."""

    backend: str = ""  # onnxruntime | openvino | tflite
    module: str = ""  # the Python module that was imported (e.g. ai_edge_litert)
    version: str = ""
    device: str = ""  # execution provider / device actually used
    requested_device: Optional[str] = None
    precision: Optional[str] = None  # inference precision actually used, where the backend says
    threads: Optional[int] = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class InputFed:
    """One input as the timed runs were fed: its shape and where its values came from."""

    name: str
    shape: list[int]
    dtype: str = ""
    source: str = ""  # samples:FILE | random(seed=N) | the --input-value/--input-range flag


@dataclass
class MemoryUse:
    """Resident memory in MB: before the model was loaded, at the peak, and the difference."""

    rss_before_load_mb: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    delta_mb: Optional[float] = None
    source: str = ""  # VmHWM | ru_maxrss


@dataclass
class Zone:
    """One thermal zone: its temperature and its lowest passive/hot trip point (°C)."""

    celsius: Optional[float] = None
    trip_celsius: Optional[float] = None


@dataclass
class ThermalState:
    """Thermal zones before and after the timed runs, and whether the device throttled
    (None: nothing on the device tells)."""

    before: dict[str, Zone] = field(default_factory=dict)
    after: dict[str, Zone] = field(default_factory=dict)
    throttled: Optional[bool] = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThermalState:
        return cls(before=_zones(data.get("before")), after=_zones(data.get("after")),
                   throttled=data.get("throttled"))

    def hottest(self, when: str) -> Optional[float]:
        """The highest zone temperature ``before`` or ``after`` (None: no zone said)."""
        temps = [z.celsius for z in getattr(self, when).values() if z.celsius is not None]
        return max(temps) if temps else None


def _zones(data: Optional[dict[str, Any]]) -> dict[str, Zone]:
    return {name: known(Zone, z) or Zone() for name, z in (data or {}).items()}


@dataclass
class CpuFrequency:
    governor: Optional[str] = None
    mhz: Optional[float] = None
    max_mhz: Optional[float] = None


@dataclass
class FrequencyState:
    """CPU 0's governor and clock before and after the timed runs."""

    before: Optional[CpuFrequency] = None
    after: Optional[CpuFrequency] = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrequencyState:
        return cls(before=known(CpuFrequency, data.get("before")),
                   after=known(CpuFrequency, data.get("after")))


@dataclass
class CgroupLimits:
    """The tightest memory (MB) and CPU (cores) limits of the agent's cgroup; None: unlimited."""

    version: Optional[int] = None
    memory_limit_mb: Optional[float] = None
    cpu_quota_cores: Optional[float] = None


@dataclass
class HostFacts:
    """The machine the agent ran on, and how long the agent took.  The keys are
    ``sysinfo.host_facts()``'s: sysinfo builds a plain mapping because the device probe ships
    that one file alone (it imports nothing of edgeship), and this class types it."""

    hostname: Optional[str] = None
    os: Optional[str] = None
    machine: Optional[str] = None
    python: Optional[str] = None
    python_bits: Optional[int] = None
    libc: Optional[str] = None
    cpu_model: Optional[str] = None
    cpu_count: Optional[int] = None
    cpu_affinity: Optional[int] = None
    device_model: Optional[str] = None
    cpu_parts: list[str] = field(default_factory=list)
    memory_total_mb: Optional[float] = None
    cgroup: Optional[CgroupLimits] = None
    wall_seconds: Optional[float] = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostFacts:
        facts = known(cls, data)
        assert facts is not None
        facts.cgroup = known(CgroupLimits, data.get("cgroup"))
        return facts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def summary(self) -> str:
        """``Raspberry Pi 5 Model B (aarch64, 4 cores)``: the device, else its CPU."""
        return f"{self.device_model or self.cpu_model} ({self.machine}, {self.cpu_count} cores)"


@dataclass
class NodeCoverage:
    """How many graph nodes ran, per device/provider, and the share on the primary one."""

    nodes: Optional[int] = None
    by_device: dict[str, int] = field(default_factory=dict)
    share_on_primary: Optional[float] = None
    runtime_precisions: Optional[dict[str, int]] = None  # OpenVINO: layers per runtime precision


@dataclass
class BenchmarkResult:
    """One measurement of one model on one machine (schema ``edgeship.benchmark/1``).

    ``config`` (the agent's options) and ``target`` (where it ran: filled in by the host side)
    stay mappings: they are the benchmark configuration's and the target's to type.

    Example:
        >>> result = BenchmarkResult.from_json(text)                 # doctest: +SKIP
        >>> result.latency_ms.p50, result.memory.peak_rss_mb          # doctest: +SKIP
        >>> verdict = result.check(Budget(max_latency_ms=20))         # doctest: +SKIP
    """

    model: ModelFacts
    backend: BackendInfo
    inputs: list[InputFed]
    config: dict[str, Any]
    load_ms: float
    first_inference_ms: float
    latency_ms: LatencyStats
    throughput_ips: float
    memory: MemoryUse
    thermal: ThermalState
    cpu_frequency: FrequencyState
    host: HostFacts
    node_coverage: Optional[NodeCoverage] = None
    samples_ms: list[float] = field(default_factory=list)
    timestamp: str = ""
    target: dict[str, Any] = field(default_factory=dict)  # filled in by the host side
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkResult:
        """The result a ``to_dict`` made (keys it does not know are left out)."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not an {SCHEMA} result (schema={data.get('schema')!r})")
        parts = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in parts}
        data["model"] = known(ModelFacts, data["model"])
        data["backend"] = known(BackendInfo, data["backend"])
        data["inputs"] = [known(InputFed, x) for x in data["inputs"]]
        data["latency_ms"] = known(LatencyStats, data["latency_ms"])
        data["memory"] = known(MemoryUse, data["memory"])
        data["thermal"] = ThermalState.from_dict(data["thermal"])
        data["cpu_frequency"] = FrequencyState.from_dict(data["cpu_frequency"])
        data["host"] = HostFacts.from_dict(data["host"])
        data["node_coverage"] = known(NodeCoverage, data.get("node_coverage"))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> BenchmarkResult:
        return cls.from_dict(json.loads(text))

    def latency(self, percentile: str = "p50") -> float:
        return float(getattr(self.latency_ms, percentile))

    @property
    def where(self) -> str:
        """The target's name (``local``: measured on this host)."""
        return str(self.target.get("name") or "local")

    def check(self, budget: Any) -> Any:
        """Compare with a ``edgeship.Budget``; returns its ``Verdict``.  A benchmark measures no
        accuracy, so an accuracy-drop budget does not apply here and is left out (``compress``
        and ``Budget.evaluate(result, drop)`` check it where a drop is measured)."""
        import dataclasses

        if getattr(budget, "max_accuracy_drop", None) is not None and dataclasses.is_dataclass(budget):
            budget = dataclasses.replace(budget, max_accuracy_drop=None)  # type: ignore[type-var]
        return budget.evaluate(self)

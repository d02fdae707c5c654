"""Measuring compress candidates: where (the device, or this host standing in for it, said
plainly), with how many threads, and the benchmark of each built candidate on that target
(leased when the device is in a lab)."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from edgeship.targets.base import Target


def describe_measurement(target: Target, profile: Any) -> dict[str, Any]:
    """Where latency and memory come from, said plainly: a local run is the host's numbers."""
    from edgeship.profiles import match_profile
    from edgeship.targets import LocalTarget

    if isinstance(target, LocalTarget):
        from edgeship.runtime import sysinfo
        from edgeship.targets.facts import DeviceFacts

        facts = DeviceFacts.from_dict(sysinfo.host_facts() | {"cpu_flags": sysinfo.cpu_flags()})
    else:
        facts = target.probe()
    matched, _, reasons = match_profile(facts, [profile])
    cpu = facts.label or "unknown CPU"
    host = isinstance(target, LocalTarget)
    fit = "" if matched is not None else f"; it does not match {profile.name}: " + \
        reasons[0].removeprefix("no bundled profile fits: ").removeprefix(f"{profile.name}: ")
    if host:
        note = (f"measured on THIS HOST ({cpu}, {facts.cpu_count} cores), not on a "
                f"{profile.display_name}: latency and memory are the host's{fit}. "
                "Pass --target HOST to measure on the device.")
    else:
        note = f"measured on the device {target.name} ({cpu}){fit}"
    return {"kind": "host" if host else "device", "target": target.name,
            "label": "this host" if host else target.name, "cpu": cpu,
            "machine": facts.machine, "cpu_count": facts.cpu_count,
            "profile": profile.name, "matches_profile": matched is not None, "note": note,
            # the planner's CPU precisions follow these; another machine's flags say nothing
            # about the device (the caller pops them: they are not a result)
            "cpu_flags": facts.cpu_flags if matched is not None else None}


@dataclass(frozen=True)
class Measurement:
    """Where a search measures, said plainly (summary.json's ``measured_on``, by ``to_dict``)."""

    kind: str  # host | device
    target: str
    label: str  # "this host" or the device's name
    cpu: str
    machine: Optional[str]
    cpu_count: Optional[int]
    profile: str
    matches_profile: bool
    note: str
    cpu_precisions: list[str]  # what the planner may use on the CPU, from the device's flags
    threads: Optional[int]
    threads_why: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Measurer:
    """Benchmarks built candidates on one target, one at a time, with the search's options."""

    def __init__(self, target: Any, profile: Any, original: Any, *, threads: Optional[int],
                 runs: int, warmup: int, min_seconds: float,
                 lease: Optional[Callable[[], Any]] = None) -> None:
        self.target, self.original = target, original
        self.lease = lease if lease is not None else nullcontext
        setting = describe_measurement(target, profile)
        # the planner's CPU precisions follow the device's flags; they are not a result
        self.cpu_flags = setting.pop("cpu_flags", None)
        choice = profile.thread_choice()
        self.threads = threads if threads else (
            choice.threads if setting["kind"] == "device" else None)
        self.where = Measurement(
            **setting, cpu_precisions=list(profile.cpu_precisions(self.cpu_flags)),
            threads=self.threads,
            threads_why="--threads" if threads else f"{choice.cores}: {choice.why}"
            if self.threads else "the backend's default on this host")
        from edgeship.runtime.benchconfig import BenchConfig

        # the search's measurement settings, the same for every candidate; each adds its own
        # engine, precision hint and input shapes (``measure``)
        self.config = BenchConfig(threads=self.threads, runs=runs, warmup=warmup,
                                  min_seconds=min_seconds,
                                  fills=dict(original.input_fills or {})).check()

    def measure(self, cand: Any, scratch: Path, stage: Callable[[str], None],
                shapes: Optional[dict[str, tuple[int, ...]]] = None) -> None:
        """Benchmark a built and judged candidate into ``cand.benchmark`` (``shapes``: the
        dynamic dimensions fixed for the original); a failed measurement is this candidate's
        error, not the search's."""
        from edgeship.bench import run_benchmark
        from edgeship.compression.executor import failure

        planned = cand.planned
        t0 = time.perf_counter()
        stage(f"benchmarking on {self.where.label}")
        try:
            with self.lease():
                config = self.config.replace(
                    backend=planned.runs_on, precision=planned.recipe.precision,
                    input_shapes=self._shapes(cand.path, shapes) or {})
                cand.benchmark = run_benchmark(cand.path, self.target, config)
        except Exception as exc:  # a failed measurement is this candidate's, not the search's
            cand.error = failure(exc, planned.name, scratch)
            return
        cand.seconds["benchmark"] = time.perf_counter() - t0

    def _shapes(self, path: Path, shapes: Optional[dict[str, tuple[int, ...]]]
                ) -> Optional[dict[str, tuple[int, ...]]]:
        if _static_inputs(path):
            return None
        return shapes or self.original.input_shapes or None


def _static_inputs(path: Path) -> bool:
    """The candidate's manifest lists only fixed input dimensions (onnx2tf's TFLite, whose
    layout may also differ from the original's): it needs no --input-shape to be measured."""
    from edgeship.runtime.manifest import read_manifest

    ins = (read_manifest(path) or {}).get("inputs") or []
    return bool(ins) and all(isinstance(d, int) and d > 0 for i in ins for d in i.get("shape") or [None])

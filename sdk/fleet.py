"""A fleet: the same work on many targets at once, each host with its own outcome.

A bounded thread pool runs one target per worker; a failing host is recorded (its one-line
error and exit code) and the others go on.  The fleet's exit code is the worst host's.  On
Ctrl-C every running target is interrupted at its next safe point and cleans up its remote
temporaries; then ``FleetInterrupted`` (a KeyboardInterrupt) carries the partial result, so
the hosts that finished are still reported.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, TypeVar, Union

from edgeship.core.errors import ConfigError, EdgeshipError
from edgeship.runtime.benchconfig import BenchConfig
from edgeship.targets import Target, open_target

DEFAULT_JOBS = 32  # concurrent hosts; each costs two threads and one SSH connection here
T = TypeVar("T")


@dataclass
class HostOutcome:
    """One host's part of a fleet run: a value, or the error that stopped it."""

    target: str
    exit_code: int
    seconds: float
    value: Any = None
    error: Optional[str] = None  # the one-line message the CLI would print
    error_type: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class FleetResult:
    """Per-host outcomes, in the order the targets were given."""

    hosts: list[HostOutcome]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return max((h.exit_code for h in self.hosts), default=0)

    def to_dict(self, value_dict: Callable[[HostOutcome], Any] = lambda h: None) -> dict[str, Any]:
        return {
            "schema": "edgeship.fleet/1",
            **self.extra,
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
            "seconds": self.seconds,
            "hosts": [
                {"target": h.target, "ok": h.ok, "exit_code": h.exit_code, "seconds": h.seconds,
                 "error": None if h.error is None else {"type": h.error_type, "message": h.error},
                 **(value_dict(h) or {})}
                for h in self.hosts
            ],
        }


class Lease(Protocol):
    """``lease(spec)``: a context manager held around one host's work; ``stop`` set on Ctrl-C
    ends the waits for one."""

    stop: threading.Event

    def __call__(self, spec: str) -> contextlib.AbstractContextManager[Any]: ...


class FleetInterrupted(KeyboardInterrupt):
    """Ctrl-C during a fleet run; ``result`` holds every host's outcome so far (the hosts that
    had not finished are recorded as interrupted, exit 130)."""

    def __init__(self, result: FleetResult) -> None:
        super().__init__("interrupted")
        self.result = result


def unique_targets(targets: Sequence[str]) -> list[str]:
    """The targets, each once, in order, all checked before any is contacted: an empty list or
    a malformed target string is a usage error, not one failing host."""
    from edgeship.targets.sshconfig import parse_target

    found = list(dict.fromkeys(t.strip() for t in targets if t.strip()))
    if not found:
        raise ConfigError("no targets given", "pass --target HOST (repeatable) or --hosts-file")
    for spec in found:
        if spec != "local":
            parse_target(spec)
    return found


def run_fleet(
    targets: Sequence[str],
    work: Callable[[Target], T],
    *,
    jobs: int = DEFAULT_JOBS,
    target_options: Optional[dict[str, Any]] = None,
    code_of: Callable[[T], int] = lambda value: 0,
    lease: Optional[Lease] = None,
) -> FleetResult:
    """Open each target, call ``work(target)`` on a pool of ``jobs`` threads, close it.

    ``lease(spec)``: a context manager held around each host's work (``edgeship.lab.lease``:
    no other measurement runs on that device meanwhile)."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}", "pass a positive number")
    specs = unique_targets(targets)
    live: dict[str, Target] = {}
    lock = threading.Lock()
    start = time.perf_counter()

    def one(spec: str) -> HostOutcome:
        began = time.perf_counter()
        try:
            with lease(spec) if lease is not None else contextlib.nullcontext():
                target = open_target(spec, **(target_options or {})) if spec != "local" \
                    else open_target(spec)
                with lock:
                    live[spec] = target
                try:
                    value = work(target)
                finally:
                    target.close()
            return HostOutcome(spec, code_of(value), time.perf_counter() - began, value)
        except EdgeshipError as exc:
            return HostOutcome(spec, exc.exit_code, time.perf_counter() - began,
                               error=exc.one_line(), error_type=type(exc).__name__)
        except KeyboardInterrupt:
            return HostOutcome(spec, 130, time.perf_counter() - began, error="interrupted",
                               error_type="KeyboardInterrupt")
        except Exception as exc:  # one host's surprise must not take the fleet down
            return HostOutcome(spec, 3, time.perf_counter() - began,
                               error=f"unexpected {type(exc).__name__}: {exc}",
                               error_type=type(exc).__name__)
        finally:
            with lock:
                live.pop(spec, None)

    with ThreadPoolExecutor(max_workers=min(jobs, len(specs)),
                            thread_name_prefix="edgeship-fleet") as pool:
        futures = [pool.submit(one, s) for s in specs]
        try:
            wait(futures)
        except KeyboardInterrupt:
            if lease is not None:  # threads still waiting for a lab lease give up
                lease.stop.set()
            with lock:
                for target in live.values():
                    target.interrupt()
            for f in futures:
                f.cancel()
            wait(futures)
            hosts = [f.result() if not f.cancelled() else
                     HostOutcome(spec, 130, 0.0, error="interrupted", error_type="KeyboardInterrupt")
                     for spec, f in zip(specs, futures)]
            raise FleetInterrupted(FleetResult(hosts, time.perf_counter() - start,
                                               interrupted=True)) from None
    return FleetResult([f.result() for f in futures], time.perf_counter() - start)


def bench_fleet(
    model: Union[str, Path],
    targets: Sequence[str],
    *,
    budget: Any = None,
    jobs: int = DEFAULT_JOBS,
    accept_new_host_key: bool = False,
    timeout: Optional[float] = None,
    lab: Optional[str] = None,
    config: Optional[BenchConfig] = None,
    **bench_options: Any,
) -> FleetResult:
    """Benchmark ``model`` on every target concurrently (``edgeship bench --target`` repeated),
    each as ``config`` says (or ``benchmark``'s keywords in ``bench_options``).

    Each host's value is ``(BenchmarkResult, Verdict or None)``; its exit code is 1 when it
    missed ``budget``, the error's code when it failed.  ``lab``: a Ray cluster address whose
    device lab (``edgeship.lab``) leases each host for its benchmark.

    Example:
        >>> fleet = bench_fleet("m.onnx", ["pi1", "pi2"], runs=200)        # doctest: +SKIP
        >>> [(h.target, h.value[0].latency_ms.p50) for h in fleet.hosts if h.ok]  # doctest: +SKIP
    """
    from edgeship.bench import bench_config, run_benchmark

    path = Path(model)
    if not path.is_file():
        from edgeship.core.errors import ModelError

        raise ModelError(f"model file '{path}' does not exist", "check the path")
    settings = config or bench_config(**bench_options)
    if timeout is not None:
        settings = settings.replace(timeout=timeout)
    settings.check()  # a usage error, before any host is contacted

    def work(target: Target) -> tuple[Any, Any]:
        result = run_benchmark(path, target, settings)
        if target.last_deploy is not None:
            result.target["deploy"] = target.last_deploy.to_dict()
        return result, (result.check(budget) if budget is not None else None)

    try:
        fleet = run_fleet(targets, work, jobs=jobs,
                          target_options={"accept_new_host_key": accept_new_host_key},
                          code_of=lambda v: 0 if v[1] is None or v[1].ok else 1,
                          lease=_lab_lease(lab, path.name))
    except FleetInterrupted as stopped:
        stopped.result.extra["model"] = path.name
        raise
    fleet.extra["model"] = path.name
    return fleet


class _LabLease:
    """Each host's lease from the lab; ``stop`` (set on Ctrl-C) ends the waits for one."""

    def __init__(self, lab: str, what: str) -> None:
        self.lab, self.what, self.stop = lab, what, threading.Event()

    def __call__(self, spec: str) -> Any:
        from edgeship.lab import lease

        return lease(self.lab, spec, what=f"bench {self.what}", stop=self.stop)


def _lab_lease(lab: Optional[str], what: str) -> Optional[_LabLease]:
    return None if lab is None else _LabLease(lab, what)

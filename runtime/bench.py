"""The measurement agent and its result: ``python -m edgeship.runtime.bench MODEL``.

Prints exactly one JSON object on stdout (backends' own chatter is sent to stderr).  The
protocol is DESIGN.md's: a fresh process per measurement, load time, first inference, warmup
until the rolling median settles, at least ``runs`` timed runs and ``min_seconds``, each timed
with ``perf_counter_ns``; peak RSS from VmHWM; thermal and frequency before and after.
The result's types and their JSON are ``edgeship.runtime.results`` (re-exported here).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from edgeship.runtime.inputs import InputFill

from edgeship.runtime.benchconfig import (
    DEFAULT_MIN_SECONDS,
    DEFAULT_RUNS,
    DEFAULT_WARMUP,
    BenchConfig,
    check_min_seconds,
)
from edgeship.runtime.errors import EXIT_INTERNAL, EdgeshipError
from edgeship.runtime.formats import files_of
from edgeship.runtime.results import (
    SCHEMA,
    BenchmarkResult,
    FrequencyState,
    HostFacts,
    InputFed,
    LatencyStats,
    MemoryUse,
    ModelFacts,
    ThermalState,
)

__all__ = ["DEFAULT_MIN_SECONDS", "DEFAULT_RUNS", "DEFAULT_WARMUP", "SCHEMA", "BenchConfig",
           "BenchmarkResult", "LatencyStats", "check_min_seconds", "main", "measure"]

PERCENTILES = ("p50", "p90", "p99")
MAX_SAMPLES_KEPT = 10_000  # per-run latencies kept in the JSON (evenly strided, in time order)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _settle(call: Callable[[], object], minimum: int, budget_s: float = 5.0) -> int:
    """Run ``minimum`` warmup runs, then more until the rolling median of 5 moves < 5 %."""
    window: list[int] = []
    done = 0
    deadline = time.perf_counter() + budget_s
    while True:
        t0 = time.perf_counter_ns()
        call()
        window.append(time.perf_counter_ns() - t0)
        done += 1
        if done >= minimum and len(window) >= 10:
            prev, last = statistics.median(window[-10:-5]), statistics.median(window[-5:])
            if abs(last - prev) <= 0.05 * prev:
                return done
        if done >= minimum and (done >= minimum * 10 or time.perf_counter() > deadline):
            return done
        if minimum == 0:
            return done


def measure(model: str | Path, config: Optional[BenchConfig] = None, **options: Any
            ) -> BenchmarkResult:
    """Measure ``model`` in this process as ``config`` (or ``BenchConfig(**options)``) says.
    Use the agent (a fresh process) for real numbers.

    Inputs: the arrays of ``data`` (an .npz, see ``inputs.load_samples``) where it has them;
    the others made up at ``input_shapes``, as ``fills`` says (a value or range) or random.
    The node-coverage pass runs on the same inputs.
    """
    from edgeship.runtime import load, parse_backend, sysinfo
    from edgeship.runtime.backends import import_backend
    from edgeship.runtime.formats import format_for_path
    from edgeship.runtime.inputs import (
        check_input_names,
        load_samples,
        random_inputs,
        resolve_shapes,
    )
    from edgeship.runtime.session import inference_failed

    config = (config or BenchConfig()).replace(**options)
    backend, threads, precision, seed = config.backend, config.threads, config.precision, config.seed
    warmup, runs, min_seconds, data = config.warmup, config.runs, config.min_seconds, config.data
    input_shapes: dict[str, tuple[int, ...]] = dict(config.input_shapes)
    fills: dict[str, InputFill] = dict(config.fills)
    path = Path(model)
    fmt = format_for_path(path)
    name = parse_backend(backend)[0] if backend else fmt.backends[0]
    started = time.perf_counter()
    thermal_before, freq_before = sysinfo.thermal(), sysinfo.cpu_frequency()
    import_backend(name)  # so the baseline holds the backend library, not the model
    rss_before = sysinfo.rss_mb()

    t0 = time.perf_counter_ns()
    session = load(path, backend=backend, threads=threads, precision=precision,
                   input_shapes=input_shapes)
    load_ns = time.perf_counter_ns() - t0

    check_input_names(session.inputs, input_shapes or {}, "--input-shape")
    check_input_names(session.inputs, fills, "--input-value/--input-range")
    given = load_samples(data, session.inputs, partial=True) if data is not None else {}
    rest = [s for s in session.inputs if s.name not in given]
    # the samples' own shapes size the dimensions they share with the inputs made up here
    shapes = resolve_shapes(session.inputs, {**(input_shapes or {}),
                                             **{n: tuple(a.shape) for n, a in given.items()}})
    feeds = {**given, **random_inputs(rest, seed=seed, fixed=_only(shapes, rest),
                                      fills=_only(fills, rest))}
    feeds = {s.name: feeds[s.name] for s in session.inputs}  # the model's order
    data_name = Path(data).name if data is not None else ""
    sources = {name: f"samples:{data_name}" if name in given else
               fills[name].flag(name) if name in fills else f"random(seed={seed})" for name in feeds}
    made_up = [name for name in feeds if sources[name].startswith("random")]
    check_min_seconds(min_seconds)
    try:  # the first run, the warmup and the timed runs alike
        call = session.prepare(feeds)
        t0 = time.perf_counter_ns()
        call()
        first_ns = time.perf_counter_ns() - t0

        warmup_runs = _settle(call, warmup)

        samples: list[int] = []
        timed_start = time.perf_counter_ns()
        min_ns = int(min_seconds * 1e9)
        clock = time.perf_counter_ns
        while len(samples) < runs or clock() - timed_start < min_ns:
            t0 = clock()
            call()
            samples.append(clock() - t0)
        timed_ns = clock() - timed_start
    except (MemoryError, EdgeshipError):
        raise
    except Exception as exc:  # a backend's own error: say which inputs were made up
        raise inference_failed(exc, path.name, session.inputs, made_up,
                               session.info.backend) from None

    peak, peak_source = sysinfo.peak_rss_mb()
    thermal_after, freq_after = sysinfo.thermal(), sysinfo.cpu_frequency()
    node_coverage = session.node_coverage(feeds) if config.coverage else None
    stats = LatencyStats.from_ns(samples)
    batch = next((s for k, s in feeds.items()), None)
    batch_size = int(batch.shape[0]) if batch is not None and batch.ndim else 1
    files = files_of(path)  # an IR's .bin, ONNX external data beside it
    return BenchmarkResult(
        model=ModelFacts(path=str(path), name=path.name, format=fmt.name,
                         size_bytes=sum(f.stat().st_size for f in files), sha256=sha256_file(path),
                         files=[f.name for f in files]),
        backend=session.info,
        inputs=[InputFed(k, list(v.shape), v.dtype.name, sources[k]) for k, v in feeds.items()],
        config={
            "warmup": warmup,
            "warmup_runs": warmup_runs,
            "runs": runs,
            "min_seconds": min_seconds,
            "threads": threads,
            "seed": seed,
            "batch_size": batch_size,
            "timer": "perf_counter_ns",
            "timed_seconds": timed_ns / 1e9,
        },
        load_ms=load_ns / 1e6,
        first_inference_ms=first_ns / 1e6,
        latency_ms=stats,
        throughput_ips=batch_size * len(samples) / (timed_ns / 1e9),
        memory=MemoryUse(rss_before_load_mb=rss_before, peak_rss_mb=peak,
                         delta_mb=peak - rss_before if rss_before is not None else None,
                         source=peak_source),
        thermal=ThermalState.from_dict({
            "before": thermal_before, "after": thermal_after,
            "throttled": sysinfo.throttled(thermal_before, thermal_after)}),
        cpu_frequency=FrequencyState.from_dict({"before": freq_before, "after": freq_after}),
        host=HostFacts.from_dict({**sysinfo.host_facts(),
                                  "wall_seconds": time.perf_counter() - started}),
        node_coverage=node_coverage,
        samples_ms=[s / 1e6 for s in samples[:: -(-len(samples) // MAX_SAMPLES_KEPT)]],
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def _only(values: Optional[dict[str, Any]], specs: Sequence[Any]) -> dict[str, Any]:
    names = {s.name for s in specs}
    return {k: v for k, v in (values or {}).items() if k in names}


def main(argv: Optional[Sequence[str]] = None) -> int:
    from edgeship.runtime.errors import EdgeshipError

    # Backends print to fd 1 from C++; keep the real stdout for the one JSON object.
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        try:
            model, config = BenchConfig.from_argv(argv)
            payload, code = measure(model, config).to_json(), 0
        except EdgeshipError as exc:
            payload, code = _error_json(exc), exc.exit_code
        except Exception as exc:  # a bug: the host saves the traceback and exits 70 or 3
            payload, code = _internal_error_json(exc), EXIT_INTERNAL
        if code:
            print(f"edgeship.runtime.bench: error: {json.loads(payload)['error']['message']}",
                  file=sys.stderr)
        sys.stdout.flush()
        os.write(json_fd, (payload + "\n").encode())
        return code
    finally:
        os.close(json_fd)


def _error_json(exc: Any) -> str:
    return json.dumps(
        {
            "schema": SCHEMA,
            "error": {
                "type": type(exc).__name__,
                "message": exc.one_line(),
                "problem": exc.problem,
                "fix": exc.fix,
                "exit_code": exc.exit_code,
            },
        }
    )


def _internal_error_json(exc: BaseException) -> str:
    import traceback

    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return json.dumps({"schema": SCHEMA, "error": {
        "type": "InternalError",
        "message": f"internal error in the measurement agent ({detail})",
        "problem": f"internal error in the measurement agent ({detail})",
        "fix": "this is a bug in edgeship; please report it with the traceback",
        "exit_code": EXIT_INTERNAL,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }})


if __name__ == "__main__":
    sys.exit(main())

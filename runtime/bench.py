"""The measurement agent and its result: ``python -m edgeship.runtime.bench MODEL``.

Prints exactly one JSON object on stdout (backends' own chatter is sent to stderr).  The
protocol is DESIGN.md's: a fresh process per measurement, load time, first inference, warmup
until the rolling median settles, at least ``runs`` timed runs and ``min_seconds``, each timed
with ``perf_counter_ns``; peak RSS from VmHWM; thermal and frequency before and after.
The result's types and their JSON are ``edgeship.runtime.results`` (re-exported here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
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

from edgeship.runtime.errors import EXIT_INTERNAL, EdgeshipError
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

DEFAULT_WARMUP = 10
DEFAULT_RUNS = 100
DEFAULT_MIN_SECONDS = 1.0
PERCENTILES = ("p50", "p90", "p99")
MAX_SAMPLES_KEPT = 10_000  # per-run latencies kept in the JSON (evenly strided, in time order)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(path: Path) -> list[Path]:
    """The files a model consists of (an IR's .bin, ONNX external data beside it)."""
    files = [path]
    if path.suffix.lower() == ".xml" and path.with_suffix(".bin").exists():
        files.append(path.with_suffix(".bin"))
    data = path.with_name(path.name + ".data")
    if data.exists():
        files.append(data)
    return files


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


def measure(
    model: str | Path,
    *,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    warmup: int = DEFAULT_WARMUP,
    runs: int = DEFAULT_RUNS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    data: Optional[str | Path] = None,
    precision: Optional[str] = None,
    seed: int = 0,
    coverage: bool = True,
    fills: Optional[dict[str, InputFill]] = None,
) -> BenchmarkResult:
    """Measure ``model`` in this process.  Use the agent (a fresh process) for real numbers.

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

    fills = fills or {}
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
    node_coverage = session.node_coverage(feeds) if coverage else None
    stats = LatencyStats.from_ns(samples)
    batch = next((s for k, s in feeds.items()), None)
    batch_size = int(batch.shape[0]) if batch is not None and batch.ndim else 1
    files = model_files(path)
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


def check_min_seconds(value: float) -> None:
    """--min-seconds is a finite, non-negative number (nan and inf would time forever or crash)."""
    from edgeship.runtime.errors import ConfigError

    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--min-seconds must be a finite number of seconds >= 0, got {value}",
                          "pass e.g. --min-seconds 1")


def _only(values: Optional[dict[str, Any]], specs: Sequence[Any]) -> dict[str, Any]:
    names = {s.name for s in specs}
    return {k: v for k, v in (values or {}).items() if k in names}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m edgeship.runtime.bench",
        description="Measure one model in this process; print one JSON object on stdout.",
    )
    p.add_argument("model")
    p.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    p.add_argument("--min-seconds", type=float, default=DEFAULT_MIN_SECONDS)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--backend", default=None, help="onnxruntime|openvino|tflite[:DEVICE]")
    p.add_argument("--precision", default=None, help="fp32|fp16|bf16 (OpenVINO)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...")
    p.add_argument("--input-value", action="append", default=[], metavar="NAME=VALUE",
                   help="feed this value (broadcast to the input's shape), e.g. sr=16000")
    p.add_argument("--input-range", action="append", default=[], metavar="NAME=LOW:HIGH",
                   help="feed uniform random values in [LOW, HIGH], e.g. input_ids=0:30521")
    p.add_argument("--data", default=None,
                   help=".npz with model-ready samples: 'x', or one array per input name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-coverage", action="store_true", help="skip the node-coverage pass")
    return p


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit(2) itself
        raise _UsageError(message)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from edgeship.runtime.errors import ConfigError, EdgeshipError
    from edgeship.runtime.inputs import parse_input_fills, parse_input_shapes

    # Backends print to fd 1 from C++; keep the real stdout for the one JSON object.
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        parser = build_parser()
        parser.__class__ = _Parser
        try:
            args = parser.parse_args(argv)
            for name, value in (("--runs", args.runs), ("--warmup", args.warmup)):
                if value < 0 or (name == "--runs" and value < 1):
                    raise ConfigError(f"{name} must be positive, got {value}", f"pass {name} 1 or more")
            check_min_seconds(args.min_seconds)
            result = measure(
                args.model,
                backend=args.backend,
                threads=args.threads,
                warmup=args.warmup,
                runs=args.runs,
                min_seconds=args.min_seconds,
                input_shapes=parse_input_shapes(args.input_shape),
                data=args.data,
                precision=args.precision,
                seed=args.seed,
                coverage=not args.no_coverage,
                fills=parse_input_fills(args.input_value, args.input_range),
            )
            payload, code = result.to_json(), 0
        except _UsageError as exc:
            err = ConfigError(f"bad agent arguments: {exc}", "see python -m edgeship.runtime.bench --help")
            payload, code = _error_json(err), err.exit_code
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

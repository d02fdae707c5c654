"""How much does edgeship's measurement add?  Compare with OpenVINO's benchmark_app and a bare loop.

For each model (OpenVINO IR), with the same thread count and the latency hint:
  * benchmark_app  -api sync -hint none -nstreams 1 -nthreads T: its reported median
  * edgeship bench --backend openvino --threads T: p50 from the agent
  * a bare loop: compile, set inputs, time infer() with perf_counter_ns, median
Rounds are interleaved so drift on a shared machine hits all three alike.  The agent's own cost per
inference is measured directly too: the same timing loop around a call that does nothing.

Targets (issue 3): median within ±3 % of the native tool; agent overhead < 20 µs per inference.

    python benchmarks/harness_overhead.py [MODEL.xml ...] [--threads 1] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, print_table, write_results

BARE_LOOP = r"""
import statistics, sys, time
import numpy as np, openvino as ov
import json
model, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
shapes = json.loads(sys.argv[4])
core = ov.Core()
net = core.read_model(model)
net.reshape(shapes)
compiled = core.compile_model(net, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
req = compiled.create_infer_request()
rng = np.random.default_rng(0)
for port in compiled.inputs:
    shape = [d.get_length() for d in port.get_partial_shape()]
    data = rng.random(shape, dtype=np.float32).astype(port.get_element_type().to_dtype())
    req.set_tensor(port, ov.Tensor(data))
for _ in range(10):
    req.infer()
samples, end = [], time.perf_counter() + seconds
while time.perf_counter() < end or len(samples) < 100:
    t0 = time.perf_counter_ns(); req.infer(); samples.append(time.perf_counter_ns() - t0)
print(statistics.median(samples) / 1e6)
"""


def static_shapes(model: Path) -> dict[str, tuple[int, ...]]:
    """Every input's shape with a dynamic batch fixed to 1: all three tools run the same graph."""
    from edgeship.runtime import load
    from edgeship.runtime.inputs import resolve_shape

    return {spec.name: resolve_shape(spec) for spec in load(model, precision="fp32").inputs}


def benchmark_app_median(model: Path, threads: int, seconds: float,
                         shapes: dict[str, tuple[int, ...]]) -> float:
    exe = shutil.which("benchmark_app")
    if exe is None:
        raise SystemExit("benchmark_app not found: pip install openvino (it ships the tool)")
    out = subprocess.run(
        # benchmark_app only takes -nthreads with -hint none; one sync stream is what the
        # LATENCY hint gives edgeship's session, so the configurations match.
        [exe, "-m", str(model), "-d", "CPU", "-api", "sync", "-hint", "none", "-nstreams", "1",
         "-nthreads", str(threads), "-t", str(int(seconds)),
         "-shape", ",".join(f"{k}[{','.join(map(str, v))}]" for k, v in shapes.items())],
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"Median:\s+([\d.]+)\s+(ms|us)", out)
    if not match:
        raise SystemExit(f"could not read benchmark_app's median:\n{out[-2000:]}")
    return float(match.group(1)) / (1000 if match.group(2) == "us" else 1)


def bare_median(model: Path, threads: int, seconds: float, shapes: dict[str, tuple[int, ...]]) -> float:
    out = subprocess.run([sys.executable, "-c", BARE_LOOP, str(model), str(threads), str(seconds),
                          json.dumps({k: list(v) for k, v in shapes.items()})],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def edgeship_result(model: Path, threads: int, seconds: float,  # type: ignore[no-untyped-def]
                    shapes: dict[str, tuple[int, ...]]):
    from edgeship import benchmark

    return benchmark(model, backend="openvino", threads=threads, runs=100, min_seconds=seconds,
                     input_shapes=shapes)


def timer_overhead_us(n: int = 200_000) -> float:
    """The agent's timing loop around a call that does nothing: its cost per inference."""
    def noop() -> None:
        return None

    samples: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    while len(samples) < n:
        t0 = clock()
        noop()
        samples.append(clock() - t0)
    total = clock() - start
    return total / n / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path,
                        default=[ROOT / "examples" / "models" / "digits_cnn.xml"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rows, records = [], []
    for model in args.models:
        native, bare, ours = [], [], []
        precision = None
        shapes = static_shapes(model)
        for _ in range(args.rounds):
            native.append(benchmark_app_median(model, args.threads, args.seconds, shapes))
            bare.append(bare_median(model, args.threads, args.seconds, shapes))
            result = edgeship_result(model, args.threads, args.seconds, shapes)
            ours.append(result.latency_ms.p50)
            precision = result.backend.precision
        n, b, e = statistics.median(native), statistics.median(bare), statistics.median(ours)
        record = {
            "model": model.name, "threads": args.threads, "precision": precision,
            "benchmark_app_median_ms": n, "bare_loop_median_ms": b, "edgeship_p50_ms": e,
            "edgeship_vs_benchmark_app": e / n, "edgeship_vs_bare": e / b,
            "overhead_vs_bare_us": (e - b) * 1e3, "rounds": {"benchmark_app": native, "bare": bare,
                                                           "edgeship": ours},
        }
        records.append(record)
        rows.append([model.name, precision, n, b, e, f"{(e / n - 1) * 100:+.1f} %",
                     f"{(e - b) * 1e3:+.1f}"])
    loop_us = timer_overhead_us()
    print_table(["model", "precision", "benchmark_app ms", "bare loop ms", "edgeship p50 ms",
                 "vs benchmark_app", "vs bare (µs)"], rows)
    print(f"\nagent timing-loop cost per inference: {loop_us:.3f} µs (target < 20 µs)")
    write_results("harness_overhead", {"threads": args.threads, "seconds": args.seconds,
                                       "rounds": args.rounds, "models": records,
                                       "timing_loop_overhead_us": loop_us,
                                       "targets": {"within_pct_of_native": 3, "overhead_us": 20}})


if __name__ == "__main__":
    main()

"""Benchmark a model on an SSH device and check it against a latency budget.

    python examples/remote_bench.py pi@raspberrypi.local
    python examples/remote_bench.py edge-box examples/models/digits_cnn.tflite --max-latency-ms 5

The target is ``user@host[:port]`` or a Host alias from ~/.ssh/config; its host key must be in
known_hosts (or pass --accept-new-host-key).  edgeship copies the model and its measurement
agent to ~/.cache/edgeship/ on the device, runs it with the device's python3 (numpy and one
backend must be installed there) and prints the device's numbers.  Exit code 1 when the budget
is missed, 3 when the device cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import edgeship

HERE = Path(__file__).resolve().parent


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="user@host[:port] or an ~/.ssh/config alias")
    parser.add_argument("model", nargs="?", type=Path, default=HERE / "models" / "digits_cnn.onnx")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-latency-ms", type=float, default=None)
    parser.add_argument("--accept-new-host-key", action="store_true")
    args = parser.parse_args(argv)

    from edgeship.targets.ssh import SSHTarget

    try:
        with SSHTarget(args.target, accept_new_host_key=args.accept_new_host_key) as device:
            result = edgeship.benchmark(args.model, device, runs=args.runs, threads=args.threads)
        verdict = result.check(edgeship.Budget(max_latency_ms=args.max_latency_ms))
    except edgeship.EdgeshipError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    lat, host, backend = result.latency_ms, result.host, result.backend
    print(f"{result.model.name} on {args.target}: "
          f"{host.summary}, {backend.backend} {backend.version}")
    print(f"  latency p50 {lat.p50:.4g} ms, p99 {lat.p99:.4g} ms over {lat.runs} runs; "
          f"peak memory {result.memory.peak_rss_mb:.0f} MB; load {result.load_ms:.1f} ms")
    print(f"  {'within budget' if verdict.ok else 'OVER BUDGET'}: {verdict.summary()}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())

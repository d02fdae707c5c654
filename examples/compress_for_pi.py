"""Compress the bundled digits model for a Raspberry Pi 5 within budgets, and print the pick.

    python examples/compress_for_pi.py                      # measure here (labelled: host numbers)
    python examples/compress_for_pi.py --target pi@raspberrypi.local   # measure on the Pi

The budgets are the headline use: at most 20 ms (p50) and 150 MB of memory on the Pi, losing at
most one point of accuracy on the labelled test digits.  The output directory holds the picked
model with its manifest (preprocessing, labels, provenance, parity), every candidate's
benchmark JSON, report.html and summary.json.  Exit code 1 when no candidate fits.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import edgeship

HERE = Path(__file__).resolve().parent
MODEL = HERE / "models" / "digits_cnn.onnx"
DATA = HERE / "data" / "digits_test.npz"
BUDGET = edgeship.Budget(max_latency_ms=20, max_memory_mb=150, max_accuracy_drop=1.0)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="local", help="'local' or an SSH target / alias")
    parser.add_argument("-o", "--output", type=Path, default=Path("digits-for-pi5"))
    parser.add_argument("--force", action="store_true", help="replace an earlier output")
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    args = parser.parse_args(argv)

    try:
        result = edgeship.compress(MODEL, "raspberry-pi-5", target=args.target, data=DATA,
                                   budget=BUDGET, threads=args.threads, output=args.output,
                                   force=args.force)
    except edgeship.EdgeshipError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    print(result.measured_on["note"])
    if result.pick is None:
        print(result.no_fit_message())
        return 1
    pick, p = result.pick, result.budget.percentile
    assert pick.benchmark is not None and pick.evaluation is not None
    print(f"pick: {pick.name} ({' -> '.join(pick.recipe.labels())})")
    print(f"  runs on {pick.recipe.runs_on}, {pick.benchmark.model.size_bytes / 1e3:.1f} KB, "
          f"{p} {pick.benchmark.latency(p):.4g} ms, peak {pick.benchmark.memory.peak_rss_mb:.0f} MB, "
          f"accuracy {pick.evaluation.accuracy:.2f} % ({pick.evaluation.drop:+.2f} pt vs the original)")
    print(f"  model: {result.output / result.summary['artifact']}")
    print(f"  report: {result.output / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""inspect and bench on every real-model corpus model (tests/fixtures/corpus.py), as a user runs them.

For each model: `edgeship inspect --json` with the entry's --input-shape flags (precision, MACs),
`edgeship bench --json --threads 1` with all its input flags (p50, peak RSS, node coverage), and
`edgeship bench` with no input flags (what a user meets first: success, or the exit code and
the one-line error).  The models are fetched by tests/corpus/fetch.py (cached).

    python benchmarks/corpus.py [NAME ...] [--runs 50] [--min-seconds 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from _common import ROOT, print_table, write_results

sys.path.insert(0, str(ROOT))
from tests.fixtures.corpus import ENTRIES, corpus_model  # noqa: E402


def edgeship(*args: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([sys.executable, "-m", "edgeship.cli", *args], capture_output=True,
                          text=True, timeout=600)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    payload = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else {}
    return proc.returncode, payload, errors[-1] if errors else ""


def measure(name: str, runs: int, min_seconds: float) -> dict[str, Any]:
    entry, path = ENTRIES[name], str(corpus_model(name))
    timing = ["--runs", str(runs), "--warmup", "10", "--min-seconds", str(min_seconds),
              "--threads", "1"]
    code, info, error = edgeship("inspect", path, "--json", *entry.shape_flags)
    row: dict[str, Any] = {"model": name, "kinds": sorted(entry.kinds), "flags": list(entry.flags),
                           "inspect": {"exit_code": code, "error": error}}
    if code == 0:
        row["inspect"] |= {"precision": info["precision"]["kind"] if info["precision"] else None,
                           "macs": info["macs"], "macs_unknown": info["macs_unknown"],
                           "inputs": len(info["inputs"]),
                           "outputs": len(info["outputs"]), "backend": info["backend"]["backend"]}
    code, result, error = edgeship("bench", path, "--json", *timing, *entry.flags)
    row["bench"] = {"exit_code": code, "error": error}
    if code == 0:
        coverage = result["node_coverage"] or {}
        row["bench"] |= {"p50_ms": result["latency_ms"]["p50"], "runs": result["latency_ms"]["runs"],
                         "peak_rss_mb": result["memory"]["peak_rss_mb"],
                         "nodes": coverage.get("nodes"), "share_on_cpu": coverage.get("share_on_primary")}
    code, _, error = edgeship("bench", path, "--json", "--runs", "3", "--warmup", "0",
                              "--min-seconds", "0")
    row["bench_without_flags"] = {"exit_code": code, "error": error}
    return row


def _macs(inspected: dict[str, Any]) -> Any:
    """MMACs; '>=' where some nodes (control flow, LSTMs) were not counted; None if unknown."""
    if inspected.get("macs") is None:
        return None
    mmacs = round(inspected["macs"] / 1e6, 1)
    return f">={mmacs}" if inspected.get("macs_unknown") else mmacs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(ENTRIES))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    args = parser.parse_args()
    rows = [measure(n, args.runs, args.min_seconds) for n in args.names]
    print_table(
        ["model", "precision", "MMACs", "inspect", "bench p50 ms", "peak MB", "bench, no flags"],
        [[r["model"], r["inspect"].get("precision"), _macs(r["inspect"]),
          "ok" if r["inspect"]["exit_code"] == 0 else f"exit {r['inspect']['exit_code']}",
          r["bench"].get("p50_ms") if r["bench"]["exit_code"] == 0 else f"exit {r['bench']['exit_code']}",
          r["bench"].get("peak_rss_mb"),
          "ok" if r["bench_without_flags"]["exit_code"] == 0
          else f"exit {r['bench_without_flags']['exit_code']}"] for r in rows])
    write_results("corpus", {"runs": args.runs, "min_seconds": args.min_seconds, "threads": 1,
                             "models": rows})


if __name__ == "__main__":
    main()

"""The compress search in process vs on a local Ray cluster with 2 workers, and what a lab lease
costs per measurement.

    python benchmarks/scale_out.py [--case efficientnet] [--leases 30]

Each configuration runs in its own process (so CPU time and peak memory are its own):

- ``in-process``: ``edgeship.compress`` as today;
- ``ray-2``: ``ray.init(num_cpus=2)`` and ``compress(ray=True)``: every candidate's build and
  evaluation is a Ray task (1 CPU each), streamed back and measured in the driver.

Reported: wall time of the search, CPU time (driver; and the tasks' own CPU seconds), peak
memory of the driver and of each Ray worker, per-task wall/CPU, and the lab lease overhead
(``edgeship.lab.lease`` on a device resource: placement group create -> ready -> registry
acquire/release -> remove), empty-bodied, N times on a device left free for 1.5 s and N times
back to back.  Both searches skip the candidate cache, so
both build everything.  Results: benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import print_table, write_results  # noqa: E402


def _case(name: str, work: Path) -> Any:
    from benchmarks import compress as cb

    case = cb.CASES[name](work)
    if case is None:
        raise SystemExit(f"case {name} is not available here (see benchmarks/compress.py)")
    return case


def one(mode: str, case_name: str, runs: int, leases: int) -> dict[str, Any]:
    """Run one configuration in this process; print its JSON."""
    import edgeship

    work = Path(tempfile.mkdtemp(prefix="edgeship-scaleout-"))
    ray_tmp = Path(tempfile.mkdtemp(prefix="esray-"))
    try:
        case = _case(case_name, work)
        kwargs: dict[str, Any] = {}
        if mode == "ray-2":
            import ray

            os.environ["RAY_AUTH_MODE"] = "disabled"
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     _temp_dir=str(ray_tmp), _node_ip_address="127.0.0.1",
                     resources={"device:bench-lease": 1})
            kwargs["ray"] = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = edgeship.compress(case.model, str(case.device), data=case.data,
                                   train_data=case.train_data,
                                   budget=edgeship.Budget(max_accuracy_drop=case.max_accuracy_drop),
                                   threads=1, runs=runs, min_seconds=0.5, recipes=case.recipes,
                                   progress=False, cache=False, **kwargs)
        out: dict[str, Any] = {
            "mode": mode, "case": case.name, "wall_s": time.perf_counter() - wall0,
            "driver_cpu_s": time.process_time() - cpu0,
            "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "pick": result.pick.name if result.pick else None,
            "candidates": [{"name": c.name, "status": c.status(), **c.timings()}
                           for c in result.candidates],
            "load_average": os.getloadavg()}
        built = result.measured_on.get("built_on")
        if built:
            out["tasks"] = built["tasks"]
            out["workers"] = sorted({t["pid"] for t in built["tasks"]})
            out["task_cpu_s"] = sum(t["cpu_s"] for t in built["tasks"])
            per_worker: dict[int, float] = {}
            for t in built["tasks"]:
                per_worker[t["pid"]] = max(per_worker.get(t["pid"], 0.0), t["worker_peak_rss_mb"])
            out["worker_peak_rss_mb"] = per_worker
            out["lease"] = _leases(leases)
            import ray

            ray.shutdown()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _leases(n: int) -> dict[str, Any]:
    """Seconds per empty lease of one lab device: on a device left free for a while (what a
    measurement pays to lease), and back to back (the hand-over from one holder to the next:
    Ray re-tries a pending placement group about once a second)."""
    from edgeship import lab

    ray = lab._ray(None)
    ray.get(lab._registry(ray, create=True).register.remote(["bench-lease"], 0.0))

    def timed(pause: float) -> list[float]:
        times = []
        for _ in range(n):
            time.sleep(pause)
            t0 = time.perf_counter()
            with lab.lease(None, "bench-lease"):
                pass
            times.append(time.perf_counter() - t0)
        return times

    free, back = timed(1.5), timed(0.0)
    return {"n": n,
            "free_device": {"median_ms": 1e3 * statistics.median(free), "max_ms": 1e3 * max(free)},
            "back_to_back": {"median_ms": 1e3 * statistics.median(back), "max_ms": 1e3 * max(back)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", default="efficientnet")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--leases", type=int, default=15)
    ap.add_argument("--one", choices=("in-process", "ray-2"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.case, args.runs, args.leases)))
        return
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    found = {}
    for mode in ("in-process", "ray-2"):
        proc = subprocess.run([sys.executable, __file__, "--one", mode, "--case", args.case,
                               "--runs", str(args.runs), "--leases", str(args.leases)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
        found[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    a, b = found["in-process"], found["ray-2"]
    rows = [["in-process", a["wall_s"], a["driver_cpu_s"], None, a["driver_peak_rss_mb"], None,
             a["pick"]],
            ["ray (2 workers)", b["wall_s"], b["driver_cpu_s"], b["task_cpu_s"],
             b["driver_peak_rss_mb"], max(b["worker_peak_rss_mb"].values()), b["pick"]]]
    print_table(["search", "wall s", "driver CPU s", "task CPU s", "driver peak MB",
                 "worst worker peak MB", "pick"], rows)
    lease = b["lease"]
    free, back = lease["free_device"], lease["back_to_back"]
    print(f"\nlab lease (empty body, {lease['n']}x each): free device median "
          f"{free['median_ms']:.1f} ms (max {free['max_ms']:.1f}); back to back median "
          f"{back['median_ms']:.1f} ms (max {back['max_ms']:.1f})")
    tasks = b["tasks"]
    print_table(["candidate task", "wall s", "CPU s", "worker pid"],
                [[t["candidate"], t["wall_s"], t["cpu_s"], t["pid"]] for t in tasks])
    write_results("scale_out", {
        "note": "2 cores shared with other jobs (load average in each run): wall times are "
                "inflated and the 2-worker speed-up is bounded by the 2 cores",
        "runs": found})


if __name__ == "__main__":
    main()

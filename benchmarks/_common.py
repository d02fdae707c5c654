"""Helpers shared by the benchmark scripts: a results table on stdout and atomic JSON."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if n else c.ljust(w) for c, w in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    sys.path.insert(0, str(ROOT))
    from edgeship.core.io import write_atomic
    from edgeship.runtime.sysinfo import cpu_model

    payload = {
        "benchmark": name,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "arch": platform.machine(), "python": platform.python_version()},
        **payload,
    }
    path = write_atomic(RESULTS / f"{name}.json", json.dumps(payload, indent=2))
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path

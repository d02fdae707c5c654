"""Typed results at the JSON edge: files written before the results were typed read back and
render; one verdict form; the report marks the Pareto front summary.json lists.

The two fixture files under tests/fixtures/results/ were written by edgeship as it was before
the results were typed (``edgeship bench -o`` on a two-node linear model, and ``edgeship
compress`` of the bundled digits CNN with three recipes), so they are what users have on disk.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from edgeship.budget import Check, Verdict
from edgeship.core.errors import ConfigError
from edgeship.pareto import pareto_front
from edgeship.report_plots import fmt
from edgeship.reporting import render_report
from edgeship.runtime.results import BenchmarkResult, HostFacts, NodeCoverage, ThermalState, Zone

FIXTURES = Path(__file__).parent / "fixtures" / "results"
OLD_BENCH = FIXTURES / "bench-before-typed.json"
OLD_SUMMARY = FIXTURES / "summary-before-typed.json"


def old(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def front_marks(html: str) -> dict[int, bool]:
    """Row index -> whether its status cell carries the front badge."""
    cells = re.findall(r'data-row="(\d+)" data-key="status">(.*?)</td>', html)
    return {int(i): 'class="badge front"' in cell for i, cell in cells}


def test_a_result_written_before_typed_results_reads_back_unchanged() -> None:
    payload = old(OLD_BENCH)
    payload.pop("verdict")
    result = BenchmarkResult.from_dict(payload)
    assert isinstance(result.host, HostFacts) and isinstance(result.thermal, ThermalState)
    assert result.node_coverage == NodeCoverage(nodes=2, by_device={"CPUExecutionProvider": 2},
                                                share_on_primary=1.0)
    again = result.to_dict()
    # the only difference: OpenVINO's per-precision layer count is now a field (None here)
    assert again.pop("node_coverage") == {**payload.pop("node_coverage"), "runtime_precisions": None}
    assert again == payload


def test_an_old_bench_json_renders_its_numbers_and_verdict() -> None:
    payload = old(OLD_BENCH)
    html = render_report([OLD_BENCH])
    assert f'data-value="{payload["latency_ms"]["p50"]!r}"' in html
    assert f'data-value="{payload["memory"]["peak_rss_mb"]!r}"' in html
    assert 'data-key="budget_memory" data-ok="true"' in html
    assert 'data-key="budget_latency" data-ok="true"' in html


def test_the_report_marks_the_front_summary_json_lists() -> None:
    summary = old(OLD_SUMMARY)
    # int8-dynamic-onnx is slower than fp32-onnx at the same accuracy, but smaller: on the
    # four-way front, off a latency-accuracy one
    assert summary["pareto_front"] == ["fp32-onnx", "int8-dynamic-onnx"]
    names = [c["name"] for c in summary["candidates"]]
    marks = front_marks(render_report([OLD_SUMMARY]))
    assert {names[i] for i, on in marks.items() if on} == set(summary["pareto_front"])


def test_the_front_drawn_is_the_summarys_not_recomputed(tmp_path: Path) -> None:
    summary = old(OLD_SUMMARY)
    summary["pareto_front"] = ["int8-dynamic-onnx"]  # whatever the summary says, the page says
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    html = render_report([path])
    names = [c["name"] for c in summary["candidates"]]
    assert {names[i] for i, on in front_marks(html).items() if on} == {"int8-dynamic-onnx"}
    assert html.count('r="6" ') == 1  # one bold dot in the plot: the summary's front


def test_loose_candidate_files_get_compress_own_front_rule(tmp_path: Path) -> None:
    summary = old(OLD_SUMMARY)
    paths = []
    for i, cand in enumerate(summary["candidates"]):
        path = tmp_path / f"c{i}.json"
        path.write_text(json.dumps({"schema": "edgeship.candidate/1", **cand}))
        paths.append(path)
    marks = front_marks(render_report(paths))
    names = [c["name"] for c in summary["candidates"]]
    assert {names[i] for i, on in marks.items() if on} == set(summary["pareto_front"])


def test_pareto_front_keeps_ties_and_drops_the_dominated() -> None:
    points = [(1.0, 3.0), (2.0, 2.0), (2.0, 3.0), (1.0, 3.0), (3.0, 1.0)]
    assert pareto_front(points, lambda p: p) == [(1.0, 3.0), (2.0, 2.0), (1.0, 3.0), (3.0, 1.0)]
    assert pareto_front([], lambda p: p) == []


def test_a_verdict_reads_back_as_it_was_written() -> None:
    verdict = Verdict([Check("latency", 10.0, 12.5, "ms", "p50"),
                       Check("snr", 20.0, 25.0, "dB", "output SNR", higher_is_better=True),
                       Check("memory", 100.0, None, "MB", "peak RSS")])
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["ok"] is False and [c["ok"] for c in data["checks"]] == [False, True, False]
    assert Verdict.from_dict(data) == verdict


def test_a_floor_keeps_its_direction_through_json() -> None:
    data = {"ok": True, "checks": [{"name": "snr", "limit": 20.0, "measured": 25.0, "unit": "dB",
                                    "detail": "", "ok": True}]}
    (check,) = Verdict.from_dict(data).checks
    assert check.higher_is_better and check.ok


@pytest.mark.parametrize("path, value, named", [
    (("latency_ms", "p50"), float("nan"), "latency_ms.p50: must be a finite number"),
    (("host", "cpu_count"), "many", "host.cpu_count"),
    (("thermal", "before"), {"cpu": {"celsius": "hot"}}, "thermal.before.cpu.celsius"),
    (("backend", "version"), None, "backend.version"),
    (("memory", "peak_rss_mb"), "a lot", "memory.peak_rss_mb"),
])
def test_a_wrong_field_is_one_config_error_naming_it(path: tuple[str, str], value: Any,
                                                    named: str) -> None:
    from edgeship.result_json import read_bench_json

    payload = copy.deepcopy(old(OLD_BENCH))
    payload[path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=re.escape(named)):
        read_bench_json(payload, "r.json", "re-run edgeship bench")


def test_an_old_summary_renders_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = subprocess.run([sys.executable, "-m", "edgeship.cli", "report", str(OLD_SUMMARY),
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    pick = next(c for c in old(OLD_SUMMARY)["candidates"] if c["name"] == "fp32-onnx")
    assert f'data-value="{pick["benchmark"]["latency_ms"]["p50"]!r}"' in html
    assert fmt(pick["benchmark"]["memory"]["peak_rss_mb"]) in html


def test_the_result_types_import_only_the_standard_library() -> None:
    """The agent fills them on the device, where only the runtime is copied."""
    import ast

    import edgeship.runtime.results as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_thermal_state_names_the_hottest_zone() -> None:
    state = ThermalState(before={"cpu": Zone(51.0, 85.0), "gpu": Zone(48.5)},
                         after={"cpu": Zone(None)})
    assert state.hottest("before") == 51.0 and state.hottest("after") is None


def test_host_facts_has_a_field_for_every_fact_sysinfo_reads() -> None:
    """sysinfo stays a plain mapping (the probe ships it alone); HostFacts must type all of it."""
    from dataclasses import fields

    from edgeship.runtime.sysinfo import host_facts

    facts = host_facts()
    assert [f.name for f in fields(HostFacts)] == [*facts, "wall_seconds"]
    assert HostFacts.from_dict(facts).to_dict() == {**facts, "wall_seconds": None}

"""The measurement agent follows DESIGN.md's protocol and prints one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edgeship import Budget, benchmark
from edgeship.core.errors import ConfigError, ModelError
from edgeship.runtime.bench import SCHEMA, BenchmarkResult, LatencyStats
from edgeship.runtime.results import InputFed

from tests.fixtures.cli import run_cli_process


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, module="edgeship.runtime.bench", timeout=120)


def test_agent_prints_exactly_one_json_object(linear_onnx: Path) -> None:
    proc = agent(str(linear_onnx), "--runs", "30", "--min-seconds", "0", "--warmup", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["schema"] == SCHEMA


def test_agent_records_the_protocol_fields(linear_onnx: Path) -> None:
    proc = agent(str(linear_onnx), "--runs", "50", "--min-seconds", "0.2", "--threads", "1")
    result = BenchmarkResult.from_json(proc.stdout)
    lat = result.latency_ms
    assert lat.runs >= 50
    assert result.config["timed_seconds"] >= 0.2
    assert lat.min <= lat.p50 <= lat.p90 <= lat.p99 <= lat.max
    assert result.config["warmup_runs"] >= 10
    assert result.load_ms > 0 and result.first_inference_ms > 0
    assert result.memory.source == "VmHWM"
    assert result.memory.peak_rss_mb >= result.memory.rss_before_load_mb > 0
    assert result.backend.backend == "onnxruntime"
    assert result.backend.threads == 1
    coverage = result.node_coverage
    assert coverage is not None
    # Counted after graph optimisation (MatMul+Add fuse), so fewer nodes than the file has.
    assert list(coverage.by_device) == ["CPUExecutionProvider"]
    assert 1 <= coverage.nodes <= 3 and coverage.share_on_primary == 1.0
    assert result.model.size_bytes == linear_onnx.stat().st_size
    assert result.host.machine and result.host.python == ".".join(map(str, sys.version_info[:3]))
    assert result.inputs == [InputFed("x", [1, 16], "float32", "random(seed=0)")]


def test_statistics_are_computed_from_the_samples(linear_onnx: Path) -> None:
    proc = agent(str(linear_onnx), "--runs", "40", "--min-seconds", "0")
    result = BenchmarkResult.from_json(proc.stdout)
    samples = np.array(result.samples_ms)
    assert len(samples) == result.latency_ms.runs
    assert result.latency_ms.p50 == pytest.approx(float(np.percentile(samples, 50)))
    assert result.latency_ms.p99 == pytest.approx(float(np.percentile(samples, 99)))
    assert result.latency_ms.mean == pytest.approx(float(samples.mean()))


def test_latency_stats_interpolate_like_numpy() -> None:
    samples_ns = [5_000_000, 1_000_000, 3_000_000, 2_000_000, 4_000_000]
    stats = LatencyStats.from_ns(samples_ns)
    assert (stats.min, stats.p50, stats.max) == (1.0, 3.0, 5.0)
    assert stats.p90 == pytest.approx(np.percentile([1, 2, 3, 4, 5], 90))


def test_agent_uses_user_samples(linear_onnx: Path, tmp_path: Path) -> None:
    data = tmp_path / "samples.npz"
    np.savez(data, x=np.ones((4, 16), np.float32))
    proc = agent(str(linear_onnx), "--runs", "5", "--min-seconds", "0", "--data", str(data))
    result = BenchmarkResult.from_json(proc.stdout)
    assert result.inputs[0].source == "samples:samples.npz"


def test_agent_errors_are_json_with_the_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model at all")
    proc = agent(str(bad))
    assert proc.returncode == 2
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "ModelError"
    assert "cannot load" in error["message"]
    assert proc.stderr.strip().splitlines()[-1].startswith("edgeship.runtime.bench: error:")


def test_agent_rejects_bad_arguments_with_usage_exit(linear_onnx: Path) -> None:
    proc = agent(str(linear_onnx), "--runs", "zero")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["type"] == "ConfigError"
    proc = agent(str(linear_onnx), "--runs", "0")
    assert proc.returncode == 2


def test_benchmark_api_runs_a_fresh_process(linear_onnx: Path) -> None:
    result = benchmark(linear_onnx, runs=20, min_seconds=0, warmup=1)
    assert result.target["kind"] == "LocalTarget"
    assert result.latency_ms.runs >= 20
    # Memory is this model's alone: the agent is a fresh process, far smaller than pytest's.
    assert result.memory.peak_rss_mb > 0


def test_benchmark_api_reraises_agent_errors_as_the_same_class(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="cannot load"):
        benchmark(bad, runs=1)


def test_benchmark_api_passes_agent_config_errors_through(linear_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="threads must be at least 1"):
        benchmark(linear_onnx, runs=1, threads=0, extra_args=["--threads", "0"])


def test_check_against_a_budget(linear_onnx: Path) -> None:
    result = benchmark(linear_onnx, runs=10, min_seconds=0, warmup=1)
    generous = result.check(Budget(max_latency_ms=10_000, max_memory_mb=100_000, max_size_mb=10))
    assert generous.ok and len(generous.checks) == 3
    strict = result.check(Budget(max_latency_ms=result.latency_ms.p50 / 2))
    assert not strict.ok
    assert strict.failed[0].name == "latency"
    assert strict.failed[0].measured == result.latency_ms.p50


def test_percentile_budget_uses_that_percentile(linear_onnx: Path) -> None:
    result = benchmark(linear_onnx, runs=30, min_seconds=0, warmup=1)
    check = result.check(Budget(max_latency_ms=1000, percentile="99")).checks[0]
    assert check.measured == result.latency_ms.p99 and check.detail == "p99"

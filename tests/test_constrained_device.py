"""Benchmarks on constrained devices: a board's memory and CPU limits (cgroups), and a long,
lossy link (delay proxy + nftables drops), each a real sshd in its own network namespace."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import edgeship
import pytest
from edgeship.targets.ssh import SSHTarget

from tests.fixtures.cli import run_cli_process
from tests.fixtures.netdevice import ConstrainedDevice
from tests.fixtures.onnx_graphs import linear_model

# a device that stops answering fails the test in minutes, not at the suite's 900 s default
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(180)]

Devices = Callable[..., ConstrainedDevice]


def cli(device: ConstrainedDevice, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The edgeship CLI as the device's client (HOME holds its ~/.ssh/config alias)."""
    return run_cli_process(*args, env=device.env(), timeout=timeout)


@pytest.fixture(scope="module")
def matmul_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64x1024 @ 1024x1024: a few ms of CPU per inference, far more than the agent's overhead."""
    return linear_model(tmp_path_factory.mktemp("cpu") / "matmul.onnx", batch=64,
                        features=1024, classes=1024)


@pytest.fixture(scope="module")
def huge_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 160 MB weight matrix: more than a 128 MB device holds once loaded."""
    return linear_model(tmp_path_factory.mktemp("huge") / "huge.onnx", batch=1, features=8,
                        classes=5_000_000)


def bench_on(device: ConstrainedDevice, model: Path, monkeypatch: pytest.MonkeyPatch,
             **options: object) -> edgeship.BenchmarkResult:
    monkeypatch.setenv("HOME", str(device.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with SSHTarget(device.alias) as target:
        return edgeship.benchmark(model, target, **options)  # type: ignore[arg-type]


def test_pi_zero_profile_sets_the_device_memory_and_cores(constrained_devices: Devices) -> None:
    zero = edgeship.load_profile("raspberry-pi-zero-2w")
    device = constrained_devices(profile="raspberry-pi-zero-2w")
    assert device.memory_mb == zero.memory_mb == 512
    assert device.cgroup.version in (1, 2)
    limit = {1: "memory.limit_in_bytes", 2: "memory.max"}[device.cgroup.version]
    assert any((d / limit).exists() and int((d / limit).read_text()) == 512 << 20
               for d in device.cgroup.dirs)


def test_cpu_quota_of_the_device_shows_in_its_latency(
    constrained_devices: Devices, matmul_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model, one thread, on a Pi Zero-sized device with the host's cores and on one
    with a tenth of a core: the kernel throttles the second, and its runs stall for it.

    A tenth (not a quarter) so the quota binds even when other work on a busy 2-core CI machine
    leaves the agent only a fraction of a core anyway."""
    full = constrained_devices(profile="raspberry-pi-zero-2w")
    tenth = constrained_devices(profile="raspberry-pi-zero-2w", cpus=0.1, alias="edge-tenth")
    options = dict(threads=1, warmup=3, runs=40, min_seconds=0.5)
    fast = bench_on(full, matmul_onnx, monkeypatch, **options)
    throttled_before = tenth.cgroup.cpu_throttled()
    slow = bench_on(tenth, matmul_onnx, monkeypatch, **options)

    # the timed runs alone span >= 0.5 s = 5 quota periods of 100 ms
    assert tenth.cgroup.cpu_throttled() - throttled_before >= 3
    # 10 % of a core stretches the mean ~10x over the CPU time of a run (fast.p50 at most)
    assert slow.latency_ms.mean > 2 * fast.latency_ms.p50, (slow.latency_ms, fast.latency_ms)
    for result, device in ((fast, full), (slow, tenth)):
        assert result.backend.backend == "onnxruntime"
        assert result.target["kind"] == "SSHTarget"
        assert result.memory.peak_rss_mb < device.memory_mb


def test_model_bigger_than_device_memory_fails_as_out_of_memory(
    constrained_devices: Devices, huge_onnx: Path
) -> None:
    device = constrained_devices(profile="raspberry-pi-zero-2w", memory_mb=128,
                                 alias="edge-128mb")
    kills_before = device.cgroup.oom_kills()

    proc = cli(device, "bench", str(huge_onnx), "--target", device.alias, "--runs", "1",
               "--warmup", "0", "--min-seconds", "0")

    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    error = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(error) == 1, proc.stderr
    assert "out of memory" in error[0] and "Fix:" in error[0], error[0]
    assert device.cgroup.oom_kills() > kills_before  # the kernel really killed it
    assert device.temp_files() == []
    assert device.agents() == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_deploy_and_bench_complete_over_300ms_and_5_percent_loss(
    constrained_devices: Devices, fixed_linear_onnx: Path
) -> None:
    """A Pi Zero at the end of a long, lossy 20 Mbit/s link (300 ms added round trip)."""
    device = constrained_devices(profile="raspberry-pi-zero-2w", delay_ms=300, loss_percent=5,
                                 rate_mbit=20, alias="edge-far")

    deployed = cli(device, "deploy", str(fixed_linear_onnx), "--target", device.alias, "--json")
    assert deployed.returncode == 0, deployed.stderr
    report = json.loads(deployed.stdout)
    assert report["bytes_sent"] > 0

    benched = cli(device, "bench", str(fixed_linear_onnx), "--target", device.alias, "--runs",
                  "5", "--warmup", "1", "--min-seconds", "0", "--json")
    assert benched.returncode == 0, benched.stderr
    result = json.loads(benched.stdout)
    assert result["latency_ms"]["runs"] >= 5
    assert result["verdict"]["ok"] is True
    # the link really was long and lossy while this happened
    assert device.proxy is not None or device.shaping.netem_delay
    if device.proxy is not None:
        assert device.proxy.connections >= 2
    assert device.dropped_packets() > 0
    shaped = subprocess.run(["tc", "-s", "qdisc", "show", "dev", device.ns.host_if],
                            capture_output=True, text=True, check=True).stdout
    assert "tbf" in shaped and "rate 20Mbit" in shaped, shaped
    assert device.temp_files() == []

"""Remote benchmarking against a real sshd: API and CLI, the hash cache on re-runs, fleets,
and the proof that a remote measurement agrees with a local one on the same machine."""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path

import edgeship
import pytest
from edgeship.bench import benchmark
from edgeship.fleet import bench_fleet
from edgeship.targets.ssh import SSHTarget

from tests.fixtures.cli import run_cli_process
from tests.fixtures.sshd import PlainDevice, free_port

# a device that stops answering fails the test in minutes, not at the suite's 900 s default
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(180)]
QUICK = {"runs": 20, "warmup": 2, "min_seconds": 0.0}


def cli(device: PlainDevice, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, env=device.env(), columns=200, timeout=timeout)


def test_remote_bench_measures_on_the_device_from_its_cache(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    result = benchmark(bundled_onnx, ssh_home.alias, **QUICK)
    assert result.target["name"] == ssh_home.alias
    assert result.target["kind"] == "SSHTarget"
    assert result.model.path.startswith(str(ssh_home.user.cache))
    assert result.model.name == bundled_onnx.name
    assert result.latency_ms.runs >= 20 and result.latency_ms.p50 > 0
    assert result.backend.backend == "onnxruntime"
    assert ssh_home.temp_files() == []


def test_warm_rerun_sends_nothing_over_the_same_connection(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    logins = ssh_home.server.log_text().count("Accepted publickey")
    with SSHTarget(ssh_home.spec) as target:
        benchmark(bundled_onnx, target, **QUICK)
        benchmark(bundled_onnx, target, **QUICK)
        assert target.last_deploy.bytes_sent == 0
        assert target.last_deploy.files_sent == []
    assert ssh_home.server.log_text().count("Accepted publickey") == logins + 1


def test_bench_cli_prints_the_table_and_the_device_facts(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    proc = cli(ssh_home, "bench", str(bundled_onnx), "--target", ssh_home.alias, "--runs", "20",
               "--min-seconds", "0", "--max-latency-ms", "1000")
    assert proc.returncode == 0, proc.stderr
    assert "latency p50" in proc.stderr
    assert f"device {ssh_home.alias}" in proc.stderr and "python" in proc.stderr
    assert "✅" in proc.stderr


def test_bench_cli_json_and_budget_miss_exit_1(ssh_home: PlainDevice, bundled_onnx: Path) -> None:
    proc = cli(ssh_home, "bench", str(bundled_onnx), "--target", ssh_home.spec, "--runs", "20",
               "--min-seconds", "0", "--max-latency-ms", "0.000001", "--json")
    assert proc.returncode == 1, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["target"]["name"] == ssh_home.spec
    assert payload["verdict"]["ok"] is False
    assert payload["model"]["path"].startswith(str(ssh_home.user.cache))


def test_fleet_reports_each_host_and_a_failing_one_does_not_stop_the_others(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    dead = f"{ssh_home.user.name}@127.0.0.1:{free_port()}"
    fleet = bench_fleet(bundled_onnx, [ssh_home.alias, dead, ssh_home.spec],
                        budget=edgeship.Budget(max_latency_ms=1000), **QUICK)
    assert [h.target for h in fleet.hosts] == [ssh_home.alias, dead, ssh_home.spec]
    ok, failed, ok2 = fleet.hosts
    assert ok.ok and ok2.ok
    assert ok.value[0].latency_ms.p50 > 0 and ok.value[1].ok
    assert failed.exit_code == 3 and failed.error_type == "ConnectionFailed"
    assert "refused" in failed.error
    assert fleet.exit_code == 3


def test_fleet_cli_with_hosts_file_prints_combined_json(
    ssh_home: PlainDevice, bundled_onnx: Path, tmp_path: Path
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text(f"# two names for one device\n{ssh_home.alias}\n{ssh_home.spec}\n")
    out = tmp_path / "fleet.json"
    proc = cli(ssh_home, "bench", str(bundled_onnx), "--hosts-file", str(hosts), "--runs", "20",
               "--min-seconds", "0", "--max-latency-ms", "1000", "--json", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload == json.loads(out.read_text())
    assert payload["schema"] == "edgeship.fleet/1" and payload["exit_code"] == 0
    assert [h["target"] for h in payload["hosts"]] == [ssh_home.alias, ssh_home.spec]
    for host in payload["hosts"]:
        assert host["ok"] and host["verdict"]["ok"]
        assert host["result"]["target"]["deploy"]["model_path"].startswith(
            str(ssh_home.user.cache))


def test_fleet_cli_exit_code_is_the_worst_hosts(ssh_home: PlainDevice, bundled_onnx: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    proc = cli(ssh_home, "bench", str(bundled_onnx), "--target", ssh_home.alias, "--target", dead,
               "--runs", "20", "--min-seconds", "0")
    assert proc.returncode == 3, proc.stderr
    assert "1 of 2 devices ok" in proc.stderr and "refused" in proc.stderr


@pytest.mark.slow
def test_remote_p50_agrees_with_local_within_ten_percent(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    """Same machine, same threads, same agent: the SSH path must not change the measurement.
    Local and remote runs alternate (the machine is shared), and the best p50 of each side is
    compared, which is what survives other load on the machine."""
    settings = {"runs": 300, "warmup": 20, "min_seconds": 0.3, "threads": 1}
    local, remote = [], []
    with SSHTarget(ssh_home.spec) as target:
        for i in range(5):
            pair = [("local", "local"), ("remote", target)]
            for side, where in pair if i % 2 == 0 else reversed(pair):
                p50 = benchmark(bundled_onnx, where, **settings).latency_ms.p50  # type: ignore[arg-type]
                (local if side == "local" else remote).append(p50)
    best_local, best_remote = min(local), min(remote)
    assert abs(best_remote - best_local) / best_local <= 0.10, (local, remote)
    # and the typical runs agree too, loosely: a sanity bound against a broken remote path
    assert statistics.median(remote) <= 2 * statistics.median(local), (local, remote)

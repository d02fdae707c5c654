"""The emulated Raspberry Pi 4 (Debian arm64 under qemu-user, tests/fixtures/arm64.py): probe,
provisioning of aarch64 wheels, deploy and bench on a foreign architecture.

Its python3 has nothing but the standard library: no numpy, no backend, no python3-venv, no
internet.  Inference there is ~40x slower than native, so the model is tiny and runs are few.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import edgeship
import pytest
from edgeship.profiles import match_profile
from edgeship.provisioning import ProvisionResult
from edgeship.targets.ssh import SSHTarget

from tests.fixtures.arm64 import Arm64Board
from tests.fixtures.cli import run_cli_process

pytestmark = [pytest.mark.slow, pytest.mark.arm64, pytest.mark.ssh]


def cli(board: Arm64Board, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, env=board.env(), timeout=timeout)


@pytest.fixture
def as_client(arm64_board: Arm64Board, monkeypatch: pytest.MonkeyPatch) -> Iterator[Arm64Board]:
    """This process acts as the board's client (its HOME holds the ssh config and known_hosts)."""
    monkeypatch.setenv("HOME", str(arm64_board.home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    yield arm64_board


@pytest.fixture(scope="module")
def provisioned(arm64_board: Arm64Board) -> ProvisionResult:
    """numpy + onnxruntime provisioned once over the API, as ``edgeship provision`` does."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(arm64_board.home))
        with SSHTarget(arm64_board.alias) as target:
            return edgeship.provision(target, ["onnxruntime"])


def test_probe_reports_aarch64_and_matches_raspberry_pi_4(as_client: Arm64Board) -> None:
    with SSHTarget(as_client.alias) as target:
        facts = target.probe()
    assert facts.machine == "aarch64"
    assert "0x41:0xd08" in facts.cpu_parts  # Cortex-A72, from the bind-mounted cpuinfo
    assert facts.backends == {}  # the board's own python3 has none
    profile, score, reasons = match_profile(facts)
    assert profile is not None and profile.name == "raspberry-pi-4", reasons


def test_bench_without_numpy_on_the_board_says_what_to_install(
    arm64_board: Arm64Board, fixed_linear_onnx: Path
) -> None:
    proc = cli(arm64_board, "bench", str(fixed_linear_onnx), "--target", arm64_board.alias,
               "--runs", "1")
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "numpy" in proc.stderr and "Fix:" in proc.stderr


def test_provision_installs_aarch64_wheels_chosen_by_the_boards_glibc(
    provisioned: ProvisionResult,
) -> None:
    assert provisioned.machine == "aarch64"
    assert provisioned.python.endswith("/.cache/edgeship/venv/bin/python")
    # bookworm's glibc 2.36: every manylinux tag up to 2_36, none newer
    assert provisioned.platforms[0] == "manylinux_2_36_aarch64"
    assert "manylinux2014_aarch64" in provisioned.platforms
    binary = [w for w in provisioned.wheels if not w.endswith("-none-any.whl")]
    assert {w.split("-")[0] for w in binary} >= {"numpy", "onnxruntime"}
    assert all("aarch64" in w for w in binary), binary
    assert set(provisioned.packages) == {"numpy", "onnxruntime"}
    assert provisioned.uploaded and provisioned.bytes_sent > 10_000_000


def test_provisioning_again_changes_nothing(
    provisioned: ProvisionResult, as_client: Arm64Board
) -> None:
    proc = cli(as_client, "provision", "--target", as_client.alias, "--json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["installed"] == [] and again["uploaded"] == [] and again["bytes_sent"] == 0
    assert again["packages"] == provisioned.packages
    assert "already had" in proc.stderr


def test_deploy_and_bench_with_provision_run_on_aarch64(
    provisioned: ProvisionResult, arm64_board: Arm64Board, fixed_linear_onnx: Path
) -> None:
    deployed = cli(arm64_board, "deploy", str(fixed_linear_onnx), "--target", arm64_board.alias,
                   "--provision")
    assert deployed.returncode == 0, deployed.stderr
    assert provisioned.python in deployed.stderr  # "run it:" names the venv's python

    benched = cli(arm64_board, "bench", str(fixed_linear_onnx), "--target", arm64_board.alias,
                  "--provision", "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--json")
    assert benched.returncode == 0, benched.stderr
    result = json.loads(benched.stdout)
    assert result["host"]["machine"] == "aarch64"
    assert result["backend"]["backend"] == "onnxruntime"
    assert result["backend"]["version"] == provisioned.packages["onnxruntime"]
    assert result["latency_ms"]["runs"] >= 3
    assert arm64_board.temp_files() == []


def test_bench_after_provisioning_uses_the_venv_without_being_told(
    provisioned: ProvisionResult, arm64_board: Arm64Board, fixed_linear_onnx: Path
) -> None:
    benched = cli(arm64_board, "bench", str(fixed_linear_onnx), "--target", arm64_board.alias,
                  "--runs", "3", "--warmup", "1", "--min-seconds", "0", "--json")
    assert benched.returncode == 0, benched.stderr
    result = json.loads(benched.stdout)
    assert result["backend"]["version"] == provisioned.packages["onnxruntime"]
    assert result["host"]["machine"] == "aarch64"

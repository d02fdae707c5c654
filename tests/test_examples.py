"""The examples run as users run them: as scripts, in a fresh process, on real models/devices.
(examples/edge_app has its own test, tests/test_edge_app.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.sshd import PlainDevice, free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def run_example(name: str, *args: str, env: dict[str, str] | None = None,
                timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.mark.slow
def test_compress_for_pi_prints_the_pick_and_writes_it(tmp_path: Path) -> None:
    out = tmp_path / "pi5"
    proc = run_example("compress_for_pi.py", "-o", str(out), "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    pick = next(c for c in summary["candidates"] if c["name"] == summary["pick"])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("measured on THIS HOST") and "Raspberry Pi 5" in lines[0]
    assert lines[1].startswith(f"pick: {pick['name']} (")
    assert f"{pick['benchmark']['latency_ms']['p50']:.4g} ms" in lines[2]
    assert summary["device"] == "raspberry-pi-5"
    assert summary["budget"] == {"max_latency_ms": 20.0, "max_memory_mb": 150.0, "max_size_mb": None,
                                 "max_accuracy_drop": 1.0, "min_snr_db": None,
                                 "max_rel_error": None, "min_cosine": None, "percentile": "p50"}
    assert pick["verdict"]["ok"] and pick["accuracy_drop"] <= 1.0
    assert (out / summary["artifact"]).is_file() and str(out / summary["artifact"]) in proc.stdout
    # no --train-data: half of the 360 test digits calibrate/train, the other half evaluates
    assert summary["data"]["evaluation_samples"] == 180 and summary["data"]["training_samples"] == 180


@pytest.mark.ssh
@pytest.mark.timeout(180)  # a device that stops answering fails in minutes
def test_remote_bench_measures_the_model_on_the_ssh_device(plain_device: PlainDevice) -> None:
    proc = run_example("remote_bench.py", plain_device.alias, "--runs", "20",
                       "--max-latency-ms", "1000", env=plain_device.env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    head, latency, verdict = proc.stdout.splitlines()
    assert head.startswith(f"digits_cnn.onnx on {plain_device.alias}: ") and "onnxruntime" in head
    assert "latency p50" in latency and "peak memory" in latency
    assert verdict == "  within budget: all budgets met"
    assert any(plain_device.user.cache.rglob("digits_cnn.onnx")), "the model ran from the device cache"
    assert plain_device.temp_files() == []


@pytest.mark.ssh
@pytest.mark.timeout(180)
def test_remote_bench_exits_1_over_budget_and_3_when_unreachable(plain_device: PlainDevice) -> None:
    over = run_example("remote_bench.py", plain_device.alias, "--runs", "20",
                       "--max-latency-ms", "0.000001", env=plain_device.env(), timeout=300)
    assert over.returncode == 1, over.stderr
    assert over.stdout.splitlines()[-1].startswith("  OVER BUDGET: latency")
    closed = f"{plain_device.user.name}@127.0.0.1:{free_port()}"
    gone = run_example("remote_bench.py", closed, env=plain_device.env(), timeout=300)
    assert gone.returncode == 3
    assert gone.stdout == "" and gone.stderr.startswith("error: ") and len(gone.stderr.splitlines()) == 1

"""A corpus model measured on an SSH device with real input values: --data is copied there for
the run and removed after it, and the node-coverage pass leaves no profile folder behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.cli import run_cli_process
from tests.fixtures.corpus import corpus_model
from tests.fixtures.sshd import PlainDevice

# a device that stops answering fails the test in minutes, not at the suite's 900 s default
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(180)]


def leftovers(device: PlainDevice) -> list[str]:
    """What the agent could leave on the device: uploaded data, temporaries, profile folders."""
    cached = [p.name for p in device.files() if ".edgeship-data-" in p.name]
    profiles = device.server.in_namespace(
        ["find", "/tmp", "/var/tmp", "-maxdepth", "1", "-name", "edgeship-prof-*",
         "-user", device.user.name])
    return cached + [str(p) for p in device.temp_files()] + profiles.split()


def test_remote_bench_takes_per_name_data_and_value_flags_and_cleans_up(
    ssh_home: PlainDevice, tmp_path: Path
) -> None:
    data = tmp_path / "chunks.npz"
    np.savez(data, input=np.zeros((2, 1, 512), np.float32), sr=np.array(16000, np.int64))
    proc = run_cli_process(
        "bench", corpus_model("silero_vad_v6"), "--target", ssh_home.alias, "--json", "--runs", "5",
        "--warmup", "1", "--min-seconds", "0", "--data", data, "--input-shape", "state=2,1,128",
        "--input-value", "state=0", env=ssh_home.env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    sources = {i["name"]: i["source"] for i in result["inputs"]}
    assert sources["sr"].startswith("samples:.edgeship-data-")
    assert sources["state"] == "--input-value state=0"
    assert result["node_coverage"]["nodes"] > 0
    assert leftovers(ssh_home) == []

"""Devices that hang, links that die silently, interrupted fleets and provisioning, and what a
run leaves on a device: against real sshd devices (tests/fixtures/sshd.py).

Keepalive settings are shortened in the client's ssh config (ServerAliveInterval 1,
ServerAliveCountMax 2) so a dead peer is declared within seconds, exactly as a user would
shorten them; the defaults (5 x 3) behave the same, only slower.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import edgeship
import pytest
from edgeship.bench import benchmark
from edgeship.core.errors import ConnectionFailed
from edgeship.targets.ssh import SSHTarget

from tests.fixtures.cli import cli_argv, run_cli_process
from tests.fixtures.netdevice import NetNamespace, constrained_device, sh
from tests.fixtures.onnx_graphs import linear_model
from tests.fixtures.sshd import (
    DeviceUser,
    PlainDevice,
    create_user,
    remove_user,
    require_sshd,
    running_device,
    start_sshd,
    wait_until,
    write_client_home,
)

# a device that stops answering fails the test in minutes, not at the suite's 900 s default
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(180)]
QUICK = {"runs": 20, "warmup": 2, "min_seconds": 0.0}
LONG_RUN = ["--min-seconds", "120", "--runs", "10"]


@pytest.fixture
def device() -> Iterator[PlainDevice]:
    """A device of its own (these tests freeze or break it), acting as its client."""
    with running_device() as dev, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(dev.home))
        mp.delenv("SSH_AUTH_SOCK", raising=False)
        yield dev


def fast_keepalives(home: Path, interval: int = 1, count: int = 2) -> None:
    with open(home / ".ssh" / "config", "a") as f:
        f.write(f"Host *\n  ServerAliveInterval {interval}\n  ServerAliveCountMax {count}\n")


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    """Wait for a CLI process; kill it (and fail) if it does not end in ``timeout`` s."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def long_cli_bench(device: PlainDevice, model: Path) -> subprocess.Popen[str]:
    """`edgeship bench` of a 120 s measurement, returned once its agent runs on the device."""
    proc = subprocess.Popen(cli_argv("bench", str(model), "--target", device.alias, *LONG_RUN),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=device.env())
    try:
        wait_until(device.agents, "the agent running on the device", timeout=60)
    except AssertionError:
        finish(proc, 1)
        raise
    return proc


def in_background(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args, **kwargs)
    pool.shutdown(wait=False)
    return future


# -- a hung device and a silently dead link ------------------------------------------------
@pytest.mark.timeout(120)
def test_a_hung_device_fails_within_keepalive_times_count_and_its_agent_is_stopped(
    device: PlainDevice, bundled_onnx: Path
) -> None:
    fast_keepalives(device.home)
    proc = long_cli_bench(device, bundled_onnx)
    assert device.server.drop_connections(signal.SIGSTOP)  # sshd hangs; TCP still answers
    _, stderr = finish(proc)
    assert proc.returncode == 3, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"the connection to {device.alias}" in stderr
    assert "answered none of 2 keepalives in 2 s" in stderr
    # the device's sshd forwards no heartbeat any more: the watchdog ends the measurement
    wait_until(lambda: not device.agents(), "the watchdog to stop the hung session's agent",
               timeout=30)


@contextlib.contextmanager
def device_behind_a_link() -> Iterator[tuple[PlainDevice, NetNamespace]]:
    """A device in a network namespace whose sshd has its default ClientAliveInterval 0: it
    never notices that the link to its client died."""
    require_sshd()
    work = Path(tempfile.mkdtemp(prefix="edgeship-link-"))
    work.chmod(0o755)
    with contextlib.ExitStack() as undo:
        undo.callback(subprocess.run, ["rm", "-rf", str(work)], capture_output=True)
        user: DeviceUser = create_user()
        undo.callback(remove_user, user)
        ns = NetNamespace.create()
        undo.callback(ns.delete)
        server = start_sshd(work / "sshd", host=ns.device_ip, port=22, allow_users=[user.name],
                            wrap=ns.exec_argv([]), client_alive_interval=0)
        undo.callback(server.stop)
        home = write_client_home(work / "home", alias="edge-link", server=server, user=user)
        yield PlainDevice(server, user, home, "edge-link"), ns


@pytest.mark.timeout(120)
def test_a_silently_dropped_link_stops_the_measurement_on_the_device(
    bundled_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with device_behind_a_link() as (dev, ns):
        fast_keepalives(dev.home)
        monkeypatch.setenv("HOME", str(dev.home))
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        future = in_background(benchmark, bundled_onnx, dev.alias, min_seconds=120, runs=10)
        wait_until(dev.agents, "the agent running on the device", timeout=60)
        sh(ns.exec_argv(["ip", "link", "set", ns.device_if, "down"]))
        with pytest.raises(ConnectionFailed) as err:
            future.result(timeout=60)
        assert f"the connection to {dev.alias}" in str(err.value)
        assert err.value.exit_code == 3
        wait_until(lambda: not dev.agents(), "the watchdog to stop the cut-off agent", timeout=30)


@pytest.mark.timeout(180)
def test_a_slow_upload_is_not_mistaken_for_a_dead_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guard for the keepalives that need replies: with 1 s x 2 a 3 MB upload over a
    2 Mbit/s link (about 12 s) completes; replies queue behind upload data there, and any
    packet from the server counts as a sign of life (as in OpenSSH)."""
    big = linear_model(tmp_path / "big.onnx", features=768, classes=1024)  # 3 MB
    with constrained_device(rate_mbit=2, alias="edge-slow-link") as dev:
        fast_keepalives(dev.home)
        monkeypatch.setenv("HOME", str(dev.home))
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        report = edgeship.deploy(big, dev.alias)
        assert "big.onnx" in report.files_sent and report.bytes_sent > 3_000_000


# -- messages ------------------------------------------------------------------------------
def test_a_dropped_connection_is_one_readable_line_naming_the_host(
    device: PlainDevice, bundled_onnx: Path
) -> None:
    proc = long_cli_bench(device, bundled_onnx)
    device.server.drop_connections()
    _, stderr = finish(proc)
    assert proc.returncode == 3, stderr
    assert stderr.count("\n") == 1
    assert f"the connection to {device.alias} ({device.user.name}@127.0.0.1:" in stderr
    assert "while running 'python3': the device closed the connection. Fix: " in stderr
    assert "EOFError" not in stderr and "()" not in stderr


def test_a_drop_during_upload_reads_as_words_not_exception_names(
    device: PlainDevice, tmp_path: Path
) -> None:
    big = linear_model(tmp_path / "big.onnx", features=768, classes=1024)
    dropped: list[int] = []

    def drop_link(name: str, sent: int, total: int) -> None:
        if not dropped and sent > 0:
            dropped.extend(device.server.drop_connections())

    with pytest.raises(ConnectionFailed) as err:
        edgeship.deploy(big, device.alias, progress=drop_link)
    message = str(err.value)
    assert "dropped while uploading 'big.onnx'" in message
    assert "EOFError" not in message and "Server connection dropped" not in message
    assert message.count(": ") >= 1 and not message.rstrip(". ").endswith(":")


# -- nothing left behind -------------------------------------------------------------------
def _leftovers(user: DeviceUser) -> set[str]:
    """The device user's files in /tmp and in its home, edgeship's own cache aside."""
    found = {f"/tmp/{p.name}" for p in Path("/tmp").iterdir()
             if p.lstat().st_uid == user.uid}
    for path in user.home.rglob("*"):
        rel = path.relative_to(user.home).as_posix()
        if rel != ".cache" and not rel.startswith(".cache/edgeship"):
            found.add(f"~/{rel}")
    return found


def test_probe_and_measurement_leave_nothing_on_the_device(
    device: PlainDevice, bundled_onnx: Path
) -> None:
    before = _leftovers(device.user)
    with SSHTarget(device.alias) as target:
        assert "onnxruntime" in (target.probe().backends or {})  # imports every backend there
        benchmark(bundled_onnx, target, **QUICK)
    assert _leftovers(device.user) - before == set()


def test_a_local_measurement_leaves_no_telemetry_in_home(
    bundled_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    benchmark(bundled_onnx, "local", **QUICK)
    assert list(tmp_path.iterdir()) == []


# -- an interrupted fleet ------------------------------------------------------------------
@pytest.mark.timeout(180)
def test_an_interrupted_fleet_prints_the_hosts_that_finished(
    device: PlainDevice, bundled_onnx: Path, tmp_path: Path
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="edgeship-slowbin-"))
    shared.chmod(0o755)
    try:
        # the slow device's agent never starts measuring: it sleeps until interrupted
        (shared / "python3").write_text(
            '#!/bin/sh\n[ "$1" = -m ] && [ "$2" = edgeship.runtime.bench ] && exec sleep 600\n'
            f'exec {sys.executable} "$@"\n')
        (shared / "python3").chmod(0o755)
        with running_device(path_prefix=[str(shared)],
                            client_key=device.server.keys.client_key) as slow:
            write_client_home(device.home, alias="edge-slow", server=slow.server, user=slow.user)
            out = tmp_path / "fleet.json"
            logins = device.server.log_text().count("Accepted publickey")
            proc = subprocess.Popen(
                cli_argv("bench", str(bundled_onnx), "--target", device.alias, "--target",
                         "edge-slow", "--runs", "20", "--min-seconds", "0", "--json",
                         "-o", str(out)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=device.env())
            try:
                wait_until(lambda: any("sleep 600" in c for c in slow.commands().values()),
                           "the slow host's agent sleeping", timeout=90)
                wait_until(lambda: device.server.log_text().count("Accepted publickey") > logins
                           and not device.server.session_pids(), "the fast host finished",
                           timeout=90)
            except AssertionError:
                finish(proc, 1)
                raise
            proc.send_signal(signal.SIGINT)
            stdout, stderr = finish(proc)
            assert proc.returncode == 130, stderr
            assert "interrupted: 1 of 2 devices had finished" in stderr
            assert "Traceback" not in stderr
            payload = json.loads(stdout)
            assert payload["interrupted"] is True and json.loads(out.read_text()) == payload
            fast, cut = payload["hosts"]
            assert fast["ok"] and fast["result"]["latency_ms"]["p50"] > 0
            assert (cut["target"], cut["exit_code"], cut["error"]["message"]) == \
                ("edge-slow", 130, "interrupted")
            wait_until(lambda: not any("sleep 600" in c for c in slow.commands().values()),
                       "the interrupted host's command stopped")
    finally:
        shutil.rmtree(shared, ignore_errors=True)


# -- interrupted provisioning --------------------------------------------------------------
def _new_temps(user: DeviceUser, before: set[str]) -> list[str]:
    """The user's new entries in /tmp (uids are reused: older ones may be another test's)."""
    return sorted(p for p in _leftovers(user) - before if p.startswith("/tmp/"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_during_provisioning_leaves_no_venv_and_provisioning_again_completes(
    device: PlainDevice, bundled_onnx: Path
) -> None:
    before = _leftovers(device.user)
    proc = subprocess.Popen(cli_argv("provision", "--target", device.alias),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=device.env())
    try:
        wait_until(lambda: any("--isolated install" in c for c in device.commands().values()),
                   "pip installing on the device", timeout=240)
    except AssertionError:
        finish(proc, 1)
        raise
    proc.send_signal(signal.SIGINT)
    _, stderr = finish(proc)
    assert proc.returncode == 130, stderr
    cache = device.user.cache
    assert not (cache / "venv").exists()
    assert list(cache.glob("venv*")) == []  # nor the half-built one
    # pip's temporary files go with it (its watchdog may still be ending it: SIGTERM, 2 s, SIGKILL)
    wait_until(lambda: not _new_temps(device.user, before), "pip's temporary files removed", 20)

    # a later run is not sent to a half-made venv
    bench = run_cli_process("bench", bundled_onnx, "--target", device.alias, "--runs", "5",
                            "--min-seconds", "0", "--json", env=device.env(), timeout=180)
    assert bench.returncode == 0, bench.stderr

    again = run_cli_process("provision", "--target", device.alias, "--json", env=device.env(),
                            timeout=500)
    assert again.returncode == 0, again.stderr
    venv = cache / "venv"
    assert json.loads(again.stdout.splitlines()[0])["python"] == str(venv / "bin" / "python")
    scripts = [p for p in (venv / "bin").iterdir()
               if p.is_file() and not p.is_symlink() and p.read_bytes().startswith(b"#!")]
    assert scripts  # pip's console scripts (f2py, ...) name the venv where it now is
    for script in scripts:
        first = script.read_text().splitlines()[0]
        assert "edgeship-tmp" not in first and (str(venv) in first or "python" in first)
    assert list(cache.glob("venv.*")) == [] and _new_temps(device.user, before) == []

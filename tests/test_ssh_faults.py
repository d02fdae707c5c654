"""Faults against real sshd devices: each ends in one clear error with the right exit code,
loses nothing, and leaves no upload temporaries or running measurements on the device.

Where a fault is simulated rather than real, the test says so (the "old Python" device).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import edgeship
import pytest
from edgeship.bench import benchmark
from edgeship.core.errors import (
    ConfigError,
    ConnectionFailed,
    MissingBackendError,
    RemoteCommandFailed,
    UnsupportedError,
)
from edgeship.targets.ssh import SSHTarget

from tests.fixtures.cli import cli_argv, run_cli_process
from tests.fixtures.onnx_graphs import linear_model
from tests.fixtures.sshd import PlainDevice, free_port, running_device, wait_until

# a device that stops answering fails the test in minutes, not at the suite's 900 s default
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(180)]
QUICK = {"runs": 20, "warmup": 2, "min_seconds": 0.0}


def cli(device: PlainDevice, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, env=device.env(), timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def big_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 MB model: many SFTP chunks, so faults can strike in the middle of its upload."""
    return linear_model(tmp_path_factory.mktemp("big") / "big.onnx", features=768, classes=1024)


@pytest.fixture
def device() -> Iterator[PlainDevice]:
    """A device of its own (these tests break or reconfigure it), acting as its client."""
    with running_device() as dev, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(dev.home))
        mp.delenv("SSH_AUTH_SOCK", raising=False)
        yield dev


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the device user can read (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="edgeship-fault-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def in_background(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args, **kwargs)
    pool.shutdown(wait=False)
    return future


# -- reaching the device --------------------------------------------------------------------
def test_connection_refused_is_exit_3_with_the_port(ssh_home: PlainDevice, bundled_onnx: Path) -> None:
    port = free_port()
    proc = cli(ssh_home, "bench", str(bundled_onnx), "--target", f"{ssh_home.user.name}@127.0.0.1:{port}")
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and f"127.0.0.1:{port} refused" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_port_that_is_not_ssh_is_named(ssh_home: PlainDevice) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer_http() -> None:
        conn, _ = server.accept()
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer_http, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    try:
        with SSHTarget(f"{ssh_home.user.name}@127.0.0.1:{port}") as target, \
                pytest.raises(ConnectionFailed) as err:
            target.run(["true"])
        assert "did not answer as an SSH server" in str(err.value) and str(port) in str(err.value)
    finally:
        server.close()


def test_auth_failure_names_the_user_and_the_keys_tried(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(ssh_home.home / ".ssh" / "known_hosts", home / ".ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(home / ".ssh" / "id_ed25519")], check=True)
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.spec) as target, pytest.raises(ConnectionFailed) as err:
        target.run(["true"])
    assert f"authentication as {ssh_home.user.name}@127.0.0.1" in str(err.value)
    assert str(home / ".ssh" / "id_ed25519") in str(err.value)
    assert err.value.exit_code == 3


def test_unknown_host_key_through_the_cli_shows_the_fingerprint(
    ssh_home: PlainDevice, bundled_onnx: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(ssh_home.home / ".ssh", home / ".ssh")
    (home / ".ssh" / "known_hosts").write_text("")
    proc = run_cli_process("bench", bundled_onnx, "--target", ssh_home.alias,
                           env=ssh_home.env(HOME=str(home)), timeout=120)
    assert proc.returncode == 3
    assert "is unknown: ssh-ed25519 SHA256:" in proc.stderr and "--accept-new-host-key" in proc.stderr


# -- the link or the device failing mid-way -------------------------------------------------
def test_connection_dropped_during_upload_leaves_no_temp_and_retry_completes(
    device: PlainDevice, big_onnx: Path
) -> None:
    dropped: list[int] = []

    def drop_link(name: str, sent: int, total: int) -> None:
        if not dropped and sent > 0:
            dropped.extend(device.server.drop_connections())

    with pytest.raises(ConnectionFailed) as err:
        edgeship.deploy(big_onnx, device.alias, progress=drop_link)
    assert dropped
    assert "dropped while uploading 'big.onnx'" in str(err.value)
    assert device.temp_files() == []
    assert not [p for p in device.files() if p.name == "big.onnx"]

    again = edgeship.deploy(big_onnx, device.alias)  # nothing was lost: a retry completes
    assert Path(again.model_path).read_bytes() == big_onnx.read_bytes()
    assert device.temp_files() == []


def test_connection_dropped_during_timed_runs_stops_the_agent(
    device: PlainDevice, bundled_onnx: Path
) -> None:
    future = in_background(benchmark, bundled_onnx, device.alias, min_seconds=120, runs=10)
    wait_until(device.agents, "the agent running on the device")
    device.server.drop_connections()
    with pytest.raises(ConnectionFailed) as err:
        future.result(timeout=60)
    assert "dropped while running 'python3'" in str(err.value)
    wait_until(lambda: not device.agents(), "the orphaned agent to be stopped by the watchdog")
    assert device.temp_files() == []


def test_sshd_killed_mid_run_is_a_target_failure(device: PlainDevice, bundled_onnx: Path) -> None:
    future = in_background(benchmark, bundled_onnx, device.alias, min_seconds=120, runs=10)
    wait_until(device.agents, "the agent running on the device")
    device.server.kill()
    with pytest.raises(ConnectionFailed) as err:
        future.result(timeout=60)
    assert err.value.exit_code == 3
    wait_until(lambda: not device.agents(), "no agent left on the device")


def test_command_hanging_past_the_timeout_is_stopped_on_the_device(device: PlainDevice) -> None:
    with SSHTarget(device.alias) as target:
        with pytest.raises(RemoteCommandFailed) as err:
            target.run(["sleep", "300"], timeout=1)
        assert "did not finish within 1 s" in str(err.value) and err.value.exit_code == 3
        assert target.run(["true"]).ok  # the connection is still usable
    wait_until(lambda: not any("sleep 300" in c for c in device.commands().values()),
               "the hanging command to be killed")


def test_bench_timeout_stops_the_agent(device: PlainDevice, bundled_onnx: Path) -> None:
    with pytest.raises(RemoteCommandFailed) as err:
        benchmark(bundled_onnx, device.alias, min_seconds=300, runs=10, timeout=3)
    assert "did not finish within 3 s" in str(err.value)
    wait_until(lambda: not device.agents(), "the agent to be killed after the timeout")


# -- Ctrl-C ---------------------------------------------------------------------------------
def test_ctrl_c_during_upload_removes_the_temporary(device: PlainDevice, big_onnx: Path) -> None:
    def press_ctrl_c(name: str, sent: int, total: int) -> None:
        if sent > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        edgeship.deploy(big_onnx, device.alias, progress=press_ctrl_c)
    assert device.temp_files() == []
    assert not [p for p in device.files() if p.name == "big.onnx"]


def _ctrl_c_cli_bench(device: PlainDevice, model: Path, targets: list[str]) -> None:
    """Run `edgeship bench` on ``targets``, press Ctrl-C once every agent runs, check the aftermath.

    Ctrl-C goes to a CLI process, as a user's would: signalling the test process itself crashed
    it once torch/jax/TensorFlow were loaded by earlier tests.
    """
    argv = cli_argv("bench", model, "--min-seconds", "120", "--runs", "10")
    for target in targets:
        argv += ["--target", target]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=device.env())
    try:
        wait_until(lambda: len(device.agents()) == len(targets), "every agent running", timeout=60)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    wait_until(lambda: not device.agents(), "every agent stopped after Ctrl-C")
    assert device.temp_files() == []


def test_ctrl_c_during_cli_bench_stops_the_agent_and_exits_130(
    device: PlainDevice, bundled_onnx: Path
) -> None:
    _ctrl_c_cli_bench(device, bundled_onnx, [device.alias])


def test_ctrl_c_during_a_fleet_stops_every_host(device: PlainDevice, bundled_onnx: Path) -> None:
    _ctrl_c_cli_bench(device, bundled_onnx, [device.alias, device.spec])


# -- the device's file system ---------------------------------------------------------------
def _small_cache(device: PlainDevice, size: str) -> Path:
    """Mount a tmpfs of ``size`` as the device user's edgeship cache (device namespace only)."""
    cache = device.user.cache
    device.server.in_namespace(["install", "-d", "-o", str(device.user.uid), "-g",
                                str(device.user.gid), "-m", "0700", str(cache)])
    device.server.in_namespace(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700,uid="
                                f"{device.user.uid},gid={device.user.gid}", "edgeship-full",
                                str(cache)])
    return cache


def test_too_little_disk_space_is_refused_before_sending(device: PlainDevice, big_onnx: Path) -> None:
    _small_cache(device, "1m")
    with pytest.raises(RemoteCommandFailed) as err:
        edgeship.deploy(big_onnx, device.alias)
    assert "bytes free" in str(err.value) and "--dir" in str(err.value)
    assert device.files() == []  # nothing sent, not even the runtime


def test_disk_filling_up_during_upload_is_named_and_cleaned(
    device: PlainDevice, big_onnx: Path
) -> None:
    cache = _small_cache(device, "5m")
    filler = cache / "filler"
    filled: list[bool] = []

    def something_else_fills_the_disk(name: str, sent: int, total: int) -> None:
        if sent > 0 and not filled:
            filled.append(True)
            device.server.in_namespace(["sh", "-c", f"dd if=/dev/zero of={filler} bs=1M "
                                        "count=8 2>/dev/null; true"])

    with pytest.raises(RemoteCommandFailed) as err:
        edgeship.deploy(big_onnx, device.alias, progress=something_else_fills_the_disk)
    assert "ran out of disk space uploading 'big.onnx'" in str(err.value)
    assert device.temp_files() == []
    device.server.in_namespace(["rm", str(filler)])
    again = edgeship.deploy(big_onnx, device.alias)
    assert again.files_sent[0] == "big.onnx" and device.temp_files() == []


# -- the device's Python --------------------------------------------------------------------
def _venv_with_numpy_only(where: Path) -> Path:
    """A real Python with numpy and without onnxruntime: a venv plus a .pth to numpy alone."""
    import numpy

    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    only = where / "numpy-only"
    only.mkdir()
    package = Path(numpy.__file__).parent
    (only / "numpy").symlink_to(package)
    if (package.parent / "numpy.libs").exists():
        (only / "numpy.libs").symlink_to(package.parent / "numpy.libs")
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "numpy-only.pth").write_text(f"{only}\n")
    return venv / "bin" / "python"


def test_missing_backend_on_the_device_says_what_to_install(
    shared_dir: Path, bundled_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = _venv_with_numpy_only(shared_dir)
    with running_device(python=str(python)) as dev:
        monkeypatch.setenv("HOME", str(dev.home))
        with pytest.raises(MissingBackendError) as err:
            benchmark(bundled_onnx, dev.alias, **QUICK)
        assert err.value.exit_code == 4
        assert "onnxruntime backend is not available" in str(err.value)
        assert "pip install onnxruntime" in str(err.value)
        with SSHTarget(dev.alias) as target:
            facts = target.probe()
        assert facts.numpy and facts.backends is not None and "onnxruntime" not in facts.backends


def test_device_without_numpy_is_refused_before_anything_is_sent(
    bundled_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_python = "/usr/bin/python3"  # Debian's own python3: no numpy installed
    with running_device(python=system_python) as dev:
        monkeypatch.setenv("HOME", str(dev.home))
        with pytest.raises(MissingBackendError) as err:
            benchmark(bundled_onnx, dev.alias, **QUICK)
        assert "has no numpy" in str(err.value) and "pip install numpy" in str(err.value)
        assert err.value.exit_code == 4
        assert dev.files() == []


def test_device_python_too_old_is_refused(
    shared_dir: Path, bundled_onnx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIMULATED: Debian 12 has no Python 3.6 to install, so the device's ``python3`` is this
    interpreter with ``sys.version_info`` set to 3.6.9 by a sitecustomize module.  It proves
    that the version the device reports is checked and refused with a clear message; that
    the helper scripts parse under 3.5 is checked by test_remote_scripts_keep_old_syntax."""
    fake = shared_dir / "fakebin"
    fake.mkdir(mode=0o755)
    (shared_dir / "site36").mkdir(mode=0o755)
    (shared_dir / "site36" / "sitecustomize.py").write_text(
        "import collections, sys\n"
        "sys.version_info = collections.namedtuple("
        "'version_info', 'major minor micro releaselevel serial')(3, 6, 9, 'final', 0)\n"
        "sys.version = '3.6.9 (simulated by edgeship tests)'\n")
    (fake / "python3").write_text(
        f'#!/bin/sh\nPYTHONPATH="{shared_dir}/site36${{PYTHONPATH:+:$PYTHONPATH}}" '
        f'exec {sys.executable} "$@"\n')
    (fake / "python3").chmod(0o755)
    with running_device(path_prefix=[str(fake)]) as dev:
        monkeypatch.setenv("HOME", str(dev.home))
        with pytest.raises(UnsupportedError) as err:
            benchmark(bundled_onnx, dev.alias, **QUICK)
        assert "is Python 3.6.9" in str(err.value) and "3.9 or newer" in str(err.value)
        assert err.value.exit_code == 4
        assert dev.files() == []


def test_remote_scripts_keep_old_syntax() -> None:
    import ast

    from edgeship.targets.remote import source

    for name in ("watchdog", "preflight", "probe", "venvfacts", "finish_venv"):
        ast.parse(source(name), feature_version=(3, 5))


# -- hostile inputs -------------------------------------------------------------------------
HOSTILE_NAMES = ["$(touch canary).onnx", "`touch canary`.onnx", "x;touch canary;y.onnx",
                 "new\nline.onnx", "sp ace 'single' \"double\".onnx"]


def test_hostile_model_file_names_are_measured_and_never_executed(
    ssh_home: PlainDevice, bundled_onnx: Path, tmp_path: Path
) -> None:
    with SSHTarget(ssh_home.alias) as target:
        for name in HOSTILE_NAMES:
            model = tmp_path / name
            shutil.copy(bundled_onnx, model)
            result = benchmark(model, target, **QUICK)
            assert result.model.name == name
            assert Path(result.model.path).read_bytes() == bundled_onnx.read_bytes()
    proc = cli(ssh_home, "bench", str(tmp_path / HOSTILE_NAMES[0]), "--target", ssh_home.alias,
               "--runs", "20", "--min-seconds", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (ssh_home.user.home / "canary").exists()
    assert not (tmp_path / "canary").exists()
    assert not Path("canary").exists()


def test_hostile_remote_dir_is_a_directory_name_not_a_command(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    hostile = "~/cache $(touch canary);`touch canary`\n'x'"
    report = edgeship.deploy(bundled_onnx, ssh_home.alias, remote_dir=hostile)
    base = ssh_home.user.home / "cache $(touch canary);`touch canary`\n'x'"
    assert Path(report.model_path).parent.parent == base
    assert Path(report.model_path).read_bytes() == bundled_onnx.read_bytes()
    assert not (ssh_home.user.home / "canary").exists()
    shutil.rmtree(base)


HOSTILE_TARGETS = ["edge-plain;touch canary", "$(touch canary)@127.0.0.1", "edge plain",
                   "edge-plain\ntouch canary", "'edge-plain'", "`touch canary`"]


def test_hostile_target_strings_are_refused_without_running_anything(
    ssh_home: PlainDevice, bundled_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for spec in HOSTILE_TARGETS:
        with pytest.raises(ConfigError, match="not a valid SSH target"):
            benchmark(bundled_onnx, spec, **QUICK)
    proc = cli(ssh_home, "deploy", str(bundled_onnx), "--target", HOSTILE_TARGETS[0], cwd=tmp_path)
    assert proc.returncode == 2 and "not a valid SSH target" in proc.stderr
    proc = cli(ssh_home, "bench", str(bundled_onnx), "--target", ssh_home.alias, "--target",
               HOSTILE_TARGETS[1], cwd=tmp_path)
    assert proc.returncode == 2 and "not a valid SSH target" in proc.stderr
    assert not (tmp_path / "canary").exists() and not (ssh_home.user.home / "canary").exists()

"""SSHTarget against a real sshd: target strings, ~/.ssh/config, host keys, agent, jump hosts,
commands, files, probe and deploy (the cache on the device)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from edgeship.core.errors import ConfigError, HostKeyError
from edgeship.targets import LocalTarget
from edgeship.targets.ssh import SSHTarget
from edgeship.targets.sshconfig import parse_target, read_hosts_file
from edgeship.targets.staging import file_sha256

from tests.fixtures.cli import run_cli_process
from tests.fixtures.sshd import PlainDevice

# a device that stops answering fails the test in minutes, not at the suite's 900 s default
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(180)]

HOSTILE = ["a b@host", "user@ho st", "user@host;touch x", "user@$(touch x)", "user@`id`",
           "us'er@host", 'user@"host"', "user@host\nid", "user@host:22;id", "user@host:-1",
           "user@host:0", "user@[::1", "user@host:2a"]


def _sshd_logins(device: PlainDevice) -> int:
    return device.server.log_text().count("Accepted publickey")


# -- target strings ---------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "parts"), [
    ("pi@raspberrypi.local", ("pi", "raspberrypi.local", None)),
    ("pi@10.0.0.7:2222", ("pi", "10.0.0.7", 2222)),
    ("edge-plain", (None, "edge-plain", None)),
    ("root@[fe80::1]:22", ("root", "fe80::1", 22)),
    ("fe80::1", (None, "fe80::1", None)),
])
def test_target_strings_split_into_user_host_port(spec: str, parts: tuple) -> None:
    assert parse_target(spec) == parts


@pytest.mark.parametrize("spec", HOSTILE)
def test_hostile_target_strings_are_refused_as_bad_input(spec: str) -> None:
    with pytest.raises(ConfigError) as err:
        SSHTarget(spec)
    assert err.value.exit_code == 2
    assert "not a valid SSH target" in str(err.value)


def test_hosts_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# lab\npi@10.0.0.7\n\n  edge-plain  # the test device\npi@10.0.0.7\n")
    assert read_hosts_file(hosts) == ["pi@10.0.0.7", "edge-plain", "pi@10.0.0.7"]


# -- commands ---------------------------------------------------------------------------------
def test_run_returns_stdout_stderr_exit_code_and_duration(ssh_home: PlainDevice) -> None:
    with SSHTarget(ssh_home.spec) as target:
        res = target.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (res.stdout, res.stderr, res.exit_code) == ("out\n", "err\n", 3)
    assert res.duration > 0


def test_arguments_and_environment_reach_the_device_verbatim(
    ssh_home: PlainDevice, tmp_path: Path
) -> None:
    canary_dir = tmp_path / "canary"
    canary_dir.mkdir(mode=0o777)
    canary_dir.chmod(0o777)
    canary = canary_dir / "canary"
    argv = [f"$(touch {canary})", f"; touch {canary}", f"`touch {canary}`", "a 'b' \"c\"",
            "line1\nline2", "", "*", "-n", "$HOME"]
    with SSHTarget(ssh_home.spec) as target:
        res = target.run(["python3", "-c", "import json,os,sys; print(json.dumps("
                          "[sys.argv[1:], os.environ['ES_TEST']]))", *argv],
                         env={"ES_TEST": f"$(touch {canary}) ;x"})
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == [argv, f"$(touch {canary}) ;x"]
    assert not canary.exists()


def test_one_connection_serves_every_command_and_transfer(
    ssh_home: PlainDevice, tmp_path: Path
) -> None:
    before = _sshd_logins(ssh_home)
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(100_000))
    with SSHTarget(ssh_home.spec) as target:
        for _ in range(3):
            assert target.run(["true"]).ok
        target.put(payload, "payload.bin")
        target.get("payload.bin", tmp_path / "back.bin")
        target.run(["rm", "payload.bin"])
    assert (tmp_path / "back.bin").read_bytes() == payload.read_bytes()
    assert _sshd_logins(ssh_home) == before + 1


def test_socket_has_nodelay_keepalive_and_user_timeout(ssh_home: PlainDevice) -> None:
    with SSHTarget(ssh_home.spec) as target:
        sock = target.connection().transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 15_000
        keepalive = target.connection().keepalives[0]  # keepalives that need replies
        assert (keepalive.interval, keepalive.count) == (5, 3)


def test_get_of_a_missing_file_is_a_target_error(ssh_home: PlainDevice, tmp_path: Path) -> None:
    from edgeship.core.errors import RemoteCommandFailed

    with SSHTarget(ssh_home.spec) as target, pytest.raises(RemoteCommandFailed) as err:
        target.get("no/such/file", tmp_path / "x")
    assert err.value.exit_code == 3
    assert not list(tmp_path.iterdir())  # no partial local file either


# -- ~/.ssh/config, agent, jump hosts -----------------------------------------------------------
def test_host_alias_uses_hostname_port_user_and_identityfile(ssh_home: PlainDevice) -> None:
    with SSHTarget(ssh_home.alias) as target:
        assert target.host.port == ssh_home.server.port
        assert target.run(["id", "-un"]).stdout.strip() == ssh_home.user.name


def test_keys_from_the_ssh_agent_log_in(ssh_home: PlainDevice, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(ssh_home.home / ".ssh" / "known_hosts", home / ".ssh" / "known_hosts")
    (home / ".ssh" / "config").write_text(  # no IdentityFile, no default key files
        f"Host agented\n  HostName 127.0.0.1\n  Port {ssh_home.server.port}\n"
        f"  User {ssh_home.user.name}\n")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"])
        subprocess.run(["ssh-add", "-q", str(ssh_home.server.keys.client_key)], check=True,
                       env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, capture_output=True)
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        with SSHTarget("agented") as target:
            assert target.run(["id", "-un"]).stdout.strip() == ssh_home.user.name
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)


def test_proxyjump_reaches_the_device_through_a_jump_host(ssh_home: PlainDevice) -> None:
    config = ssh_home.home / ".ssh" / "config"
    original = config.read_text()
    config.write_text(original + f"Host behind-jump\n  HostName 127.0.0.1\n"
                      f"  Port {ssh_home.server.port}\n  User {ssh_home.user.name}\n"
                      f"  IdentityFile {ssh_home.home / '.ssh' / 'id_ed25519'}\n"
                      f"  ProxyJump {ssh_home.alias}\n")
    before = _sshd_logins(ssh_home)
    try:
        with SSHTarget("behind-jump") as target:
            assert target.run(["id", "-un"]).stdout.strip() == ssh_home.user.name
            conn = target.connection()
            assert len(conn.hops) == 1
            assert type(conn.transport.sock).__name__ == "Channel"  # tunnelled, not a socket
    finally:
        config.write_text(original)
    assert _sshd_logins(ssh_home) == before + 2  # the jump host's login, then the device's


# -- host keys ----------------------------------------------------------------------------------
def _fingerprint(device: PlainDevice) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", f"{device.server.keys.host_key}.pub"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def _fresh_home(device: PlainDevice, tmp_path: Path, known: str) -> Path:
    home = tmp_path / "fresh-home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(device.home / ".ssh" / "config", home / ".ssh" / "config")
    (home / ".ssh" / "known_hosts").write_text(known)
    return home


def test_unknown_host_key_is_refused_with_its_fingerprint(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _fresh_home(ssh_home, tmp_path, "")
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias) as target, pytest.raises(HostKeyError) as err:
        target.run(["true"])
    assert err.value.exit_code == 3
    assert _fingerprint(ssh_home) in str(err.value)
    assert "--accept-new-host-key" in str(err.value)
    assert (home / ".ssh" / "known_hosts").read_text() == ""


def test_accept_new_host_key_records_it_for_the_next_connection(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _fresh_home(ssh_home, tmp_path, "")
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias, accept_new_host_key=True) as target:
        assert target.run(["true"]).ok
    assert (home / ".ssh" / "known_hosts").read_text() == ssh_home.server.known_hosts_line
    with SSHTarget(ssh_home.alias) as target:  # known now: no flag needed
        assert target.run(["true"]).ok


def test_hashed_known_hosts_entries_are_recognised(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _fresh_home(ssh_home, tmp_path, ssh_home.server.known_hosts_line)
    subprocess.run(["ssh-keygen", "-H", "-f", str(home / ".ssh" / "known_hosts")], check=True,
                   capture_output=True)
    assert "127.0.0.1" not in (home / ".ssh" / "known_hosts").read_text()  # hashed (|1|...)
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias) as target:
        assert target.run(["true"]).ok


def test_changed_host_key_is_refused_even_when_accepting_new_keys(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    impostor = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    known = f"[127.0.0.1]:{ssh_home.server.port} {impostor}\n"
    home = _fresh_home(ssh_home, tmp_path, known)
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias, accept_new_host_key=True) as target, \
            pytest.raises(HostKeyError) as err:
        target.run(["true"])
    assert "CHANGED" in str(err.value) and _fingerprint(ssh_home) in str(err.value)
    assert (home / ".ssh" / "known_hosts").read_text() == known


# -- probe --------------------------------------------------------------------------------------
def test_probe_reports_the_local_keys_from_one_remote_run(ssh_home: PlainDevice) -> None:
    with SSHTarget(ssh_home.spec) as target:
        facts = target.probe().to_dict()
    local = LocalTarget().probe().to_dict()
    # every fact found here is found there too
    assert {k for k, v in local.items() if v is not None} <= {k for k, v in facts.items()
                                                              if v is not None}
    # the device is this machine: the facts must agree
    for key in ("machine", "cpu_model", "cpu_count", "python", "libc", "cpu_flags"):
        assert facts[key] == local[key], key
    assert facts["backends"]["onnxruntime"] == local["backends"]["onnxruntime"]
    assert facts["numpy"] and isinstance(facts["accelerators"], list)


# -- deploy -------------------------------------------------------------------------------------
def test_deploy_sends_model_manifest_and_runtime_then_skips_them(
    ssh_home: PlainDevice, bundled_onnx: Path, tmp_path: Path
) -> None:
    import edgeship

    model = tmp_path / bundled_onnx.name
    shutil.copy(bundled_onnx, model)
    manifest = bundled_onnx.with_name(bundled_onnx.name + ".manifest.json")
    if manifest.exists():
        shutil.copy(manifest, tmp_path / manifest.name)
    else:
        (tmp_path / f"{model.name}.manifest.json").write_text('{"files": []}')
    fresh = f"~/fresh-cache-{os.getpid()}"  # other tests may have filled the default cache
    first = edgeship.deploy(model, ssh_home.spec, remote_dir=fresh)
    assert model.name in first.files_sent and f"{model.name}.manifest.json" in first.files_sent
    assert "edgeship/runtime/bench.py" in first.files_sent
    assert "edgeship/__init__.py" in first.files_sent
    assert first.bytes_sent == first.bytes_total > model.stat().st_size
    remote = Path(first.model_path)
    assert remote.read_bytes() == model.read_bytes()
    assert remote.parent.name == file_sha256(model)
    assert str(remote).startswith(f"{ssh_home.user.home}/fresh-cache-")

    second = edgeship.deploy(model, ssh_home.alias, remote_dir=fresh)
    assert second.bytes_sent == 0 and second.files_sent == []
    assert sorted(second.files_skipped) == sorted(first.files_sent)

    (tmp_path / f"{model.name}.manifest.json").write_text('{"files": [], "edited": true}')
    third = edgeship.deploy(model, ssh_home.alias, remote_dir=fresh)
    assert third.files_sent == [f"{model.name}.manifest.json"]
    assert ssh_home.temp_files(ssh_home.user.home / fresh[2:]) == []
    assert len(ssh_home.files(ssh_home.user.home / fresh[2:])) == len(first.files_sent) + 2


def test_deploy_of_openvino_ir_carries_its_weights(ssh_home: PlainDevice, tmp_path: Path) -> None:
    import edgeship

    xml = tmp_path / "m.xml"
    xml.write_text("<net/>")
    with pytest.raises(edgeship.ModelError):
        edgeship.deploy(xml, ssh_home.spec)
    xml.with_suffix(".bin").write_bytes(b"\0" * 1000)
    report = edgeship.deploy(xml, ssh_home.spec)
    assert set(report.files_sent) >= {"m.xml", "m.bin"}
    assert Path(report.model_path).with_suffix(".bin").stat().st_size == 1000


def test_deployed_runtime_is_what_the_device_python_imports(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    with SSHTarget(ssh_home.spec) as target:
        model_path, python, env = target.stage(bundled_onnx)
        res = target.run([*python, "-c", "import edgeship.runtime as r; print(r.__file__)"],
                         env=env)
    assert res.stdout.strip().startswith(env["PYTHONPATH"] + "/edgeship/runtime/")
    assert model_path.startswith(str(ssh_home.user.cache))


def test_deploy_cli_reports_bytes_sent_and_honours_dir(
    ssh_home: PlainDevice, bundled_onnx: Path
) -> None:
    cmd = ["deploy", str(bundled_onnx), "--target", ssh_home.alias, "--dir", "~/elsewhere", "--json"]
    first = run_cli_process(*cmd, env=ssh_home.env(), timeout=120)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["schema"] == "edgeship.deploy/1"
    assert report["model_path"].startswith(str(ssh_home.user.home / "elsewhere"))
    assert report["bytes_sent"] > 0
    again = run_cli_process(*cmd[:-1], env=ssh_home.env(), timeout=120)
    assert again.returncode == 0, again.stderr
    assert "(0 bytes)" in again.stderr and "already there" in again.stderr


def test_profiles_detect_over_ssh_matches_local_detection(ssh_home: PlainDevice) -> None:
    def detect(target: str) -> dict:
        proc = run_cli_process("profiles", "detect", "--target", target, "--json",
                               env=ssh_home.env(), timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    remote, local = detect(ssh_home.alias), detect("local")
    assert remote["target"] == ssh_home.alias
    assert remote["profile"] == local["profile"]  # the device is this machine

"""Host keys and proxies against a real sshd: every known_hosts file ssh reads, @revoked and
@cert-authority markers, atomic known_hosts writes, ProxyCommand and ProxyJump ssh:// URIs.

The global known_hosts file is never the machine's real /etc/ssh/ssh_known_hosts: each test
names its own with ``GlobalKnownHostsFile`` in its ssh config; the default paths are checked
separately, without touching them.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from edgeship.core.errors import ConfigError, ConnectionFailed, HostKeyError
from edgeship.targets.ssh import SSHTarget
from edgeship.targets.sshconfig import resolve

from tests.fixtures.cli import run_cli_process
from tests.fixtures.sshd import PlainDevice

# a device that stops answering fails the test in minutes, not at the suite's 900 s default
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(180)]


def _home(device: PlainDevice, tmp_path: Path, known: str = "", extra_config: str = "") -> Path:
    """A client HOME with the device's alias, ``known`` as known_hosts and more config."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(device.home / ".ssh" / "id_ed25519", home / ".ssh" / "id_ed25519")
    config = (device.home / ".ssh" / "config").read_text().replace(
        str(device.home), str(home))
    (home / ".ssh" / "config").write_text(config + extra_config)
    (home / ".ssh" / "known_hosts").write_text(known)
    return home


def _other_key(tmp_path: Path, name: str = "other") -> str:
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def _name(device: PlainDevice) -> str:
    return f"[127.0.0.1]:{device.server.port}"


def cli(home: Path, device: PlainDevice, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, env=device.env(HOME=str(home)), timeout=120)


# -- every known_hosts file ----------------------------------------------------------------
def test_default_known_hosts_files_are_the_ones_ssh_reads(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = resolve("pi@10.0.0.7", tmp_path / "no-config")
    assert spec.known_hosts_files == (f"{tmp_path}/.ssh/known_hosts",
                                      f"{tmp_path}/.ssh/known_hosts2")
    assert spec.global_known_hosts_files == ("/etc/ssh/ssh_known_hosts",
                                             "/etc/ssh/ssh_known_hosts2")


def test_known_hosts_options_take_several_files_tokens_and_none(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "config"
    config.write_text("Host pi\n  HostName 10.0.0.7\n  User pi\n"
                      "  UserKnownHostsFile ~/kh/%h \"/with space/kh\"\n"
                      "  GlobalKnownHostsFile none\n")
    spec = resolve("pi", config)
    assert spec.known_hosts_files == (f"{tmp_path}/kh/10.0.0.7", "/with space/kh")
    assert spec.global_known_hosts_files == ()


def test_accept_new_refuses_a_key_that_contradicts_the_global_known_hosts(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global_file = tmp_path / "ssh_known_hosts"
    global_file.write_text(f"{_name(ssh_home)} {_other_key(tmp_path)}\n")
    home = _home(ssh_home, tmp_path, extra_config=f"Host *\n  GlobalKnownHostsFile {global_file}\n")
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias, accept_new_host_key=True) as target, \
            pytest.raises(HostKeyError) as err:
        target.run(["true"])
    assert "CHANGED" in str(err.value) and str(global_file) in str(err.value)
    assert err.value.exit_code == 3
    assert (home / ".ssh" / "known_hosts").read_text() == ""  # nothing recorded


def test_a_key_in_the_global_file_or_known_hosts2_is_trusted(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global_file = tmp_path / "ssh_known_hosts"
    global_file.write_text(ssh_home.server.known_hosts_line)
    home = _home(ssh_home, tmp_path, extra_config=f"Host *\n  GlobalKnownHostsFile {global_file}\n")
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias) as target:
        assert target.run(["true"]).ok
    global_file.write_text("")
    (home / ".ssh" / "known_hosts2").write_text(ssh_home.server.known_hosts_line)
    with SSHTarget(ssh_home.alias) as target:
        assert target.run(["true"]).ok
    assert (home / ".ssh" / "known_hosts").read_text() == ""


# -- markers and hashed entries --------------------------------------------------------------
def test_a_revoked_host_key_is_refused_in_one_line_with_exit_3(
    ssh_home: PlainDevice, tmp_path: Path, bundled_onnx: Path
) -> None:
    known = ssh_home.server.known_hosts_line + f"@revoked * {ssh_home.server.keys.host_key_pub}\n"
    home = _home(ssh_home, tmp_path, known)
    proc = cli(home, ssh_home, "deploy", str(bundled_onnx), "--target", ssh_home.alias)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "@revoked" in proc.stderr and "known_hosts:2" in proc.stderr


def test_cert_authority_lines_are_skipped_with_a_warning_and_hashed_entries_still_work(
    ssh_home: PlainDevice, tmp_path: Path, bundled_onnx: Path
) -> None:
    home = _home(ssh_home, tmp_path, ssh_home.server.known_hosts_line)
    known = home / ".ssh" / "known_hosts"
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    (home / ".ssh" / "known_hosts.old").unlink()
    assert known.read_text().startswith("|1|")
    known.write_text(f"@cert-authority *.example.org,127.0.0.1,[127.0.0.1]:* {_other_key(tmp_path)}\n"
                     + known.read_text())
    proc = cli(home, ssh_home, "deploy", str(bundled_onnx), "--target", ssh_home.alias)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "@cert-authority" in warnings[0] and "known_hosts:1" in warnings[0]


# -- writing known_hosts -------------------------------------------------------------------
def test_accepting_a_key_adds_a_whole_line_atomically_and_keeps_the_mode(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = f"earlier.example.org {_other_key(tmp_path)}"  # no trailing newline
    home = _home(ssh_home, tmp_path, earlier)
    known = home / ".ssh" / "known_hosts"
    known.chmod(0o644)
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias, accept_new_host_key=True) as target:
        assert target.run(["true"]).ok
    assert known.read_text() == earlier + "\n" + ssh_home.server.known_hosts_line
    assert stat.S_IMODE(known.stat().st_mode) == 0o644
    assert sorted(p.name for p in (home / ".ssh").iterdir()) == ["config", "id_ed25519",
                                                                "known_hosts"]
    for host in ("earlier.example.org", _name(ssh_home)):  # OpenSSH reads both entries
        found = subprocess.run(["ssh-keygen", "-F", host, "-f", str(known)],
                               capture_output=True, text=True)
        assert found.returncode == 0 and host in found.stdout


def test_accepting_a_key_keeps_a_symlinked_known_hosts_a_symlink(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guard for the atomic write (a rename would replace the link with a file)."""
    home = _home(ssh_home, tmp_path)
    real = tmp_path / "dotfiles" / "known_hosts"
    real.parent.mkdir()
    real.write_text("")
    (home / ".ssh" / "known_hosts").unlink()
    (home / ".ssh" / "known_hosts").symlink_to(real)
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget(ssh_home.alias, accept_new_host_key=True) as target:
        assert target.run(["true"]).ok
    assert (home / ".ssh" / "known_hosts").is_symlink()
    assert real.read_text() == ssh_home.server.known_hosts_line


# -- proxies -------------------------------------------------------------------------------
RELAY = """\
import socket, sys, threading
host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(log, "w") as f:
    f.write(repr(sys.argv[1:3]))
sock = socket.create_connection((host, port))
def up():
    while True:
        data = sys.stdin.buffer.read1(65536)
        if not data:
            sock.shutdown(socket.SHUT_WR)
            return
        sock.sendall(data)
threading.Thread(target=up, daemon=True).start()
while True:
    data = sock.recv(65536)
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
"""


def test_proxycommand_carries_the_connection(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, log = tmp_path / "relay.py", tmp_path / "relay.log"
    relay.write_text(RELAY)
    home = _home(ssh_home, tmp_path, ssh_home.server.known_hosts_line,
                 f"Host via-proxy\n  HostName 127.0.0.1\n  Port {ssh_home.server.port}\n"
                 f"  User {ssh_home.user.name}\n"
                 f"  ProxyCommand {sys.executable} {relay} %h %p {log}\n")
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget("via-proxy") as target:
        assert target.run(["id", "-un"]).stdout.strip() == ssh_home.user.name
        assert type(target.connection().transport.sock).__name__ == "CollectingProxy"
    assert log.read_text() == repr(["127.0.0.1", str(ssh_home.server.port)])


def test_proxycommand_tokens_are_shell_quoted(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host odd\n  HostName a;touch${IFS}canary\n  User pi\n"
                      "  ProxyCommand nc %h %p # %r %n 100%%\n")
    spec = resolve("odd", config)
    assert spec.proxy_command == "nc 'a;touch${IFS}canary' 22 # pi odd 100%"


def test_a_failing_proxycommand_is_one_error_naming_it(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home(ssh_home, tmp_path, ssh_home.server.known_hosts_line,
                 f"Host broken-proxy\n  HostName 127.0.0.1\n  Port {ssh_home.server.port}\n"
                 "  ProxyCommand sh -c 'echo no route to %h >&2; exit 7'\n")
    monkeypatch.setenv("HOME", str(home))
    with SSHTarget("broken-proxy") as target, pytest.raises(ConnectionFailed) as err:
        target.run(["true"])
    assert "ProxyCommand" in str(err.value) and "no route to 127.0.0.1" in str(err.value)
    assert err.value.exit_code == 3


def test_proxyjump_and_proxycommand_together_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host both\n  ProxyJump jump\n  ProxyCommand nc %h %p\n")
    with pytest.raises(ConfigError, match="both ProxyJump and ProxyCommand"):
        resolve("both", config)


def _logins(device: PlainDevice) -> int:
    return device.server.log_text().count("Accepted publickey")


def test_proxyjump_accepts_ssh_uris_and_several_hops(
    ssh_home: PlainDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"ssh://{ssh_home.user.name}@127.0.0.1:{ssh_home.server.port}"
    home = _home(ssh_home, tmp_path, ssh_home.server.known_hosts_line,
                 f"Host behind-uri\n  HostName 127.0.0.1\n  Port {ssh_home.server.port}\n"
                 f"  User {ssh_home.user.name}\n  ProxyJump {uri}\n"
                 f"Host behind-two\n  HostName 127.0.0.1\n  Port {ssh_home.server.port}\n"
                 f"  User {ssh_home.user.name}\n  ProxyJump {uri}/,{ssh_home.alias}\n"
                 f"Host *\n  IdentityFile {tmp_path / 'home' / '.ssh' / 'id_ed25519'}\n")
    monkeypatch.setenv("HOME", str(home))
    before = _logins(ssh_home)
    with SSHTarget("behind-uri") as target:
        assert target.run(["id", "-un"]).stdout.strip() == ssh_home.user.name
        assert len(target.connection().hops) == 1
    with SSHTarget("behind-two") as target:
        assert target.run(["true"]).ok
        assert len(target.connection().hops) == 2
    assert _logins(ssh_home) == before + 2 + 3


def test_a_malformed_proxyjump_hop_is_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host bad\n  ProxyJump ssh://user@host:99999\n")
    with pytest.raises(ConfigError, match="not a valid SSH target") as err:
        resolve("bad", config)
    assert err.value.exit_code == 2

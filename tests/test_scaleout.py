"""The search on Ray and the device lab, on a real local Ray cluster (2 CPUs, head on
loopback, started and stopped here) and eight loopback sshd devices (tests/fixtures/sshd.py).

- the distributed search gives the in-process search's candidates, fidelity figures and pick;
- a worker killed mid-candidate is retried once, and killed again it is recorded as failed;
- two concurrent fleet benches leasing the same eight devices never run two measurement agents
  on one device at once, and keep the cooldown between leases;
- Ctrl-C during a leased measurement leaves nothing on the device and frees the lease.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeship.recipe import QuantizeStep, Recipe

from tests.fixtures.cli import cli_argv, run_cli_process
from tests.fixtures.sshd import PlainDevice, running_device, wait_until, write_client_home

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "models" / "digits_cnn.onnx"
DIGITS_TEST = REPO / "examples" / "data" / "digits_test.npz"
DEVICES = [f"lab-{i}" for i in range(8)]
QUICK = {"runs": 5, "warmup": 1, "min_seconds": 0.0, "threads": 1, "progress": False}
INT8 = [Recipe("int8-onnx", (QuantizeStep(backend="onnxruntime"),), backend="onnxruntime")]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster owned by this process: 2 CPUs, one resource per lab device, its temp
    dir private and removed; returns the address other processes join."""
    import ray

    tmp = tempfile.mkdtemp(prefix="esray-")  # short: Ray's socket paths must stay < 108 chars
    os.environ["RAY_AUTH_MODE"] = "disabled"  # loopback only; no token written to ~/.ray
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False,
             _node_ip_address="127.0.0.1", resources={f"device:{d}": 1 for d in DEVICES})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def lab_devices(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[PlainDevice], Path]]:
    """Eight sshd devices and one client HOME that knows them as lab-0 … lab-7."""
    home = tmp_path_factory.mktemp("labhome")
    key = tmp_path_factory.mktemp("labkey") / "id_ed25519"  # one client key for all eight
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with contextlib.ExitStack() as stack:
        devices = [stack.enter_context(running_device(alias=d, client_key=key)) for d in DEVICES]
        for name, dev in zip(DEVICES, devices):
            write_client_home(home, alias=name, server=dev.server, user=dev.user)
        yield devices, home


def _summary_core(result: object) -> dict:
    s = result.summary  # type: ignore[attr-defined]
    return {"pick": s["pick"], "pick_reason": s["pick_reason"].split("; least")[0],
            "candidates": [(c["name"], c.get("status"), c.get("fits"), c.get("accuracy"),
                            _size(c["name"], c)) for c in s["candidates"]],
            "fidelity": {n: (d["status"], _size(n, d)) for n, d in s["details"].items()},
            "not_planned": s["not_planned"], "original": s["original"], "data": s["data"]}


def _size(name: str, c: dict) -> object:
    """The built model's size; an OpenVINO IR's to 0.1 %: its XML names generated nodes with a
    process-wide counter (Constant_25543), so one model's IR differs by a few bytes from one
    process to the next (the weights, in the .bin, are the same)."""
    size = c.get("size_bytes")
    if size is None or "openvino" not in name:
        return size
    return pytest.approx(size, rel=1e-3)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ray_search_gives_the_in_process_pick_and_summary(ray_cluster: str, tmp_path: Path) -> None:
    import edgeship

    kw = {"data": DIGITS_TEST, "prefer": "size", "cache": False, **QUICK}
    here = edgeship.compress(DIGITS, "x86-avx512-vnni", **kw)  # type: ignore[arg-type]
    there = edgeship.compress(DIGITS, "x86-avx512-vnni", ray=ray_cluster,  # type: ignore[arg-type]
                              output=tmp_path / "out", **kw)
    assert there.measured_on["built_on"]["kind"] == "ray"
    assert there.measured_on["built_on"]["workers_used"] >= 1
    assert here.pick is not None and there.pick is not None
    assert _summary_core(there) == _summary_core(here)
    for a, b in zip(here.candidates, there.candidates):  # same judge, same numbers
        assert (a.evaluation is None) == (b.evaluation is None)
        if a.evaluation is not None:
            assert a.evaluation.fidelity.value == b.evaluation.fidelity.value
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["pick"] == here.pick.name and (tmp_path / "out" / "report.html").is_file()


def test_ray_missing_is_one_line_exit_4(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None; from edgeship.cli import main; "
            f"main(['compress', {str(DIGITS)!r}, '--device', 'x86-avx512-vnni', '--output', "
            f"{str(tmp_path / 'out')!r}, '--ray', 'auto'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 4, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'edgeship[ray]'" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def _kill_builds(name: str, times: int, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the Ray worker running candidate ``name`` (its process title), ``times`` times.

    A warm worker builds the digits candidate in a fraction of a second, so the watch must be
    quick: Ray's worker processes (title ``ray::…``) are re-read every 2 ms, /proc is rescanned
    for new ones every 50 ms, and a match is frozen (SIGSTOP) at once, then killed mid-candidate.
    """
    title = f"ray::edgeship-build:{name}".encode()
    workers: set[int] = set()
    rescan = 0.0
    while len(killed) < times and not stop.is_set():
        if time.monotonic() >= rescan:
            workers = {int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in killed
                       and _cmdline(int(p)).startswith(b"ray::")}
            rescan = time.monotonic() + 0.05
        for pid in sorted(workers):
            if _cmdline(pid).startswith(title):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
                    time.sleep(0.05)  # the candidate has started, it is not at its first line
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                workers.discard(pid)
        time.sleep(0.002)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("kills", [1, 2])
def test_a_killed_worker_is_retried_once_then_recorded(ray_cluster: str, kills: int) -> None:
    import edgeship

    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_builds, args=("int8-onnx", kills, killed, stop))
    killer.start()
    try:
        result = edgeship.compress(DIGITS, "x86-avx512-vnni", data=DIGITS_TEST, recipes=INT8,
                                   ray=ray_cluster, cache=False, **QUICK)  # type: ignore[arg-type]
    finally:
        stop.set()
        killer.join()
    assert len(killed) == kills
    assert _stale_task_dirs() == []  # the killed workers' temp dirs were swept
    cand = result.candidates[0]
    if kills == 1:  # the retry built it
        assert cand.error is None and cand.measured, cand.error
    else:
        assert not cand.measured and cand.error is not None
        assert "Ray worker" in cand.error and "retried once" in cand.error, cand.error


def _agents_monitor(devices: list[PlainDevice], seen: dict[str, int], stop: threading.Event) -> None:
    """The most measurement agents seen at once on each device."""
    while not stop.is_set():
        for name, dev in zip(DEVICES, devices):
            seen[name] = max(seen.get(name, 0), len(dev.agents()))
        time.sleep(0.02)


FLEET_JOB = """
import json, sys
from edgeship.fleet import bench_fleet
hosts = sys.argv[3].split(",")
fleet = bench_fleet(sys.argv[1], hosts, lab=sys.argv[2], runs=20, warmup=2, min_seconds=0.0,
                    threads=1, jobs=8)
print(json.dumps([[h.target, h.exit_code, h.error] for h in fleet.hosts]))
"""


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.timeout(300)
def test_two_jobs_leasing_eight_devices_never_share_one(
        ray_cluster: str, lab_devices: tuple[list[PlainDevice], Path], tmp_path: Path) -> None:
    devices, home = lab_devices
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"} | {"HOME": str(home)}
    hosts = tmp_path / "hosts"
    hosts.write_text("# the lab\n" + "\n".join(DEVICES) + "\n")
    reg = run_cli_process("lab", "register", hosts, "--address", ray_cluster, "--cooldown", "0.3",
                          "--json", env=env, timeout=120)
    assert reg.returncode == 0, reg.stderr
    assert json.loads(reg.stdout)["devices"] == sorted(DEVICES)

    seen: dict[str, int] = {}
    stop = threading.Event()
    monitor = threading.Thread(target=_agents_monitor, args=(devices, seen, stop))
    monitor.start()
    try:
        backwards = tmp_path / "hosts-backwards"
        backwards.write_text("\n".join(DEVICES[::-1]) + "\n")
        jobs = [  # one job through the CLI, one through the API, in opposite orders
            subprocess.Popen(cli_argv("bench", DIGITS, "--hosts-file", backwards, "--lab", ray_cluster,
                                      "--runs", "20", "--warmup", "2", "--min-seconds", "0",
                                      "--threads", "1", "--json"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             cwd=tmp_path),
            subprocess.Popen([sys.executable, "-c", FLEET_JOB, str(DIGITS), ray_cluster,
                              ",".join(DEVICES)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)]
        outs = [j.communicate(timeout=240) for j in jobs]
    finally:
        stop.set()
        monitor.join()
    for job, (_, err) in zip(jobs, outs):
        assert job.returncode == 0, err
    cli = json.loads(outs[0][0].splitlines()[-1])
    assert [h["exit_code"] for h in cli["hosts"]] == [0] * 8, cli
    assert all(code == 0 for _, code, _ in json.loads(outs[1][0].splitlines()[-1])), outs[1][0]
    assert set(seen) == set(DEVICES) and max(seen.values()) == 1, seen  # agents ran, one at a time

    from edgeship.lab import history, status

    leases = history(ray_cluster)
    assert len(leases) == 16 and {h["outcome"] for h in leases} == {"ok"}
    assert len({h["pid"] for h in leases}) == 2  # two jobs
    for name in DEVICES:
        mine = sorted((h["since"], h["until"]) for h in leases if h["device"] == name)
        assert len(mine) == 2
        assert mine[1][0] >= mine[0][1] + 0.3 - 0.05, (name, mine)  # no overlap, cooldown kept
    assert all(d["holder"] is None for d in status(ray_cluster)["devices"])
    shown = run_cli_process("lab", "status", "--address", ray_cluster, "--json", env=env,
                            timeout=120)
    assert shown.returncode == 0, shown.stderr
    lab = json.loads(shown.stdout)
    assert {d["device"] for d in lab["devices"]} >= set(DEVICES) and lab["leases"] >= 16
    assert all(d["in_cluster"] and d["holder"] is None for d in lab["devices"])


@pytest.mark.timeout(180)  # a Ray cluster that stops answering fails in minutes
def test_registering_a_device_the_cluster_lacks_says_how_to_declare_it(
        ray_cluster: str, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("lab-0\npi5-nowhere\n")
    proc = run_cli_process("lab", "register", hosts, "--address", ray_cluster, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pi5-nowhere" in proc.stderr and "ray start --address" in proc.stderr
    assert '{"device:pi5-nowhere": 1}' in proc.stderr and "lab-0" not in proc.stderr


def _stale_task_dirs() -> list[Path]:
    """Candidate-task temp dirs whose worker is dead (see edgeship.compression.scaleout.sweep_stale)."""
    from edgeship.compression.scaleout import TMP_PREFIX, _alive

    return [p for p in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*-*")
            if not _alive(int(p.name[len(TMP_PREFIX):].split("-", 1)[0]))]


def _ray_builds() -> list[int]:
    """Ray workers running a candidate task now (their process title names it)."""
    found = []
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if pid.isdigit() and Path(f"/proc/{pid}/cmdline").read_bytes().startswith(
                    b"ray::edgeship-build:"):
                found.append(int(pid))
    return found


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.timeout(240)
def test_ctrl_c_during_a_leased_measurement_leaves_nothing(
        ray_cluster: str, lab_devices: tuple[list[PlainDevice], Path], tmp_path: Path) -> None:
    devices, home = lab_devices
    dev = devices[0]
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"} | {"HOME": str(home)}
    hosts = tmp_path / "hosts"
    hosts.write_text("lab-0\n")
    run_cli_process("lab", "register", hosts, "--address", ray_cluster, env=env,
                    timeout=120).check_returncode()
    out = tmp_path / "out"
    proc = subprocess.Popen(
        cli_argv("compress", DIGITS, "--device", "raspberry-pi-5", "--data", DIGITS_TEST,
                 "--target", "lab-0", "--lab", ray_cluster, "--ray", ray_cluster, "--no-cache",
                 "--runs", "100000", "--min-seconds", "60", "--threads", "1", "-o", out),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        wait_until(lambda: dev.agents() or proc.poll() is not None, "an agent on lab-0", 150)
        assert proc.poll() is None, proc.communicate()[1]
        building = _ray_builds()  # the other candidates, still building on the workers
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert building, "no candidate was still building when Ctrl-C came"
    assert _stale_task_dirs() == []  # the cancelled workers' temp dirs were swept
    wait_until(lambda: not _ray_builds(), "the candidate tasks cancelled", 30)
    wait_until(lambda: not dev.agents(), "no agent left on lab-0", 30)
    assert dev.temp_files() == []
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    from edgeship.lab import status

    wait_until(lambda: all(d["holder"] is None for d in status(ray_cluster)["devices"]),
               "the lease freed", 30)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_rerun_on_ray_takes_the_builds_from_the_cache(ray_cluster: str, tmp_path: Path) -> None:
    import edgeship

    from tests.test_search_cost import TWO

    cache = tmp_path / "cache"
    first = edgeship.compress(DIGITS, "x86-avx512-vnni", data=DIGITS_TEST, recipes=TWO,
                              cache=cache, **QUICK)  # type: ignore[arg-type]
    second = edgeship.compress(DIGITS, "x86-avx512-vnni", data=DIGITS_TEST, recipes=TWO,
                               cache=cache, ray=ray_cluster,
                               budget=edgeship.Budget(max_accuracy_drop=0.5),
                               **QUICK)  # type: ignore[arg-type]
    fresh = edgeship.compress(DIGITS, "x86-avx512-vnni", data=DIGITS_TEST, recipes=TWO,
                              cache=tmp_path / "other", ray=ray_cluster,
                              **QUICK)  # type: ignore[arg-type]
    assert [c.cached for c in first.candidates] == [False, False]
    assert [c.cached for c in second.candidates] == [True, True]  # shipped to the workers
    assert [c.cached for c in fresh.candidates] == [False, False]
    assert len(list((tmp_path / "other").iterdir())) == 2  # the workers' builds stored here
    for a, b in zip(first.candidates, second.candidates):
        assert a.evaluation.fidelity.value == b.evaluation.fidelity.value


@pytest.mark.slow
@pytest.mark.ssh
@pytest.mark.timeout(180)
def test_a_device_that_drops_mid_lease_frees_it(
        ray_cluster: str, lab_devices: tuple[list[PlainDevice], Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeship.fleet import bench_fleet
    from edgeship.lab import history, register, status

    devices, home = lab_devices
    dev = devices[1]
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    hosts = tmp_path / "hosts"
    hosts.write_text("lab-1\n")
    register(hosts, ray_cluster)
    before = len(history(ray_cluster))
    found: list[object] = []
    job = threading.Thread(target=lambda: found.append(bench_fleet(
        DIGITS, ["lab-1"], lab=ray_cluster, runs=100000, min_seconds=60, threads=1)))
    job.start()
    try:
        wait_until(lambda: dev.agents(), "an agent on lab-1", 120)
        held = {d["device"]: d["holder"] for d in status(ray_cluster)["devices"]}
        assert held["lab-1"] is not None and held["lab-1"]["pid"] == os.getpid()
        dev.server.drop_connections()
        job.join(timeout=90)
    finally:
        job.join()
    fleet = found[0]
    assert fleet.hosts[0].exit_code == 3, fleet.hosts[0].error  # type: ignore[attr-defined]
    assert all(d["holder"] is None for d in status(ray_cluster)["devices"])
    assert len(history(ray_cluster)) == before + 1

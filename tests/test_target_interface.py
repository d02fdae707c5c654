"""The Target interface on this machine: LocalTarget implements all of it, honestly."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from edgeship.core.errors import InternalError, RemoteCommandFailed, UnsupportedError
from edgeship.targets import LocalTarget
from edgeship.targets.facts import DeviceFacts
from edgeship.targets.staging import deploy_to


def test_local_python_is_this_interpreter_and_can_be_switched() -> None:
    with LocalTarget() as here:
        assert here.python == sys.executable
        assert here.stage(Path(__file__))[1] == [sys.executable]
        here.use_python("/opt/venv/bin/python")
        assert here.python == "/opt/venv/bin/python"


def test_local_remote_dir_is_private_and_removed_on_close(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("payload")
    here = LocalTarget()
    base = Path(here.remote_dir)
    assert base.is_dir() and (base.stat().st_mode & 0o777) == 0o700
    assert here.put(source, "a.txt") == len("payload")
    assert (base / "a.txt").read_text() == "payload"
    assert here.put_bytes(b"xyz", "b.bin") == 3
    here.get("b.bin", tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == b"xyz"
    assert sorted(p.name for p in base.iterdir()) == ["a.txt", "b.bin"]  # no temporaries
    here.close()
    assert not base.exists()


def test_run_json_reads_the_last_line_and_raises_reported_errors() -> None:
    with LocalTarget() as here:
        ok = "print('chatter'); import json; print(json.dumps({'answer': 42}))"
        payload, res = here.run_json([sys.executable, "-c", ok], what="the check")
        assert payload == {"answer": 42} and res.exit_code == 0
        error = {"error": {"type": "InternalError", "problem": "a bug", "fix": "report it",
                           "traceback": "Traceback ..."}}
        bad = f"import sys; print({json.dumps(json.dumps(error))}); sys.exit(70)"
        with pytest.raises(InternalError, match="a bug") as err:
            here.run_json([sys.executable, "-c", bad], what="the agent")
        assert err.value.traceback_text == "Traceback ..."


def test_run_json_says_how_a_program_failed() -> None:
    with LocalTarget() as here:
        silent = "import sys; sys.stderr.write('boom\\n'); sys.exit(3)"
        with pytest.raises(RemoteCommandFailed, match=r"the check on local failed \(exit 3\): boom"):
            here.run_json([sys.executable, "-c", silent], what="the check")
        with pytest.raises(RemoteCommandFailed, match="was killed"):
            here.run_json([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"],
                          what="the check")
        with pytest.raises(UnsupportedError, match="has no 'sh'"):
            here.run_json(["sh", "-c", "exit 127"], what="the check")


def test_interrupt_stops_a_local_command_running_in_another_thread() -> None:
    here = LocalTarget()
    caught: list[BaseException] = []

    def runner() -> None:
        try:
            here.run(["sleep", "60"])
        except BaseException as exc:  # noqa: BLE001 - the test inspects what was raised
            caught.append(exc)

    thread = threading.Thread(target=runner)
    thread.start()
    deadline = time.monotonic() + 10
    while not here._running and time.monotonic() < deadline:
        time.sleep(0.01)
    proc = next(iter(here._running))
    here.interrupt()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], KeyboardInterrupt)
    assert proc.poll() is not None  # the sleep itself was stopped, not left behind
    here.close()


def test_probe_gives_device_facts_whose_json_form_round_trips() -> None:
    with LocalTarget() as here:
        facts = here.probe()
    assert isinstance(facts, DeviceFacts) and facts.machine and facts.cpu_count
    assert facts.backends is not None and "onnxruntime" in facts.backends
    assert DeviceFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


def test_device_facts_keep_unknown_keys_and_derive_the_userland() -> None:
    facts = DeviceFacts.from_dict({"machine": "aarch64", "python_bits": 32, "libc": "glibc 2.31",
                                   "python": "3.9.2", "npu_driver": "rknpu 0.9"})
    assert facts.userland == "armv7l" and facts.arch == "aarch64"
    assert facts.glibc == (2, 31) and facts.python_version == (3, 9, 2)
    assert facts.extra == {"npu_driver": "rknpu 0.9"}
    assert facts.to_dict()["npu_driver"] == "rknpu 0.9"
    assert DeviceFacts.from_dict({"machine": "x86_64", "libc": "musl"}).glibc is None


def test_a_local_deploy_stages_into_the_private_dir_and_skips_what_is_there(
    linear_onnx: Path,
) -> None:
    with LocalTarget() as here:
        first = deploy_to(here, linear_onnx)
        assert Path(first.model_path).read_bytes() == linear_onnx.read_bytes()
        assert Path(first.model_path).is_relative_to(here.remote_dir)
        again = deploy_to(here, linear_onnx)
        assert again.files_sent == [] and again.bytes_sent == 0

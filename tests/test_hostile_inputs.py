"""Hostile and broken user files: each is one line on stderr and exit 2, never a traceback and
never exit 1 (which CI reads as "a budget was missed").  An unexpected exception exits 70 and
says where its traceback went; Ctrl-C prints "interrupted" and exits 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.cli import run_cli_process
from tests.fixtures.hostile import npz_declaring, png, reshape_fails_model

REPO = Path(__file__).parent.parent
FASHION = REPO / "examples" / "models" / "fashion_mnist_cnn.onnx"  # has a preprocessing manifest
QUICK = ["--runs", "1", "--warmup", "0", "--min-seconds", "0"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        module: str = "edgeship.cli") -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, cwd=cwd, env={**os.environ, **(env or {})}, module=module)


def assert_one_line(proc: subprocess.CompletedProcess[str], code: int = 2,
                    *words: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# -- the measurement agent -----------------------------------------------------------------------
def test_an_inference_error_in_the_agent_is_its_json_error_with_the_backends_message(
        tmp_path: Path) -> None:
    model = reshape_fails_model(tmp_path / "fails.onnx")
    proc = run([str(model), *QUICK], tmp_path, module="edgeship.runtime.bench")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "ModelError" and error["exit_code"] == 2
    assert "onnxruntime" in error["problem"] and "requested shape:{2,3}" in error["problem"]


def test_the_host_re_raises_the_agents_inference_error_as_one_line(tmp_path: Path) -> None:
    model = reshape_fails_model(tmp_path / "fails.onnx")
    proc = run(["bench", str(model), *QUICK], tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr
    assert "requested shape:{2,3}" in errors[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1"])
def test_the_agent_refuses_a_non_finite_or_negative_min_seconds(value: str, tmp_path: Path) -> None:
    proc = run([str(FASHION), f"--min-seconds={value}"], tmp_path, module="edgeship.runtime.bench")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--min-seconds" in json.loads(proc.stdout)["error"]["problem"]
    assert_one_line(run(["bench", str(FASHION), f"--min-seconds={value}"], tmp_path), 2,
                    "--min-seconds")


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-5"])
def test_timeout_must_be_a_positive_finite_number(value: str, tmp_path: Path) -> None:
    assert_one_line(run(["bench", str(FASHION), f"--timeout={value}", *QUICK], tmp_path), 2,
                    "--timeout")


# -- .npz files ------------------------------------------------------------------------------------
def _npz_cases(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 1, 28, 28), np.float32))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    not_zip = tmp_path / "not-zip.npz"
    not_zip.write_bytes(b"this is not a zip archive at all\n")
    return {
        "truncated": truncated,
        "not-zip": not_zip,
        "1e11-samples": npz_declaring(tmp_path / "huge.npz", (10**11, 1, 28, 28)),
        "1e11-deflated": npz_declaring(tmp_path / "huge-z.npz", (10**11, 1, 28, 28),
                                       compressed=True),
    }


@pytest.mark.parametrize("case", ["truncated", "not-zip", "1e11-samples", "1e11-deflated"])
def test_a_broken_npz_is_one_line_exit_2_before_any_allocation(case: str, tmp_path: Path) -> None:
    path = _npz_cases(tmp_path)[case]
    out = tmp_path / "q.onnx"
    line = assert_one_line(run(["quantize", str(FASHION), "--calib", str(path), "-o", str(out)],
                               tmp_path), 2, path.name)
    assert "numpy.savez" in line
    assert not out.exists()


def test_an_npz_header_is_checked_against_the_file_size_in_process(tmp_path: Path) -> None:
    import tracemalloc

    from edgeship.core.errors import ConfigError
    from edgeship.runtime.inputs import read_npz

    path = npz_declaring(tmp_path / "huge.npz", (10**11, 1, 8, 8))
    tracemalloc.start()
    with pytest.raises(ConfigError, match=r"declares shape \(100000000000, 1, 8, 8\)"):
        read_npz(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 10 * 2**20


def test_nan_calibration_data_is_refused(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    x[3, 0, 5, 5] = np.nan
    np.savez(tmp_path / "nan.npz", x=x)
    out = tmp_path / "q.onnx"
    assert_one_line(run(["quantize", str(FASHION), "--calib", str(tmp_path / "nan.npz"),
                         "-o", str(out)], tmp_path), 2, "NaN")
    assert not out.exists()


# -- text files ------------------------------------------------------------------------------------
def test_a_non_utf8_profile_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\narch: x86_64\n")
    assert_one_line(run(["profiles", "show", str(tmp_path / "latin1.yaml")], tmp_path), 2,
                    "not UTF-8")


def test_a_non_utf8_hosts_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_bytes(b"pi@caf\xe9.local\n")
    assert_one_line(run(["bench", str(FASHION), "--hosts-file", str(tmp_path / "hosts")],
                        tmp_path), 2, "not UTF-8")


def test_yaml_nested_5000_deep_is_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    assert_one_line(run(["profiles", "show", str(deep)], tmp_path), 2, "nests too deeply")
    from edgeship.core.errors import ConfigError
    from edgeship.recipe import load_recipes

    with pytest.raises(ConfigError, match="nests too deeply"):
        load_recipes(deep)


@pytest.mark.parametrize("case", ["nested-100000", "int-5000-digits"])
def test_a_hostile_report_json_is_one_line(case: str, tmp_path: Path) -> None:
    result = tmp_path / "result.json"
    result.write_text("[" * 100000 + "]" * 100000 if case == "nested-100000"
                      else '{"schema": "edgeship.benchmark/1", "runs": ' + "9" * 5000 + "}")
    assert_one_line(run(["report", str(result), "-o", str(tmp_path / "r.html")], tmp_path), 2,
                    "result.json")
    assert not (tmp_path / "r.html").exists()


# -- images ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def png_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """560 KB-class PNG declaring 24000 x 24000 grey pixels (576 MB inflated)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(png(24000, 24000))
    return path


def test_a_png_declaring_24000_squared_pixels_is_refused_before_decoding(
        png_bomb: Path, tmp_path: Path) -> None:
    import tracemalloc

    from edgeship.core.errors import ConfigError
    from edgeship.runtime.images import read_image

    tracemalloc.start()
    with pytest.raises(ConfigError, match="too large.*576 MP.*EDGESHIP_MAX_IMAGE_PIXELS"):
        read_image(png_bomb)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * png_bomb.stat().st_size  # the file, not its pixels
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(png_bomb.read_bytes())
    assert_one_line(run(["quantize", str(FASHION), "--calib", str(folder),
                         "-o", str(tmp_path / "q.onnx")], tmp_path), 2, "too large")


def test_the_pixel_cap_is_overridable(tmp_path: Path) -> None:
    from edgeship.core.errors import ConfigError
    from edgeship.runtime.images import read_image

    path = tmp_path / "small.png"
    path.write_bytes(png(100, 100))
    assert read_image(path).shape == (100, 100)
    with pytest.raises(ConfigError, match="too large"):
        read_image(path, max_pixels=9999)


def test_png_data_is_inflated_only_as_far_as_the_header_implies(tmp_path: Path) -> None:
    """A 10 x 10 image followed by 256 MB of compressed zeros decodes to its 100 pixels
    without inflating the rest."""
    import tracemalloc

    from edgeship.runtime.images import read_image

    rows = b"".join(b"\0" + bytes(range(i * 10, i * 10 + 10)) for i in range(10))
    path = tmp_path / "tail.png"
    path.write_bytes(png(10, 10, rows=rows, extra=256 * 2**20))
    tracemalloc.start()
    image = read_image(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert image.tolist() == [list(range(i * 10, i * 10 + 10)) for i in range(10)]
    assert peak < 16 * 2**20


def test_quantize_static_calibrates_on_an_image_folder(tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    images = REPO / "examples" / "edge_app" / "images"
    proc = run(["quantize", str(FASHION), "--mode", "static", "--calib", str(images),
                "-o", str(out), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    calibration = json.dumps(manifest)
    assert str(images) in calibration and '"random": false' in calibration
    assert len(list(images.glob("*.png"))) == json.loads(proc.stdout)["calibration"]["samples"]


# -- unexpected exceptions and Ctrl-C --------------------------------------------------------------
CRASH = """
import sys
import edgeship.profiles as profiles
def broken(*args, **kwargs):
    raise ZeroDivisionError("a bug")
profiles.list_profiles = broken
from edgeship.cli import main
main(["profiles", "list"])
"""


def test_an_unexpected_exception_exits_70_and_says_where_its_traceback_is(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-c", CRASH], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, "XDG_STATE_HOME": str(state)})
    line = assert_one_line(proc, 70, "ZeroDivisionError", "traceback saved to")
    saved = Path(line.split("traceback saved to ")[1].split(". Fix")[0])
    assert saved.parent == state / "edgeship" / "crash"
    assert "Traceback (most recent call last)" in saved.read_text()
    assert "ZeroDivisionError: a bug" in saved.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]  # nothing in the cwd


SLEEPER = """
import sys, time
import edgeship.profiles as profiles
def slow(*args, **kwargs):
    print("ready", file=sys.stderr, flush=True)
    time.sleep(60)
profiles.list_profiles = slow
from edgeship.cli import main
main(["profiles", "list"])
"""


def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    assert proc.stderr is not None
    assert proc.stderr.readline().strip() == "ready"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 130
    assert rest.strip() == "interrupted"


def test_the_readme_documents_exit_codes_70_and_130() -> None:
    readme = (REPO / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("|")]
    assert any("70" in line and "traceback" in line for line in table)
    assert any("130" in line and "nterrupted" in line for line in table)


AGENT_BUG = """
import sys
import edgeship.runtime.bench as bench
def broken(*args, **kwargs):
    raise ZeroDivisionError("a bug")
bench.measure = broken
sys.exit(bench.main(sys.argv[1:]))
"""


def test_a_bug_in_the_agent_is_its_json_error_with_exit_70_and_the_traceback(
        tmp_path: Path) -> None:
    from edgeship.bench import parse_agent_output
    from edgeship.core.errors import InternalError

    proc = subprocess.run([sys.executable, "-c", AGENT_BUG, str(FASHION)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 70 and "Traceback" not in proc.stderr, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "InternalError" and "ZeroDivisionError: a bug" in error["problem"]
    assert "Traceback (most recent call last)" in error["traceback"]
    with pytest.raises(InternalError, match="ZeroDivisionError: a bug") as raised:
        parse_agent_output(proc.stdout, proc.stderr, proc.returncode, "pi5")
    assert raised.value.exit_code == 70


def test_the_cli_saves_the_traceback_an_agent_sent_back(tmp_path: Path) -> None:
    agent = json.dumps({"schema": "edgeship.benchmark/1", "error": {
        "type": "InternalError", "message": "internal error in the measurement agent (KeyError: 'x')",
        "problem": "internal error in the measurement agent (KeyError: 'x')",
        "fix": "this is a bug in edgeship; please report it with the traceback", "exit_code": 70,
        "traceback": "Traceback (most recent call last):\n  File \"bench.py\", line 1\nKeyError: 'x'\n"}})
    script = ("import sys\nimport edgeship.bench as b\n"
              f"def fake(*a, **k):\n    b.parse_agent_output({agent!r}, '', 70, 'pi5')\n"
              "b.run_benchmark = fake\n"
              "from edgeship.cli import main\nmain(sys.argv[1:])\n")
    state = tmp_path / "state"
    proc = subprocess.run([sys.executable, "-c", script, "bench", str(FASHION)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "XDG_STATE_HOME": str(state)})
    line = assert_one_line(proc, 70, "internal error in the measurement agent", "traceback saved to")
    saved = Path(line.split("traceback saved to ")[1].split(". Fix")[0])
    assert "KeyError: 'x'" in saved.read_text() and "the measurement agent's traceback" in saved.read_text()

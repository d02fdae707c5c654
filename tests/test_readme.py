"""The README runs as written: its install in a fresh virtual environment, its CLI lines and its
Python snippets, on the bundled models (in a scratch directory: the checkout is never written).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = ("examples/models/digits_cnn.onnx", "raspberry-pi-5")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[list[str]]:
    """Each command of the README's bash blocks (split at &&), comments and the test runner's
    own setup (.ci/setup, pytest) left out."""
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line.startswith(".ci/"):
                continue
            out += [shlex.split(part) for part in line.split("&&")]
    return out


def scratch(tmp_path: Path) -> Path:
    """A working directory where the README's relative paths resolve to the bundled examples."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    return work


def test_readme_has_the_install_the_doctor_and_the_compress():
    argvs = commands()
    assert argvs[0][:3] == ["pip", "install", "-e"] and argvs[0][3] == ".[all]"
    assert ["edgeship", "tools", "install", "converters"] in argvs
    assert ["edgeship", "doctor"] in argvs
    assert any(a[:3] == ["edgeship", "compress", EXAMPLE[0]] for a in argvs)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_python_snippets_run_on_the_bundled_models(tmp_path):
    work = scratch(tmp_path)
    for i, code in enumerate(blocks("python")):
        proc = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True,
                              text=True, timeout=800, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, f"snippet {i}:\n{code}\n{proc.stderr[-3000:]}"
        if "result.check(budget)" in code:
            # the benchmark's verdict: latency and memory only (it measures no accuracy)
            assert "all budgets met" in proc.stdout, proc.stdout
    assert sorted(p.name for p in work.iterdir() if p.name != "examples") == [
        "digits.bin", "digits.int8.onnx", "digits.int8.onnx.manifest.json", "digits.xml",
        "digits.xml.manifest.json", "out"]


def run(argv: list[str], venv_bin: Path, cwd: Path, timeout: int = 1200
        ) -> subprocess.CompletedProcess[str]:
    exe = venv_bin / argv[0]
    env = {**os.environ, "COLUMNS": "80", "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(exe), *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fresh_venv_installed_the_readme_way_builds_every_candidate(tmp_path):
    """A new virtual environment (reusing this machine's heavy wheels through
    --system-site-packages), the README's install in it, then doctor and the README's compress:
    every converter the example needs is there and no candidate fails for a missing tool."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    work = scratch(tmp_path)
    outputs = {}
    for argv in commands():
        cwd = ROOT if argv[0] == "pip" else work  # `pip install -e .` names the checkout
        proc = run(argv, bin_dir, cwd)
        assert proc.returncode == 0, f"{shlex.join(argv)}:\n{proc.stderr[-3000:]}"
        outputs[argv[1]] = proc
    edgeship = (bin_dir / "edgeship").read_text().splitlines()[0]
    assert str(env_dir) in edgeship  # the README's install put edgeship into the new venv

    doctor = run(["edgeship", "doctor", "--json", "--model", EXAMPLE[0], "--device", EXAMPLE[1]],
                 bin_dir, work)
    assert doctor.returncode == 0, doctor.stderr
    report = json.loads(doctor.stdout)
    found = {c["name"]: c for c in report["components"]}
    needed = report["needed"]["components"]
    assert {"onnx2tf", "onnx2torch", "litert-torch", "nncf", "torch-pruning"} <= set(needed)
    assert report["needed"]["missing"] == []
    assert all(found[n]["present"] and found[n]["version"] for n in needed)

    compress = outputs["compress"]
    summary = json.loads((work / "digits-pi5" / "summary.json").read_text())
    missing_tool = [c for c in summary["candidates"] if c["error"] and re.search(
        r"not installed|not importable|tools install|pip install", c["error"])]
    assert missing_tool == []
    assert "not installed" not in compress.stderr.splitlines()[0]
    names = {c["name"] for c in summary["candidates"]}
    assert {"fp32-tflite", "int8-tflite", "pruned25-int8-tflite"} <= names
    assert summary["pick"] not in (None, "fp32-onnx")  # a compressed model, not the original
    text = " ".join(compress.stderr.split())
    assert re.search(r"[0-9.]+× (faster|slower) than the original \(fp32-onnx: p50 ", text), text
    assert "drop)" in text
    lines = compress.stderr.splitlines()
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= 80  # COLUMNS=80
    # stderr is not a terminal here: one line per candidate and phase, with its time
    assert any(re.match(r" ?\d+\. fp32-tflite: building…$", line) for line in lines)
    assert any(re.match(r" ?\d+\. fp32-tflite: building done in [0-9.]+ s$", line) for line in lines)
    assert any(re.match(r" ?\d+\. int8-tflite [✓✗!] .* \([0-9.]+ s\)$", line) for line in lines)
    assert not any("Statistics collection" in line for line in lines)  # NNCF's bars, without -v

    # the report of this real search, checked by Chromium: rows aligned, nothing overflows
    from tests.test_report import layout_problems

    found = layout_problems(work / "digits-pi5" / "report.html", tmp_path, 1280)
    assert found["rows"] == len(summary["candidates"])
    assert found["problems"] == [] and found["scrolls"] == []

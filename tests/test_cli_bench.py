"""`edgeship bench --target local`: tables on stderr, JSON on stdout, exit codes as in DESIGN.md."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli_process

FAST = ["--runs", "10", "--warmup", "1", "--min-seconds", "0"]


def edgeship(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, timeout=120)


def test_bench_within_budget_exits_0_with_a_table(linear_onnx: Path) -> None:
    proc = edgeship("bench", str(linear_onnx), *FAST, "--max-latency-ms", "10000")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "latency p50" in proc.stderr and "✅" in proc.stderr


def test_missed_budget_exits_1_and_names_it(linear_onnx: Path) -> None:
    proc = edgeship("bench", str(linear_onnx), *FAST, "--max-latency-ms", "0.000001")
    assert proc.returncode == 1
    assert "❌ latency" in proc.stderr


def test_json_output_is_the_result_plus_verdict(linear_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = edgeship("bench", str(linear_onnx), *FAST, "--json", "--max-size-mb", "1",
                    "--max-memory-mb", "100000", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["schema"] == "edgeship.benchmark/1"
    assert payload["verdict"]["ok"] is True
    assert [c["name"] for c in payload["verdict"]["checks"]] == ["memory", "size"]
    assert json.loads(out.read_text()) == payload


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["bench", "missing.onnx"], 2, "does not exist"),
        (["bench", "{model}", "--max-latency-ms", "-5"], 2, "positive"),
        (["bench", "{model}", "--max-memory-mb", "lots"], 2, "must be a number"),
        (["bench", "{model}", "--max-size-mb", "nan"], 2, "positive finite"),
        (["bench", "{model}", "--percentile", "75"], 2, "--percentile must be 50, 90 or 99"),
        (["bench", "{model}", "--backend", "tensorrt"], 2, "unknown backend 'tensorrt'"),
        (["bench", "{model}", "--backend", "tflite"], 4, "cannot run onnx"),
        (["bench", "{model}", "--backend", "openvino:NPU"], 4, "not present"),
        (["bench", "{model}", "--input-shape", "x=1,a"], 2, "bad --input-shape"),
        (["bench", "{model}", "--runs", "0"], 2, "--runs must be"),
        (["bench", "{model}", "--frobnicate"], 2, "No such option"),
        (["bench", "{bad}"], 2, "cannot load"),
        (["bench", "{txt}"], 2, "cannot tell the format"),
    ],
)
def test_bad_input_gets_one_line_and_its_exit_code(
    linear_onnx: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(linear_onnx.read_bytes()[:100])
    txt = tmp_path / "model.txt"
    txt.write_text("hello")
    argv = [a.format(model=linear_onnx, bad=bad, txt=txt) for a in args]
    proc = edgeship(argv[0], *FAST, *argv[1:])  # the case's own flags win
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert "Fix:" in lines[0]
    assert "Traceback" not in proc.stderr


def test_help_lists_the_commands() -> None:
    proc = edgeship("--help")
    assert proc.returncode == 0
    for command in ("bench", "inspect"):
        assert command in proc.stdout


def test_inspect_describes_inputs_and_outputs(linear_onnx: Path) -> None:
    proc = edgeship("inspect", str(linear_onnx), "--json")
    info = json.loads(proc.stdout)
    assert info["inputs"][0]["name"] == "x" and info["inputs"][0]["shape"] == ["N", 16]
    assert info["backend"]["device"] == "CPUExecutionProvider"

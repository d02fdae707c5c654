"""What the terminal shows: tables that fit 80 columns, --wide, --version, -h, numeric option
types in --help, and the one output rule of every command that writes a file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def cli(*args: str, cwd: Path | None = None, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return run_cli_process(*args, cwd=cwd, columns=columns, env={**os.environ, "OMP_NUM_THREADS": "1"})


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]


def test_fit_table_drops_columns_by_priority_and_says_so():
    from edgeship.cli.render import Column, fit_table
    from rich.console import Console

    cols = [Column("name", 0, "left"), Column("p50 ms", 1), Column("runs on", 5, "left"),
            Column("p99 ms", 6)]
    rows = [["pruned25-int8-tflite-with-a-long-name", "0.002", "onnxruntime:CPUExecutionProvider",
             "0.0031"]] * 3
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(fit_table(cols, rows, width=80))
    narrow = console.export_text()
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "p99 ms" not in narrow.splitlines()[1] and "p50 ms" in narrow
    assert "not shown at 80 columns: runs on, p99 ms (--wide shows them)" in " ".join(narrow.split())
    wide = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    wide.print(fit_table(cols, rows, width=80, wide=True))
    assert "p99 ms" in wide.export_text() and "not shown" not in wide.export_text()


def test_doctor_fits_80_columns_and_wide_shows_where():
    narrow = cli("doctor")
    assert narrow.returncode == 0, narrow.stderr
    assert max(len(line) for line in table_lines(narrow.stderr)) <= 80
    assert "onnxruntime" in narrow.stderr and "found in" not in narrow.stderr.split("\n")[2]
    wide = cli("doctor", "--wide", columns=80)
    assert "found in" in wide.stderr


def test_doctor_json_names_each_component_with_version_location_and_fix():
    import json

    proc = cli("doctor", "--json", "--model", str(EXAMPLES / "models/digits_cnn.onnx"),
               "--device", "raspberry-pi-5")
    doc = json.loads(proc.stdout)
    by_name = {c["name"]: c for c in doc["components"]}
    assert {"onnxruntime", "openvino", "ai-edge-litert", "onnx2tf", "onnx2torch",
            "litert-torch", "nncf", "torch-pruning", "paramiko"} <= set(by_name)
    ort = by_name["onnxruntime"]
    assert ort["present"] and ort["version"] and Path(ort["location"]).is_dir()
    assert "raspberry-pi-5" in ort["devices"] and ort["formats"] == ["onnx"]
    assert by_name["onnx2torch"]["fix"] is None or by_name["onnx2torch"]["fix"] == (
        "edgeship tools install converters")
    assert doc["needed"]["device"] == "raspberry-pi-5"
    assert proc.returncode == (4 if doc["needed"]["missing"] else 0)


def test_bench_table_fits_80_columns(tmp_path):
    proc = cli("bench", str(EXAMPLES / "models/digits_cnn.onnx"), "--runs", "20", "--min-seconds",
               "0", "--max-latency-ms", "1000")
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in table_lines(proc.stderr)) <= 80


def test_version_and_short_help():
    from edgeship import __version__

    assert cli("--version").stdout.strip() == f"edgeship {__version__}"
    for argv in (["-h"], ["compress", "-h"], ["tools", "install", "-h"]):
        proc = cli(*argv)
        assert proc.returncode == 0 and proc.stdout.startswith("Usage: edgeship"), argv


def test_numeric_options_show_numeric_types_in_help():
    text = " ".join(cli("compress", "--help").stdout.split())
    for option, kind in (("--max-latency-ms", "<float>"), ("--max-accuracy-drop", "<float>"),
                         ("--runs", "<int>"), ("--min-seconds", "<float>"), ("--percentile", "<int>")):
        assert f"{option} {kind}" in text, option


@pytest.mark.parametrize("argv", [
    ["export", "{model}", "--to", "openvino"],
    ["quantize", "{model}", "--calib", "{data}"],
])
def test_an_existing_output_is_refused_without_force_in_the_same_words(argv, tmp_path):
    model = tmp_path / "digits_cnn.onnx"
    shutil.copy(EXAMPLES / "models/digits_cnn.onnx", model)
    args = [a.format(model=model, data=EXAMPLES / "data/digits_test.npz") for a in argv]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    again = cli(*args)
    assert again.returncode == 2
    line = again.stderr.strip().splitlines()[-1]
    assert line.startswith("error: output '") and line.endswith(
        "already exists. Fix: pass --force to replace it, or choose another -o"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == written
    assert cli(*args, "--force").returncode == 0


def test_export_default_output_never_overwrites_the_committed_example(tmp_path):
    before = (EXAMPLES / "models/digits_cnn.xml").read_bytes()
    proc = cli("export", str(EXAMPLES / "models/digits_cnn.onnx"), "--to", "openvino")
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (EXAMPLES / "models/digits_cnn.xml").read_bytes() == before


def test_output_naming_an_existing_directory_gets_the_default_name_inside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = cli("export", str(EXAMPLES / "models/digits_cnn.onnx"), "--to", "openvino", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["digits_cnn.bin", "digits_cnn.xml",
                                                     "digits_cnn.xml.manifest.json"]


def test_compress_says_first_which_missing_converter_will_fail_and_the_command(tmp_path):
    """onnx2tf's environment is missing (an empty tools cache): compress's first line names it
    and `edgeship tools install converters` before any candidate runs."""
    env = {**os.environ, "EDGESHIP_CACHE_DIR": str(tmp_path / "cache")}
    proc = run_cli_process(
        "compress", EXAMPLES / "models/digits_cnn.onnx", "--device", "raspberry-pi-5", "--data",
        tmp_path / "missing.npz", "-o", tmp_path / "out", timeout=120, env=env, columns=80)
    first = " ".join(proc.stderr.split("error:")[0].split())
    assert first == ("note: onnx2tf not installed: the candidates that need it will fail. "
                     "Fix: edgeship tools install converters"), proc.stderr
    assert proc.returncode == 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("verbose", [False, True])
def test_nncf_progress_bars_show_only_with_v(verbose, tmp_path):
    argv = ["-v"] if verbose else []
    proc = cli(*argv, "quantize", str(EXAMPLES / "models/digits_cnn.xml"), "--backend", "openvino",
               "--calib", str(EXAMPLES / "data/digits_test.npz"), "-o", str(tmp_path / "q.xml"))
    assert proc.returncode == 0, proc.stderr
    assert ("Statistics collection" in proc.stderr) is verbose, proc.stderr
    assert proc.stdout == ""

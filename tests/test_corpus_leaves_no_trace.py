"""A user's files are read-only and outputs are the only writes: every command run on corpus
models leaves the model's sha256 as it was and writes nothing into the working directory or
$TMPDIR (each pointed at a fresh, empty folder here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.corpus.fetch import MODELS, sha256_file
from tests.fixtures.corpus import ENTRIES, corpus_model

FAST = ["--runs", "3", "--warmup", "1", "--min-seconds", "0"]


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_commands_on_corpus_models_change_no_input_and_leave_nothing_behind(tmp_path: Path) -> None:
    cwd, tmpdir, out = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "out"
    for d in (cwd, tmpdir, out):
        d.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    data = out / "chunks.npz"
    np.savez(data, input=np.zeros((2, 1, 512), np.float32), sr=np.array(16000, np.int64))
    det, vad, mel = (str(corpus_model(n)) for n in
                     ("ppocr_v4_det", "silero_vad_v4", "oww_melspectrogram_tflite"))
    commands = [
        # inspect, with and without the shapes (MACs counted, or unknown)
        ["-m", "edgeship.cli", "inspect", str(corpus_model("minilm_l6_int8"))],
        ["-m", "edgeship.cli", "inspect", det, "--input-shape", "x=1,3,96,96", "--json"],
        ["-m", "edgeship.cli", "inspect", mel],
        # bench: onnxruntime's profiling pass for node coverage, the TFLite resize, --data, -o
        ["-m", "edgeship.cli", "bench", det, *FAST, *ENTRIES["ppocr_v4_det"].flags],
        ["-m", "edgeship.cli", "bench", mel, *FAST, *ENTRIES["oww_melspectrogram_tflite"].flags],
        ["-m", "edgeship.cli", "bench", vad, *FAST, "--data", str(data), "--input-value", "h=0",
         "--input-value", "c=0", "-o", str(out / "result.json")],
        ["-m", "edgeship.cli", "bench", vad, *FAST, "--backend", "openvino",
         "--input-shape", "input=1,512", "--input-shape", "h=2,1,64", "--input-shape", "c=2,1,64",
         "--input-value", "sr=16000"],
        # the agent itself, and refusals (which must not write either)
        ["-m", "edgeship.runtime.bench", det, *FAST, "--input-shape", "x=1,3,64,64"],
        ["-m", "edgeship.runtime.bench", vad, *FAST],
        ["-m", "edgeship.cli", "bench", vad, *FAST, "--input-shape", "input=1,512", "-o", vad],
        # onnxruntime's quant_pre_process: its failing shape inference wrote into the cwd
        ["-m", "edgeship.cli", "quantize", str(corpus_model("ppocr_v3_det")), "--mode", "dynamic",
         "-o", str(out / "q.onnx")],
    ]
    inputs = [corpus_model(n) for n in ENTRIES]
    before = {p: sha256_file(p) for p in inputs}
    for argv in commands:
        proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode in (0, 2, 4), (argv, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (argv, proc.stderr[-2000:])
        assert everything_under(cwd) == [], argv
        assert everything_under(tmpdir) == [], argv
    assert {p: sha256_file(p) for p in inputs} == before
    assert all(before[corpus_model(n)] == MODELS[n].sha256 for n in ENTRIES)
    assert (out / "result.json").is_file()

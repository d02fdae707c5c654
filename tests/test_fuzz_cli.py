"""Property-based fuzzing of the CLI's inputs: mutated model files, profile YAMLs, budget and
shape strings.  Whatever comes in, the CLI answers with a documented exit code and, on error,
exactly one line naming the problem and the fix: never a traceback, never a crash.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 4}
FUZZ = settings(max_examples=70, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def edgeship(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeship.cli", *args],
                          capture_output=True, text=True, timeout=120)


def assert_clean(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode in DOCUMENTED_EXIT_CODES, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if proc.returncode not in (0, 1):
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
        assert "Fix:" in lines[0]


@pytest.fixture(scope="module")
def seed_models(linear_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """One valid model per format to mutate."""
    import openvino as ov

    out = tmp_path_factory.mktemp("seeds")
    ov.save_model(ov.convert_model(str(linear_onnx)), str(out / "m.xml"), compress_to_fp16=False)
    seeds = {".onnx": linear_onnx.read_bytes(), ".xml": (out / "m.xml").read_bytes()}
    bundled = Path(__file__).parent.parent / "examples" / "models" / "digits_cnn.tflite"
    if bundled.exists():
        seeds[".tflite"] = bundled.read_bytes()
    return seeds


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, int, bytes]:
    suffix = draw(st.sampled_from([".onnx", ".xml", ".tflite"]))
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "garbage"]))
    position = draw(st.integers(min_value=0, max_value=10**6))
    payload = draw(st.binary(min_size=1, max_size=64))
    return suffix, kind, position, payload


def mutate(data: bytes, kind: str, position: int, payload: bytes) -> bytes:
    pos = position % max(len(data), 1)
    if kind == "truncate":
        return data[:pos]
    if kind == "flip":
        return data[:pos] + bytes(b ^ 0xFF for b in payload[: len(data) - pos]) + data[pos + len(payload):]
    if kind == "insert":
        return data[:pos] + payload + data[pos:]
    return payload * (1 + position % 50)


@FUZZ
@given(case=mutations())
def test_mutated_model_files_fail_cleanly(
    case: tuple[str, str, int, bytes], seed_models: dict[str, bytes], tmp_path: Path
) -> None:
    suffix, kind, position, payload = case
    seed = seed_models.get(suffix, seed_models[".onnx"])
    model = tmp_path / f"fuzz{suffix}"
    model.write_bytes(mutate(seed, kind, position, payload))
    if suffix == ".xml":  # the IR's weights stay valid; the graph description is what is mutated
        model.with_suffix(".bin").write_bytes(b"\0" * 256)
    assert_clean(edgeship("inspect", str(model)))


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


@FUZZ
@given(
    flag=st.sampled_from(["--max-latency-ms", "--max-memory-mb", "--max-size-mb", "--percentile",
                          "--input-shape"]),
    budget=budget_values,
    shape=shape_values,
)
def test_budget_and_shape_strings_fail_cleanly(
    flag: str, budget: str, shape: str, linear_onnx: Path
) -> None:
    value = shape if flag == "--input-shape" else budget
    if value.startswith("-") and value not in ("-1",):
        value = " " + value  # keep it a value, not an option
    proc = edgeship("bench", str(linear_onnx), "--runs", "1", "--warmup", "0", "--min-seconds", "0",
                    f"{flag}={value}")
    assert_clean(proc)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False),
                         st.text(max_size=10), st.lists(st.text(max_size=5), max_size=3))


@FUZZ
@given(data=st.data())
def test_mutated_profile_yamls_fail_cleanly(data: st.DataObject, tmp_path: Path) -> None:
    import yaml

    base = Path(__file__).parent.parent / "device_profiles" / "raspberry-pi-5.yaml"
    profile = yaml.safe_load(base.read_text())
    action = data.draw(st.sampled_from(["drop", "retype", "add", "text"]))
    keys = sorted(profile)
    key = data.draw(st.sampled_from(keys))
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
    assert_clean(edgeship("profiles", "show", str(path)))

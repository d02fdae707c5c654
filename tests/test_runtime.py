"""edgeship.runtime: one call for every format, honest about what ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgeship import runtime
from edgeship.runtime.errors import ConfigError, ModelError, UnsupportedError
from edgeship.runtime.inputs import parse_input_shapes, random_inputs

from tests.fixtures.hostcpu import cpu_flags


def test_load_picks_backend_from_suffix(linear_onnx: Path) -> None:
    sess = runtime.load(linear_onnx)
    assert sess.info.backend == "onnxruntime"
    assert sess.info.device == "CPUExecutionProvider"
    assert [s.name for s in sess.inputs] == ["x"]
    assert sess.inputs[0].shape == ("N", 16)


def test_run_returns_named_outputs_matching_numpy(linear_onnx: Path) -> None:
    import onnx
    from onnx import numpy_helper

    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(linear_onnx)).graph.initializer}
    x = np.random.default_rng(1).random((3, 16), dtype=np.float32)
    logits = x @ weights["W"] + weights["B"]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out = runtime.load(linear_onnx).run({"x": x})
    assert list(out) == ["probs"]
    np.testing.assert_allclose(out["probs"], expected, rtol=1e-5, atol=1e-6)


def test_openvino_runs_onnx_and_reports_device_and_precision(linear_onnx: Path) -> None:
    x = np.random.default_rng(2).random((2, 16), dtype=np.float32)
    ort_out = runtime.load(linear_onnx).run({"x": x})["probs"]
    sess = runtime.load(linear_onnx, backend="openvino", precision="fp32")
    assert sess.info.backend == "openvino"
    assert sess.info.device == "CPU"
    assert sess.info.precision == "fp32"
    np.testing.assert_allclose(sess.run({"x": x})["probs"], ort_out, atol=1e-5)


def test_openvino_reports_the_precision_it_chose_by_default(linear_onnx: Path) -> None:
    sess = runtime.load(linear_onnx, backend="openvino")
    expected = "bf16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "fp32"
    assert sess.info.precision == expected


def test_threads_are_passed_to_the_backend(linear_onnx: Path) -> None:
    sess = runtime.load(linear_onnx, backend="openvino", threads=1)
    assert sess.info.threads == 1
    assert sess.info.details["inference_num_threads"] == 1


def test_missing_accelerator_raises_instead_of_running_on_cpu(linear_onnx: Path) -> None:
    with pytest.raises(UnsupportedError, match="CUDAExecutionProvider"):
        runtime.load(linear_onnx, backend="onnxruntime:CUDAExecutionProvider")
    with pytest.raises(UnsupportedError, match="NPU"):
        runtime.load(linear_onnx, backend="openvino:NPU")


def test_wrong_input_name_dtype_and_shape_are_config_errors(fixed_linear_onnx: Path) -> None:
    sess = runtime.load(fixed_linear_onnx)
    with pytest.raises(ConfigError, match="missing \\['x'\\]"):
        sess.run({"y": np.zeros((1, 16), np.float32)})
    with pytest.raises(ConfigError, match="dtype"):
        sess.run({"x": np.zeros((1, 16), np.complex64)})
    with pytest.raises(ConfigError, match="shape \\(2, 16\\)"):
        sess.run({"x": np.zeros((2, 16), np.float32)})


def test_float64_input_is_cast_to_the_model_dtype(fixed_linear_onnx: Path) -> None:
    sess = runtime.load(fixed_linear_onnx)
    out = sess.run({"x": np.ones((1, 16))})
    assert out["probs"].dtype == np.float32


@pytest.mark.parametrize(
    ("content", "suffix", "error", "message"),
    [
        (None, ".onnx", ModelError, "does not exist"),
        (b"", ".onnx", ModelError, "is empty"),
        (b"\x08\x07garbage" * 10, ".onnx", ModelError, "cannot load"),
        (b"abc", ".pb", ModelError, "cannot tell the format"),
        (b"<net/>", ".xml", ModelError, "no weights file"),
    ],
)
def test_bad_model_files_raise_model_errors(
    tmp_path: Path, content: bytes | None, suffix: str, error: type, message: str
) -> None:
    path = tmp_path / f"m{suffix}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message):
        runtime.load(path)


def test_unknown_and_mismatched_backends(linear_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'"):
        runtime.load(linear_onnx, backend="tensorrt")
    with pytest.raises(UnsupportedError, match="cannot run onnx"):
        runtime.load(linear_onnx, backend="tflite")


def test_random_inputs_follow_dtypes_and_dynamic_batch(token_onnx: Path) -> None:
    sess = runtime.load(token_onnx)
    feeds = random_inputs(sess.inputs, seed=3, fixed={"ids": (2, 5), "mask": (2, 5)})
    assert feeds["ids"].dtype == np.int64 and feeds["ids"].shape == (2, 5)
    assert feeds["mask"].dtype == np.bool_
    assert sess.run(feeds)["pooled"].shape == (2, 4)


def test_dynamic_non_batch_dimension_needs_input_shape(token_onnx: Path) -> None:
    sess = runtime.load(token_onnx)
    with pytest.raises(ConfigError, match="--input-shape ids=1,N"):
        random_inputs(sess.inputs)


def test_random_inputs_are_reproducible(linear_onnx: Path) -> None:
    specs = runtime.load(linear_onnx).inputs
    a, b = random_inputs(specs, seed=7), random_inputs(specs, seed=7)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a["x"].shape == (1, 16)  # dynamic batch defaults to 1


@pytest.mark.parametrize("bad", ["x", "x=", "=1,2", "x=1,a", "x=0,3", "x=-1"])
def test_bad_input_shape_strings(bad: str) -> None:
    with pytest.raises(ConfigError, match="bad --input-shape"):
        parse_input_shapes([bad])

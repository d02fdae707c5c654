"""edgeship quantize: onnxruntime and OpenVINO (NNCF) int8 on real digits models, sensitivity,
accuracy-aware fallback, int4/fp16, TFLite, and every bad input as a one-line error.

The proof model is the fixtures' digits CNN with a wider classifier head (a 256x1024 Linear), so
weights dominate the file and the int8 size ratio measures quantization, not graph overhead.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.cli import run_cli
from tests.fixtures.models import DigitsData, torch_accuracy, train_classifier


def build_wide_cnn() -> Any:
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(16 * 4 * 4, 1024), nn.ReLU(), nn.Linear(1024, 10),
        )


def to_onnx(model: Any, path: Path) -> Path:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    return path


@pytest.fixture(scope="module")
def wide_torch(digits_data: DigitsData) -> Any:
    model = train_classifier(build_wide_cnn(), digits_data, epochs=10, lr=3e-3)
    assert torch_accuracy(model, digits_data.x_test, digits_data.y_test) > 0.93
    return model


@pytest.fixture(scope="module")
def wide_onnx(wide_torch: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return to_onnx(wide_torch, tmp_path_factory.mktemp("wide") / "wide.onnx")


@pytest.fixture(scope="module")
def outlier_onnx(wide_torch: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same function as ``wide_torch``, but conv1's channel 0 scaled by 1000 and conv2's
    matching input weights by 1/1000 (ReLU is positively homogeneous).  fp32 is unchanged;
    per-tensor int8 of that activation and weight is wrecked: a model with sensitive layers."""
    import torch

    model = copy.deepcopy(wide_torch)
    with torch.no_grad():
        model[0].weight[0] *= 1000.0
        model[0].bias[0] *= 1000.0
        model[3].weight[:, 0] /= 1000.0
    return to_onnx(model, tmp_path_factory.mktemp("outlier") / "outlier.onnx")


@pytest.fixture(scope="module")
def calib_npz(digits_data: DigitsData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, x=digits_data.x_train[:200])
    return path


def ops(path: Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


def manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.name + ".manifest.json").read_text())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".edgeship-"))


# -- proof: static int8 on real labelled data ------------------------------------------------

def test_static_onnxruntime_int8_keeps_accuracy_within_one_point_at_under_30_percent_size(
        wide_onnx: Path, calib_npz: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(wide_onnx, tmp_path / "wide.int8.onnx", calib=calib_npz,
                               data=digits_test_npz)
    assert result.accuracy is not None and result.accuracy["samples"] == 360
    assert result.accuracy["drop_points"] <= 1.0
    assert result.size_ratio <= 0.30
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops(result.path)
    recorded = manifest(result.path)["quantization"]
    assert recorded["params"]["format"] == "QDQ"
    assert (recorded["params"]["activations"], recorded["params"]["weights"]) == ("uint8", "int8")
    assert recorded["calibration"] == {"source": str(calib_npz), "samples": 200, "random": False,
                                       "method": "minmax"}


def test_static_nncf_int8_keeps_accuracy_within_one_point_at_under_30_percent_size(
        wide_onnx: Path, calib_npz: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(wide_onnx, tmp_path / "wide.int8.xml", backend="openvino",
                               calib=calib_npz, data=digits_test_npz)
    assert [f.name for f in result.files] == ["wide.int8.xml", "wide.int8.bin"]
    assert all(f.is_file() for f in result.files)
    assert result.accuracy is not None and result.accuracy["drop_points"] <= 1.0
    assert result.size_ratio <= 0.30
    doc = manifest(result.path)
    assert doc["format"] == "openvino" and doc["files"] == ["wide.int8.xml", "wide.int8.bin"]
    assert doc["quantization"]["params"]["preset"] == "performance"


def test_quantized_manifest_records_the_step_and_its_source(
        wide_onnx: Path, calib_npz: Path, tmp_path: Path) -> None:
    import edgeship
    from edgeship.core.artifact import ModelArtifact, sha256_file

    result = edgeship.quantize(wide_onnx, tmp_path / "q.onnx", calib=calib_npz, per_channel=False,
                               calibration="percentile", symmetric=True)
    art = ModelArtifact.load(result.path)
    assert art.manifest.provenance.source_sha256 == sha256_file(wide_onnx)
    step = art.manifest.provenance.steps[-1]
    assert step.step == "quantize"
    assert (step.config["per_channel"], step.config["calibration"], step.config["symmetric"]) == (
        False, "percentile", True)
    assert art.manifest.quantization is not None
    assert art.manifest.quantization["params"]["activations_symmetric"] is True


# -- warnings the user must not miss -------------------------------------------------------------

def test_random_calibration_warns_on_stderr_and_is_recorded(
        wide_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import edgeship

    result = edgeship.quantize(wide_onnx, tmp_path / "random.onnx")
    err = capsys.readouterr().err
    assert "WARNING" in err and "RANDOM" in err
    recorded = manifest(result.path)["quantization"]
    assert recorded["calibration"]["random"] is True
    assert any("RANDOM" in w for w in recorded["warnings"])


def test_dynamic_mode_warns_loudly_on_a_conv_dominated_model(
        digits_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import edgeship

    result = edgeship.quantize(digits_onnx, tmp_path / "dyn.onnx", mode="dynamic")
    err = capsys.readouterr().err
    assert "ConvInteger" in err and "SLOWER" in err
    assert "ConvInteger" in ops(result.path)
    assert result.params["conv_mac_share"] > 0.5
    assert any("SLOWER" in w for w in manifest(result.path)["quantization"]["warnings"])


def test_dynamic_mode_does_not_warn_on_a_linear_model(
        linear_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import edgeship

    result = edgeship.quantize(linear_onnx, tmp_path / "dyn.onnx", mode="dynamic")
    assert "SLOWER" not in capsys.readouterr().err
    assert "MatMulInteger" in ops(result.path)


# -- sensitivity and the accuracy-aware search -------------------------------------------------

def test_sensitivity_report_ranks_every_weighted_layer(
        outlier_onnx: Path, calib_npz: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(outlier_onnx, tmp_path / "s.onnx", calib=calib_npz,
                               data=digits_test_npz, sensitivity=True, per_channel=False)
    report = result.sensitivity
    assert report is not None and report.samples == 360
    assert sorted(s.op_type for s in report.layers) == ["Conv", "Conv", "Gemm", "Gemm"]
    errors = [s.output_rel_error for s in report.layers]
    assert errors == sorted(errors, reverse=True)
    # the two layers around the 1000x channel are the sensitive ones, by far
    assert {s.op_type for s in report.layers[:2]} == {"Conv"}
    assert report.layers[1].output_rel_error > 10 * report.layers[2].output_rel_error
    assert result.sensitivity_path is not None
    saved = json.loads(result.sensitivity_path.read_text())
    assert saved["schema"] == "edgeship.sensitivity/1" and len(saved["layers"]) == 4
    assert "SQNR dB" in report.table().splitlines()[0]


def test_accuracy_aware_mode_keeps_the_sensitive_layers_in_fp32_until_within_budget(
        outlier_onnx: Path, calib_npz: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(outlier_onnx, tmp_path / "aa.onnx", calib=calib_npz,
                               data=digits_test_npz, per_channel=False, max_accuracy_drop=1.0)
    assert result.accuracy is not None
    search = result.accuracy["search"]
    assert search["trials"][0]["kept_fp32"] == []
    assert search["trials"][0]["drop_points"] > 1.0  # all-int8 misses the budget...
    assert result.accuracy["drop_points"] <= 1.0  # ...the search meets it
    kept = result.params["kept_fp32"]
    assert 1 <= len(kept) < 4 and all("Conv" in k for k in kept)
    assert manifest(result.path)["quantization"]["params"]["kept_fp32"] == kept


def test_nncf_accuracy_control_meets_the_budget_on_the_sensitive_model(
        outlier_onnx: Path, calib_npz: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(outlier_onnx, tmp_path / "aa.xml", backend="openvino",
                               calib=calib_npz, data=digits_test_npz, per_channel=False,
                               max_accuracy_drop=1.0)
    assert result.accuracy is not None and result.accuracy["drop_points"] <= 1.0
    assert result.params["accuracy_control"]["max_drop_points"] == 1.0


def test_percentile_clipping_clips_weight_outliers_and_records_it(
        outlier_onnx: Path, calib_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(outlier_onnx, tmp_path / "c.onnx", calib=calib_npz,
                               clip_percentile=99.0, per_channel=False)
    clipping = manifest(result.path)["quantization"]["params"]["clipping"]
    assert clipping["percentile"] == 99.0 and clipping["tensors"] == 4
    assert 0 < clipping["clipped_values"] < 0.02 * clipping["total_values"]


# -- other precisions ------------------------------------------------------------------------

@pytest.mark.parametrize("backend,suffix", [("onnxruntime", ".onnx"), ("openvino", ".xml")])
def test_int4_weight_only_shrinks_linear_weights_below_int8(
        backend: str, suffix: str, wide_onnx: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(wide_onnx, tmp_path / f"w4{suffix}", backend=backend,  # type: ignore[arg-type]
                               weights_only="int4", data=digits_test_npz)
    assert result.params["weights"] == "int4"
    assert result.size_ratio < 0.22  # int8 is ~0.26
    assert result.accuracy is not None and result.accuracy["drop_points"] <= 2.0
    if backend == "onnxruntime":
        assert "MatMulNBits" in ops(result.path)


def test_fp16_halves_the_file_and_keeps_accuracy(
        wide_onnx: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship

    result = edgeship.quantize(wide_onnx, tmp_path / "h.onnx", mode="fp16", data=digits_test_npz)
    assert 0.45 < result.size_ratio < 0.55
    assert result.accuracy is not None and result.accuracy["drop_points"] == 0.0


@pytest.mark.slow  # litert-torch conversion: ~25 s
def test_tflite_full_int8_from_torch_keeps_accuracy_at_under_30_percent_size(
        wide_torch: Any, calib_npz: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship
    import torch

    result = edgeship.quantize(copy.deepcopy(wide_torch), tmp_path / "w.int8.tflite",
                               backend="tflite", calib=calib_npz, data=digits_test_npz,
                               example_input=torch.zeros(1, 1, 8, 8))
    assert result.accuracy is not None and result.accuracy["drop_points"] <= 1.0
    assert result.size_ratio <= 0.30
    doc = manifest(result.path)
    assert doc["format"] == "tflite"
    assert [s["step"] for s in doc["provenance"]["steps"]] == ["export", "quantize"]
    assert doc["quantization"]["params"]["activations"] == "int8"
    assert doc["quantization"]["calibration"]["samples"] == 200


@pytest.mark.timeout(600)
@pytest.mark.slow  # onnx2tf conversion
def test_tflite_int8_from_onnx_is_judged_on_the_same_nchw_data_as_its_source(
        wide_onnx: Path, calib_npz: Path, digits_test_npz: Path, tmp_path: Path) -> None:
    """onnx2tf writes NHWC; the runtime maps it back from the manifest, so the accuracy check
    feeds the quantized TFLite the source's NCHW test split as it is."""
    import edgeship
    from edgeship.runtime import load

    result = edgeship.quantize(wide_onnx, tmp_path / "w.int8.tflite", backend="tflite",
                               calib=calib_npz, data=digits_test_npz)
    assert result.accuracy is not None and result.accuracy["drop_points"] <= 1.0
    doc = manifest(result.path)
    assert [i["source_perm"] for i in doc["inputs"]] == [[0, 2, 3, 1]]
    assert [s.shape for s in load(result.path).inputs] == [(1, 1, 8, 8)]


def test_tflite_backend_without_onnx2tf_refuses_onnx_input_and_says_what_it_needs(
        wide_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeship
    from edgeship.core.errors import ConfigError

    monkeypatch.setenv("EDGESHIP_CACHE_DIR", str(tmp_path / "no-tools"))  # onnx2tf not installed
    with pytest.raises(ConfigError, match="quantizes from torch.*onnx2tf .not installed.") as err:
        edgeship.quantize(wide_onnx, tmp_path / "x.tflite", backend="tflite")
    assert "edgeship tools install onnx2tf" in err.value.one_line()
    assert not (tmp_path / "x.tflite").exists()


def test_config_rejects_options_the_backend_does_not_have() -> None:
    from edgeship.converters.quantize import QuantizeConfig
    from edgeship.core.errors import ConfigError, UnsupportedError

    with pytest.raises(ConfigError, match="--calibration entropy, --reduce-range only apply"):
        QuantizeConfig(backend="openvino", calibration="entropy", reduce_range=True)
    with pytest.raises(UnsupportedError, match="int4 weight-only quantization is not available"):
        QuantizeConfig(backend="tflite", weights_only="int4")
    with pytest.raises(ConfigError, match="--clip-percentile must be between 50 and 100"):
        QuantizeConfig(clip_percentile=100.0)
    with pytest.raises(ConfigError, match="power of two"):
        QuantizeConfig(weights_only="int4", int4_group_size=48)


# -- calibration data adapter ---------------------------------------------------------------

def test_calibration_accepts_npz_array_and_iterable_alike(
        digits_data: DigitsData, calib_npz: Path) -> None:
    from edgeship.converters.quantize.calib import calibration_feeds
    from edgeship.runtime.session import TensorSpec

    specs = [TensorSpec("input", ("N", 1, 8, 8), "float32")]
    x = digits_data.x_train[:200]
    sets = [calibration_feeds(src, specs, limit=50)
            for src in (calib_npz, x, list(x), (s for s in x))]
    for s in sets:
        assert len(s.feeds) == 50 and not s.random
        assert s.feeds[0]["input"].shape == (1, 1, 8, 8)
        np.testing.assert_array_equal(s.feeds[49]["input"], sets[0].feeds[49]["input"])


# -- bad input: one line, the DESIGN exit code, nothing written ----------------------------

@pytest.mark.parametrize("case,code,needle", [
    ("calib_shape", 2, "shape"),
    ("calib_dtype", 2, "uint8"),
    ("corrupt_onnx", 2, "not a valid ONNX model"),
    ("unwritable", 2, "cannot write"),
    ("unknown_mode", 2, "unknown --mode 'int3'"),
    ("dynamic_openvino", 4, "dynamic quantization is an onnxruntime mode"),
    ("accuracy_without_data", 2, "needs labelled data"),
])
def test_bad_input_is_one_line_with_its_exit_code_and_no_output(
        case: str, code: int, needle: str, wide_onnx: Path, digits_data: DigitsData,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, out = str(wide_onnx), tmp_path / "out.onnx"
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=digits_data.x_train[:20])
    args = ["--calib", str(calib)]
    if case == "calib_shape":
        np.savez(calib, x=digits_data.x_train[:20, :, :4, :4])
    elif case == "calib_dtype":
        np.savez(calib, x=(digits_data.x_train[:20] * 255).astype(np.uint8))
    elif case == "corrupt_onnx":
        model = str(tmp_path / "broken.onnx")
        Path(model).write_bytes(wide_onnx.read_bytes()[:5000])
    elif case == "unwritable":
        (tmp_path / "file").write_text("not a folder")
        out = tmp_path / "file" / "out.onnx"
    elif case == "unknown_mode":
        args += ["--mode", "int3"]
    elif case == "dynamic_openvino":
        args += ["--mode", "dynamic", "--backend", "openvino"]
        out = tmp_path / "out.xml"
    elif case == "accuracy_without_data":
        args += ["--max-accuracy-drop", "1"]
    rc, stdout, err = run_cli(capsys, "quantize", model, *args, "-o", str(out))
    assert rc == code
    assert stdout == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Fix:" in lines[0]
    assert not out.exists() and not Path(str(out) + ".manifest.json").exists()
    if out.parent.is_dir():
        assert leftovers(out.parent) == []


def test_cli_json_prints_only_the_result_on_stdout(
        wide_onnx: Path, calib_npz: Path, digits_test_npz: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.onnx"
    rc, stdout, err = run_cli(capsys, "quantize", str(wide_onnx), "--calib", str(calib_npz), "--data",
                               str(digits_test_npz), "--calibration", "entropy", "-o", str(out),
                               "--json")
    assert rc == 0
    payload = json.loads(stdout)
    assert payload["path"] == str(out) and payload["params"]["calibration"] == "entropy"
    assert payload["accuracy"]["drop_points"] <= 1.0
    assert out.is_file() and leftovers(tmp_path) == []

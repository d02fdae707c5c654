"""edgeship export: every format parity-checked against its source on the real digits test split.

The figures asserted here are computed twice: by the export's own parity check (recorded in the
manifest) and independently, by running the exported file with edgeship.runtime over all 360
test images and comparing with the torch model in numpy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeship.core.artifact import ModelArtifact, sha256_file
from edgeship.core.errors import ConfigError, OutputMismatchError, UnsupportedError

from tests.fixtures.cli import run_cli

EXAMPLE = np.zeros((1, 1, 8, 8), np.float32)


def torch_logits(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def exported_logits(path: Path, x: np.ndarray) -> np.ndarray:
    """Run an exported file over x with edgeship.runtime, one batch or one sample at a time."""
    from edgeship.runtime import load

    session = load(path, precision="fp32" if path.suffix == ".xml" else None)
    name, out = session.inputs[0].name, session.outputs[0].name
    if session.inputs[0].shape[0] == 1:
        return np.concatenate([session.run({name: x[i:i + 1]})[out] for i in range(len(x))])
    return session.run({name: x})[out]


def export_digits(model: Any, to: str, path: Path, data: Path, **kwargs: Any) -> ModelArtifact:
    import edgeship

    return edgeship.export(model, to, path, example_input=EXAMPLE, output_names=["logits"],
                           data=data, parity_real=360, **kwargs)


@pytest.fixture(scope="module")
def exports(digits_torch_model: Any, digits_test_npz: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelArtifact]:
    """The fixture CNN exported to every format and precision, once for this module."""
    out = tmp_path_factory.mktemp("exports")
    made = {}
    for key, to, name, precision in [
        ("onnx", "onnx", "digits.onnx", "fp32"),
        ("openvino", "openvino", "digits.xml", "fp32"),
        ("openvino-fp16", "openvino", "digits16.xml", "fp16"),
        ("tflite", "tflite", "digits.tflite", "fp32"),
        ("tflite-fp16", "tflite", "digits16.tflite", "fp16"),
        ("tflite-int8", "tflite", "digits8.tflite", "int8"),
    ]:
        made[key] = export_digits(digits_torch_model, to, out / name, digits_test_npz,
                                  precision=precision)
    return made


# -- parity on the digits test split ---------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("key,limit", [("onnx", 1e-4), ("openvino", 1e-3), ("tflite", 1e-3)])
def test_float_export_matches_torch_on_the_digits_test_split(
    exports: dict[str, ModelArtifact], digits_torch_model: Any, digits_data: Any, key: str,
    limit: float,
) -> None:
    expected = torch_logits(digits_torch_model, digits_data.x_test)
    got = exported_logits(exports[key].path, digits_data.x_test)
    assert np.abs(got - expected).max() < limit
    assert (got.argmax(1) == expected.argmax(1)).all()  # top-1 agreement 100 %


@pytest.mark.slow
@pytest.mark.parametrize("key,limit", [("onnx", 1e-4), ("openvino", 1e-3), ("tflite", 1e-3)])
def test_manifest_records_the_parity_the_export_measured(
    exports: dict[str, ModelArtifact], key: str, limit: float) -> None:
    parity = exports[key].manifest.parity
    assert parity is not None and parity["ok"]
    assert (parity["random"], parity["real"], parity["samples"]) == (8, 360, 368)
    (logits,) = parity["outputs"]
    assert logits["max_abs_diff"] < limit
    assert logits["top1"] == 1.0
    assert logits["cosine_min"] > 0.9999


@pytest.mark.slow
def test_fp16_weights_stay_close_to_fp32(exports: dict[str, ModelArtifact],
                                         digits_torch_model: Any, digits_data: Any) -> None:
    expected = torch_logits(digits_torch_model, digits_data.x_test)
    for key in ("openvino-fp16", "tflite-fp16"):
        got = exported_logits(exports[key].path, digits_data.x_test)
        assert np.abs(got - expected).max() < 0.05, key
        assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.99, key
    fp32_size = exports["tflite"].path.stat().st_size
    assert exports["tflite-fp16"].path.stat().st_size < 0.8 * fp32_size


@pytest.mark.slow
def test_openvino_fp16_export_halves_the_weights_file(exports: dict[str, ModelArtifact]) -> None:
    fp32_bin = exports["openvino"].path.with_suffix(".bin").stat().st_size
    fp16_bin = exports["openvino-fp16"].path.with_suffix(".bin").stat().st_size
    assert fp16_bin == pytest.approx(fp32_bin / 2, rel=0.05)


@pytest.mark.slow
def test_tflite_int8_is_full_integer_and_keeps_accuracy(
    exports: dict[str, ModelArtifact], digits_torch_model: Any, digits_data: Any) -> None:
    from edgeship.runtime import load

    artifact = exports["tflite-int8"]
    session = load(artifact.path)
    assert session.inputs[0].storage_dtype == "int8"
    assert session.outputs[0].storage_dtype == "int8"
    fp32 = (torch_logits(digits_torch_model, digits_data.x_test).argmax(1) == digits_data.y_test)
    int8 = (exported_logits(artifact.path, digits_data.x_test).argmax(1) == digits_data.y_test)
    assert 100 * (fp32.mean() - int8.mean()) <= 1.0  # accuracy drop in points
    quant = artifact.manifest.quantization
    assert quant is not None and quant["activations"] == "int8"
    assert quant["calibration"]["samples"] == 200
    assert artifact.path.stat().st_size < exports["tflite"].path.stat().st_size


# -- manifest --------------------------------------------------------------------------------
@pytest.mark.slow
def test_manifest_describes_the_exported_file(exports: dict[str, ModelArtifact]) -> None:
    artifact = ModelArtifact.load(exports["openvino"].path)  # read back from disk
    m = artifact.manifest
    assert (m.format, m.file, m.files) == ("openvino", "digits.xml", ["digits.xml", "digits.bin"])
    assert [(i.name, i.shape, i.dtype, i.layout) for i in m.inputs] == [
        ("input", [None, 1, 8, 8], "float32", "NCHW")]
    assert [(o.name, o.shape) for o in m.outputs] == [("logits", [None, 10])]
    assert m.provenance.source == "torch.nn.Module Sequential"
    assert [s.step for s in m.provenance.steps] == ["export"]
    assert m.provenance.steps[0].config["precision"] == "fp32"
    assert all((artifact.path.parent / f).is_file() for f in m.files)


@pytest.mark.slow
def test_tflite_keeps_nchw_and_the_example_batch(exports: dict[str, ModelArtifact]) -> None:
    (inp,) = exports["tflite"].manifest.inputs
    assert (inp.shape, inp.layout) == ([1, 1, 8, 8], "NCHW")


def test_onnx_source_passes_its_manifest_on(tmp_path: Path, digits_test_npz: Path) -> None:
    import edgeship

    source = Path(__file__).resolve().parents[1] / "examples" / "models" / "digits_cnn.onnx"
    artifact = edgeship.export(source, "openvino", tmp_path / "d.xml", data=digits_test_npz)
    m = artifact.manifest
    assert m.labels == [str(d) for d in range(10)] and m.task == "classification"
    assert m.preprocessing is not None and m.preprocessing["scale"] == 1 / 16
    assert m.provenance.steps[-1].config["from_sha256"] == sha256_file(source)
    assert [s.step for s in m.provenance.steps] == ["export", "export"]
    assert m.parity is not None and m.parity["reference"].startswith("onnxruntime")


def test_exported_program_file_is_an_export_source(
    digits_torch_model: Any, digits_test_npz: Path, tmp_path: Path) -> None:
    import edgeship
    import torch

    program = tmp_path / "digits.pt2"
    torch.export.save(torch.export.export(digits_torch_model, (torch.zeros(1, 1, 8, 8),)),
                      str(program))
    with edgeship.trust_model_code():  # our own file
        artifact = edgeship.export(program, "onnx", data=digits_test_npz)
    assert artifact.path == tmp_path / "digits.onnx"
    assert artifact.manifest.provenance.source_sha256 == sha256_file(program)
    assert artifact.manifest.parity is not None and artifact.manifest.parity["ok"]


def test_the_dynamo_exporter_writes_one_self_contained_file(
    digits_torch_model: Any, digits_test_npz: Path, tmp_path: Path) -> None:
    import onnx

    artifact = export_digits(digits_torch_model, "onnx", tmp_path / "d.onnx", digits_test_npz,
                             dynamo=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.onnx", "d.onnx.manifest.json"]
    opset = next(o.version for o in onnx.load(str(artifact.path)).opset_import if o.domain == "")
    assert f"dynamo exporter, opset {opset}" in artifact.manifest.provenance.steps[0].config[
        "converter"]
    assert artifact.manifest.parity is not None
    assert artifact.manifest.parity["outputs"][0]["max_abs_diff"] < 1e-4


# -- errors ----------------------------------------------------------------------------------
class BranchOnInput:
    """Data-dependent control flow: tracing bakes in the branch the example input takes."""

    @staticmethod
    def build() -> Any:
        import torch

        class Model(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if x.sum() > 0:
                    return x.flatten(1) * 2
                return -x.flatten(1)

        return Model()


def test_a_traced_export_that_changes_the_outputs_is_refused(tmp_path: Path) -> None:
    import edgeship

    with pytest.raises(OutputMismatchError) as err:
        edgeship.export(BranchOnInput.build(), "onnx", tmp_path / "m.onnx", example_input=EXAMPLE)
    assert "output 'output'" in str(err.value) and "max abs diff" in str(err.value)
    assert err.value.exit_code == 4
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the staging directory


def fft_model() -> Any:
    import torch

    class Spectrum(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft(x).abs()

    return Spectrum()


def cholesky_model() -> Any:
    import torch

    class Cholesky(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.cholesky(x @ x.transpose(-1, -2) + torch.eye(8))

    return Cholesky()


def test_an_op_onnx_cannot_express_is_named(tmp_path: Path) -> None:
    import edgeship

    with pytest.raises(UnsupportedError, match="aten::fft_rfft"):
        edgeship.export(fft_model(), "onnx", tmp_path / "m.onnx", example_input=EXAMPLE)
    assert list(tmp_path.iterdir()) == []


def test_an_op_tflite_cannot_express_is_named(tmp_path: Path) -> None:
    import edgeship

    with pytest.raises(UnsupportedError, match="cholesky"):
        edgeship.export(cholesky_model(), "tflite", tmp_path / "m.tflite", example_input=EXAMPLE)
    assert list(tmp_path.iterdir()) == []


def test_an_op_openvino_cannot_express_is_named(tmp_path: Path) -> None:
    import edgeship
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["h"]),
         helper.make_node("Frobnicate", ["h"], ["y"], domain="com.example")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    source = tmp_path / "custom.onnx"
    onnx.save(model, str(source))
    with pytest.raises(UnsupportedError, match="com.example.Frobnicate"):
        edgeship.export(source, "openvino", tmp_path / "out" / "custom.xml")
    assert list((tmp_path / "out").iterdir()) == []


def test_int8_without_representative_data_is_refused(digits_torch_model: Any,
                                                     tmp_path: Path) -> None:
    import edgeship

    with pytest.raises(ConfigError, match="representative data"):
        edgeship.export(digits_torch_model, "tflite", tmp_path / "m.tflite",
                        example_input=EXAMPLE, precision="int8")


def test_a_precision_the_format_cannot_hold_is_refused(digits_onnx: Path, tmp_path: Path) -> None:
    import edgeship

    with pytest.raises(UnsupportedError, match="int8"):
        edgeship.export(digits_onnx, "openvino", tmp_path / "m.xml", precision="int8")


def test_cli_exports_with_json_on_stdout(capsys: pytest.CaptureFixture[str], digits_onnx: Path,
                                         digits_test_npz: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "export", digits_onnx, "--to", "openvino", "-o", tmp_path / "d.xml",
                           "--data", digits_test_npz, "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["format"] == "openvino" and payload["parity"]["ok"]
    assert payload["parity"]["outputs"][0]["max_abs_diff"] < 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.bin", "d.xml", "d.xml.manifest.json"]


def test_cli_fp16_flag_writes_fp16_weights(capsys: pytest.CaptureFixture[str], digits_onnx: Path,
                                           tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "export", digits_onnx, "--to", "openvino", "--fp16", "-o",
                           tmp_path / "d.xml")
    assert code == 0, err
    steps = json.loads((tmp_path / "d.xml.manifest.json").read_text())["provenance"]["steps"]
    assert steps[-1]["config"]["precision"] == "fp16"


def truncated(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return dst


@pytest.mark.parametrize("case,code,needle", [
    ("missing", 2, "does not exist"),
    ("truncated", 2, "not a valid ONNX model"),
    ("wrong_suffix", 2, "cannot export from"),
    ("unknown_format", 2, "unknown format 'caffe'"),
    ("bad_output_suffix", 2, "does not end in .xml"),
    ("unwritable_output", 2, "cannot write to"),
    ("unsupported_precision", 4, "not int4"),
])
def test_cli_bad_input_is_one_line_with_its_exit_code(
    capsys: pytest.CaptureFixture[str], digits_onnx: Path, tmp_path: Path, case: str, code: int,
    needle: str,
) -> None:
    model, to, out = digits_onnx, "openvino", tmp_path / "out" / "m.xml"
    extra: list[str] = []
    if case == "missing":
        model = tmp_path / "nope.onnx"
    elif case == "truncated":
        model = truncated(digits_onnx, tmp_path / "half.onnx")
    elif case == "wrong_suffix":
        model = tmp_path / "model.txt"
        model.write_bytes(digits_onnx.read_bytes())
    elif case == "unknown_format":
        to = "caffe"
    elif case == "bad_output_suffix":
        out = tmp_path / "out" / "m.onnx"
    elif case == "unwritable_output":
        blocker = tmp_path / "a_file"
        blocker.write_text("not a directory")
        out = blocker / "m.xml"
    elif case == "unsupported_precision":
        extra = ["--precision", "int4"]
    got, stdout, err = run_cli(capsys, "export", model, "--to", to, "-o", out, *extra)
    assert got == code
    assert stdout == ""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0] and "Fix:" in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# -- ONNX -> TFLite through onnx2tf (its own venv: `edgeship tools install onnx2tf`) ----------
def test_onnx_to_tflite_without_the_tool_says_how_to_install_it(
    digits_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGESHIP_CACHE_DIR", str(tmp_path / "empty-cache"))
    code, _, err = run_cli(capsys, "export", digits_onnx, "--to", "tflite", "-o", tmp_path / "d.tflite")
    assert code == 4
    assert "edgeship tools install onnx2tf" in err
    assert not (tmp_path / "d.tflite").exists()
    assert not (tmp_path / "empty-cache").exists()  # nothing installed behind the user's back


@pytest.mark.slow
@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-3), ("fp16", 5e-2)])
def test_onnx2tf_export_matches_onnxruntime_on_the_digits_test_split(
    digits_onnx: Path, digits_test_npz: Path, digits_data: Any, tmp_path: Path,
    precision: str, tolerance: float,
) -> None:
    import edgeship
    from edgeship.runtime import load

    artifact = edgeship.export(digits_onnx, "tflite", tmp_path / "d.tflite", precision=precision,
                               data=digits_test_npz, parity_real=360)
    (inp,) = artifact.manifest.inputs
    assert (inp.shape, inp.layout) == ([1, 8, 8, 1], "NHWC")  # onnx2tf's layout, recorded
    assert (inp.source_name, inp.source_perm) == (None, [0, 2, 3, 1])  # and how it was made
    x = digits_data.x_test
    expected = load(digits_onnx).run({"input": x})["logits"]
    assert load(artifact.path).inputs[0].shape == (1, 1, 8, 8)  # shown as the ONNX has it
    got = exported_logits(artifact.path, x)  # the same NCHW arrays as the ONNX model's
    assert np.abs(got - expected).max() < tolerance
    assert (got.argmax(1) == expected.argmax(1)).mean() >= (1.0 if precision == "fp32" else 0.99)
    parity = artifact.manifest.parity
    assert parity is not None and parity["real"] == 360 and parity["ok"]


@pytest.mark.slow
def test_exports_of_one_file_inside_shared_runs_take_one_onnx2tf_run(
    digits_onnx: Path, digits_test_npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """compress's fp32, int8 and fp16 TFLite candidates of one model: one onnx2tf run, then
    TensorFlow's converter on its saved_model for int8."""
    import subprocess

    import edgeship
    from edgeship.converters.export import onnx2tf

    ran: list[str] = []
    real = subprocess.run

    def counting(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        ran.append(Path(argv[0]).name)
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(onnx2tf.subprocess, "run", counting)
    store = tmp_path / "runs"
    with onnx2tf.shared_runs(store):
        for precision in ("fp32", "int8", "fp16"):
            artifact = edgeship.export(digits_onnx, "tflite", tmp_path / f"{precision}.tflite",
                                       precision=precision, data=digits_test_npz)
            assert artifact.manifest.parity is not None and artifact.manifest.parity["ok"]
    assert ran.count("onnx2tf") == 1 and len(list(store.iterdir())) == 1
    quant = ModelArtifact.load(tmp_path / "int8.tflite").manifest.quantization
    assert quant is not None and quant["io"] == "int8" and "onnx2tf's TensorFlow model" in quant["tool"]
    edgeship.export(digits_onnx, "tflite", tmp_path / "again.tflite")  # outside: its own run
    assert ran.count("onnx2tf") == 2


@pytest.mark.slow
def test_onnx2tf_int8_is_calibrated_on_the_given_data(
    digits_onnx: Path, digits_test_npz: Path, digits_data: Any, tmp_path: Path,
) -> None:
    import edgeship

    artifact = edgeship.export(digits_onnx, "tflite", tmp_path / "d8.tflite", precision="int8",
                               data=digits_test_npz)
    quant = artifact.manifest.quantization
    assert quant is not None and quant["calibration"]["samples"] == 200
    x, y = digits_data.x_test, digits_data.y_test
    accuracy = (exported_logits(artifact.path, x).argmax(1) == y).mean()
    from edgeship.runtime import load

    fp32 = (load(digits_onnx).run({"input": x})["logits"].argmax(1) == y).mean()
    assert 100 * (fp32 - accuracy) <= 1.0


@pytest.mark.slow
def test_onnx2tf_converts_an_rgb_model_without_reaching_the_network(tmp_path: Path) -> None:
    """For RGB inputs onnx2tf fetches a sample-image file unless one is present; edgeship
    writes it and points every proxy at a closed port, so a download attempt would fail."""
    import edgeship
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                    torch.nn.Conv2d(4, 2, 1)).eval()
    onnx_path = edgeship.export(model, "onnx", tmp_path / "rgb.onnx",
                                example_input=torch.zeros(1, 3, 16, 16)).path
    artifact = edgeship.export(onnx_path, "tflite", tmp_path / "rgb.tflite")
    m = artifact.manifest
    assert [(t.shape, t.layout) for t in m.inputs] == [([1, 16, 16, 3], "NHWC")]
    assert [(t.shape, t.layout) for t in m.outputs] == [([1, 16, 16, 2], "NHWC")]
    assert m.parity is not None and m.parity["outputs"][0]["max_abs_diff"] < 1e-4
    assert [t.source_perm for t in m.inputs + m.outputs] == [[0, 2, 3, 1], [0, 2, 3, 1]]
    from edgeship.runtime import load

    # one feed dict for both files: the TFLite is shown and fed NCHW, its output comes back NCHW
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    onnx_session = load(onnx_path)
    name, out = onnx_session.inputs[0].name, onnx_session.outputs[0].name
    want = onnx_session.run({name: x})
    got = load(artifact.path).run({name: x})
    assert list(got) == [out] and got[out].shape == (1, 2, 16, 16)
    np.testing.assert_allclose(got[out], want[out], atol=1e-4)
    raw = load(artifact.path, layout="model")  # the file's own NHWC tensors, on request
    assert raw.inputs[0].shape == (1, 16, 16, 3) and raw.io_map is None
    np.testing.assert_allclose(raw.run({name: x.transpose(0, 2, 3, 1)})[out],
                               want[out].transpose(0, 2, 3, 1), atol=1e-4)

"""Converters on the kinds of model users bring: TFLite through onnx2tf (EfficientNet-Lite0 fp32
and full int8, multi-input/multi-output models matched by name, a relative -o), old opsets in
static int8, ONNX -> TFLite candidates in compress, and the converters' own error messages."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.cli import run_cli_process
from tests.fixtures.corpus import corpus_model
from tests.fixtures.corpus_outcomes import small_profile


def edgeship(*args: str, cwd: Path, tmpdir: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1"}
    return run_cli_process(*args, cwd=cwd, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    cwd, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    return cwd, tmpdir


def left_in(directory: Path, *allowed: str) -> list[str]:
    """Files under ``directory`` other than ``allowed`` (and onnxruntime's telemetry file)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and p.name != ".ses" and str(p.relative_to(directory)) not in allowed)


@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from examples.models_zoo.efficientnet_lite0 import export

    return export(tmp_path_factory.mktemp("effnet") / "efficientnet_lite0.onnx")


@pytest.fixture(scope="module")
def two_in_three_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conv + linear model with inputs (img, vec) and outputs (zeta, alpha, mid): onnx2tf sorts
    both, so only names pair them right (plumbing, not a model anyone deploys)."""
    import torch

    class TwoInThreeOut(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(5, 2)

        def forward(self, img: torch.Tensor, vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
            y = self.conv(img)
            return self.fc(vec) * 2, y.relu(), y.mean((2, 3))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("multi") / "multi.onnx"
    torch.onnx.export(TwoInThreeOut().eval(), (torch.rand(1, 3, 8, 8), torch.rand(1, 5)), str(path),
                      dynamo=False, opset_version=17, input_names=["img", "vec"],
                      output_names=["zeta", "alpha", "mid"])
    return path


@pytest.mark.timeout(1200)
@pytest.mark.slow
def test_efficientnet_lite0_exports_to_tflite_fp32_and_int8_without_touching_its_source(
        efficientnet: Path, tmp_path: Path) -> None:
    from edgeship.runtime import load
    from edgeship.runtime.preprocess import Preprocessing

    from examples.models_zoo.efficientnet_lite0 import PHOTOS, PREPROCESSING, photos

    spec = Preprocessing.from_dict(PREPROCESSING)  # model-ready real photos, NCHW like the ONNX
    calib = tmp_path / "photos.npz"
    np.savez(calib, x=np.concatenate([spec.batch(image) for image in photos(PHOTOS).values()]))
    before = sha256(efficientnet)
    cwd, tmpdir = dirs(tmp_path)
    # random parity inputs in the range the preprocessing gives, (x - 127) / 128
    for precision, extra in (("fp32", []), ("int8", ["--data", str(calib), "--input-range",
                                                     "input=-1:1"])):
        proc = edgeship("export", str(efficientnet), "--to", "tflite", "--precision", precision,
                        *extra, "-o", f"out/{precision}.tflite", cwd=cwd, tmpdir=tmpdir)
        assert proc.returncode == 0, proc.stderr[-2000:]
        manifest = json.loads((cwd / "out" / f"{precision}.tflite.manifest.json").read_text())
        assert manifest["parity"]["ok"]
        assert manifest["inputs"][0]["name"] == "input" and manifest["inputs"][0]["layout"] == "NHWC"
        # what an app on the bare interpreter feeds it; edgeship.runtime maps it back (below)
        assert manifest["preprocessing"]["layout"] == "NHWC"
        assert manifest["inputs"][0]["source_perm"] == [0, 2, 3, 1]
        session = load(cwd / "out" / f"{precision}.tflite")
        assert [s.name for s in session.outputs] == ["logits"]
        if precision == "int8":
            assert session.inputs[0].storage_dtype == "int8"
    # The README's promise: the same feed dict (the ONNX's names, NCHW photos) runs on the
    # .onnx and the .tflite, and the outputs agree within the export's parity tolerance.
    from edgeship.converters.parity import TOLERANCES, agreement_of

    x = np.load(calib)["x"]
    onnx_session = load(efficientnet)
    want = np.concatenate([onnx_session.run({"input": x[i:i + 1]})["logits"] for i in range(len(x))])
    for precision in ("fp32", "int8"):
        session = load(cwd / "out" / f"{precision}.tflite")
        assert session.io_map is not None and "io" in session.info.details
        assert [(s.name, s.shape) for s in session.inputs] == [("input", (1, 3, 224, 224))]
        got = np.concatenate([session.run({"input": x[i:i + 1]})["logits"] for i in range(len(x))])
        agreement, tolerance = agreement_of(want, got), TOLERANCES[precision]
        allowed = tolerance.allowed(want)
        assert allowed is None or agreement.max_abs_diff <= allowed, (precision, agreement)
        assert agreement.cosine_min >= tolerance.min_cosine, (precision, agreement)
        assert agreement.cosine_mean >= (tolerance.min_cosine_mean or 0), (precision, agreement)
        if precision == "fp32":  # int8's top-1 gate is over export's whole parity set (random
            assert agreement.top1 == 1.0, agreement  # inputs too), lower on these 14 photos alone
        # the mapping is only transposes: the file's own NHWC tensors give the same numbers
        raw = load(cwd / "out" / f"{precision}.tflite", layout="model")
        assert raw.io_map is None and raw.inputs[0].shape == (1, 224, 224, 3)
        np.testing.assert_array_equal(raw.run({"input": x[:1].transpose(0, 2, 3, 1)})["logits"],
                                      got[:1])
    # raw photos through each manifest's preprocessing (the TFLite's says NHWC, mapped to NCHW)
    image = next(iter(photos(PHOTOS).values()))
    fp32 = load(cwd / "out" / "fp32.tflite")
    np.testing.assert_allclose(fp32.run_raw(image)["logits"], onnx_session.run_raw(image)["logits"],
                               atol=TOLERANCES["fp32"].allowed(want))
    assert sha256(efficientnet) == before  # onnx2tf rewrites its input: it got a private copy
    assert left_in(cwd) == ["out/fp32.tflite", "out/fp32.tflite.manifest.json",
                            "out/int8.tflite", "out/int8.tflite.manifest.json"]
    assert left_in(tmpdir) == []


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_tflite_export_of_a_multi_input_multi_output_model_keeps_names(
        two_in_three_out: Path, tmp_path: Path) -> None:
    from edgeship.runtime import load

    cwd, tmpdir = dirs(tmp_path)
    proc = edgeship("export", str(two_in_three_out), "--to", "tflite", "-o", "m.tflite",
                    cwd=cwd, tmpdir=tmpdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((cwd / "m.tflite.manifest.json").read_text())
    assert [o["name"] for o in manifest["parity"]["outputs"]] == ["zeta", "alpha", "mid"]
    assert [i["name"] for i in manifest["inputs"]] == ["img", "vec"]
    tflite, onnx_ = load(cwd / "m.tflite"), load(two_in_three_out)
    assert sorted(s.name for s in tflite.inputs) == ["img", "vec"]
    feeds = {"img": np.random.default_rng(0).random((1, 3, 8, 8), np.float32),
             "vec": np.random.default_rng(1).random((1, 5), np.float32)}
    want = onnx_.run(feeds)
    got = tflite.run(feeds)  # the same feed dict: the runtime maps onnx2tf's NHWC (manifest)
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in want.items()}
    np.testing.assert_allclose(got["zeta"], want["zeta"], atol=1e-5)
    np.testing.assert_allclose(got["mid"], want["mid"], atol=1e-5)
    np.testing.assert_allclose(got["alpha"], want["alpha"], atol=1e-5)
    assert left_in(cwd, "m.tflite", "m.tflite.manifest.json") == [] and left_in(tmpdir) == []


@pytest.mark.timeout(300)
def test_static_int8_of_an_opset_11_model_upgrades_the_opset_and_says_so(tmp_path: Path) -> None:
    import onnx

    cwd, tmpdir = dirs(tmp_path)
    model = corpus_model("ppocr_mobile_cls")
    assert next(o.version for o in onnx.load(str(model)).opset_import if o.domain == "") == 11
    proc = edgeship("quantize", str(model), "--mode", "static", "--calib-samples", "4",
                    "--input-shape", "x=1,3,48,192", "-o", str(tmp_path / "q.onnx"),
                    cwd=cwd, tmpdir=tmpdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "opset 11: converted to opset 13" in proc.stderr
    out = onnx.load(str(tmp_path / "q.onnx"))
    onnx.checker.check_model(out)
    assert next(o.version for o in out.opset_import if o.domain == "") == 13
    weights = [n for n in out.graph.node if n.op_type == "DequantizeLinear"
               and any(a.name == "axis" for a in n.attribute)]
    assert weights, "per-channel weight scales (axis) need opset 13"
    manifest = json.loads((tmp_path / "q.onnx.manifest.json").read_text())
    assert manifest["quantization"]["params"]["per_channel"] is True


@pytest.mark.timeout(900)
@pytest.mark.slow
def test_compress_builds_tflite_candidates_from_an_onnx_model(tmp_path: Path) -> None:
    cwd, tmpdir = dirs(tmp_path)
    profile = small_profile(tmp_path, "tflite")
    proc = edgeship("compress", str(corpus_model("ppocr_mobile_cls")), "--device", str(profile),
                    "--input-shape", "x=1,3,48,192", "--runs", "3", "--warmup", "1",
                    "--min-seconds", "0", "-o", str(tmp_path / "out"), cwd=cwd, tmpdir=tmpdir)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    fp32 = summary["details"]["fp32-tflite"]
    assert fp32["status"] == "fits every budget", fp32["status"]
    export = next(s for s in fp32["steps"] if s["step"] == "export")
    assert export["config"]["to"] == "tflite"
    assert left_in(cwd) == [] and left_in(tmpdir) == []


def test_onnx2tf_errors_name_the_node_and_the_cause_not_a_tensorflow_log_line() -> None:
    from edgeship.converters.export.onnx2tf import _error

    log = (
        "W0000 00:00:1796112786.666334   20438 computation_placer.cc:177] computation placer "
        "already registered.\n"
        "\x1b[31mERROR:\x1b[0m The trace log is below.\n"
        "Traceback (most recent call last):\n"
        '  File "onnx2tf/ops/Conv.py", line 308, in conv_bias\n'
        'ValueError: Exception encountered when calling layer "tf.nn.convolution_6" (type '
        "TFOpLambda).\n\n"
        "Depth of input (56) is not a multiple of input depth of filter (24) for "
        "'{{node tf.nn.convolution_6/convolution}} = Conv2D[T=DT_FLOAT]' with input shapes: "
        "[1,24,56,56], [1,1,24,144].\n\n"
        "\x1b[31mERROR:\x1b[0m input_onnx_file_path: model.onnx\n"
        "\x1b[31mERROR:\x1b[0m onnx_op_name: wa/_blocks.3/_expand_conv/Conv\n"
        "\x1b[31mERROR:\x1b[0m Read this and deal with it. https://github.com/PINTO0309/onnx2tf\n")
    error = _error(log, "effnet.onnx")
    text = error.one_line()  # type: ignore[attr-defined]
    assert "node '_blocks.3/_expand_conv/Conv'" in text
    assert "Depth of input (56) is not a multiple of input depth of filter (24)" in text
    assert "computation placer" not in text and "{{node" not in text
    assert type(error).__name__ == "UnsupportedError"


def test_openvino_errors_on_dynamic_inputs_name_the_input_shape_that_fixes_them() -> None:
    from edgeship.converters.export.openvino import _convert_error
    from edgeship.converters.export.source import Source
    from edgeship.runtime.session import TensorSpec

    source = Source("onnx", "m.onnx", "0" * 64, [TensorSpec("x", (None, 3, None, None), "float32")],
                    ["y"])
    exc = RuntimeError("Exception from src/core/src/partial_shape.cpp:266:\n"
                       "to_shape was called on a dynamic shape.\n")
    text = _convert_error(exc, Path("m.onnx"), source).one_line()  # type: ignore[attr-defined]
    assert "dynamic input dimensions: to_shape was called on a dynamic shape" in text
    assert "--input-shape x=1,3,N,N" in text
    assert "replace" not in text

"""The runtime shows a model in its source's names and layout where its manifest maps them.

The mapping is checked on examples/models/digits_cnn.tflite (a real trained CNN) with a
manifest that records a rename and a transpose; the real NHWC exports of onnx2tf are checked in
tests/test_convert_kinds.py and tests/test_export.py (slow).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from edgeship import runtime
from edgeship.runtime.errors import ConfigError, ModelError
from edgeship.runtime.iomap import IOMap, TensorMap

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
DIGITS = MODELS / "digits_cnn.tflite"
IN, OUT = "serving_default_args_0", "serving_default_output_0_output"  # the file's own names


def _mapped_copy(tmp_path: Path, inputs: dict[str, object], outputs: dict[str, object]) -> Path:
    """digits_cnn.tflite with its manifest, plus the given source fields on its tensors."""
    model = tmp_path / "digits.tflite"
    shutil.copyfile(DIGITS, model)
    manifest = json.loads((MODELS / "digits_cnn.tflite.manifest.json").read_text())
    manifest["file"] = manifest["files"][0] = model.name
    manifest["inputs"][0].update(inputs)
    manifest["outputs"][0].update(outputs)
    (tmp_path / "digits.tflite.manifest.json").write_text(json.dumps(manifest))
    return model


def _digits(n: int = 1) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, 8, 8), dtype=np.float32) * 16


def test_a_transposed_and_renamed_tensor_is_shown_and_fed_as_the_source_had_it(tmp_path: Path) -> None:
    # the manifest says the file's input is the source's "image" transposed by (0, 2, 3, 1)
    # (what onnx2tf records for NCHW -> NHWC), and its output the source's "scores"
    model = _mapped_copy(tmp_path, {"source_name": "image", "source_perm": [0, 2, 3, 1]},
                         {"source_name": "scores"})
    mapped = runtime.load(model)
    raw = runtime.load(model, layout="model")
    assert [(s.name, s.shape) for s in mapped.inputs] == [("image", (1, 8, 1, 8))]
    assert [(s.name, s.shape) for s in mapped.outputs] == [("scores", (1, 10))]
    assert [(s.name, s.shape) for s in raw.inputs] == [(IN, (1, 1, 8, 8))]
    source = _digits().transpose(0, 3, 1, 2)  # the source's layout of the file's (1, 1, 8, 8)
    got = mapped.run({"image": source})
    want = raw.run({IN: source.transpose(0, 2, 3, 1)})
    assert list(got) == ["scores"]
    np.testing.assert_array_equal(got["scores"], want[OUT])


def test_the_mapping_is_said_in_info_and_io_map(tmp_path: Path) -> None:
    model = _mapped_copy(tmp_path, {"source_name": "image", "source_perm": [0, 2, 3, 1]}, {})
    mapped = runtime.load(model)
    assert mapped.io_map is not None
    assert mapped.io_map.inputs == (TensorMap(IN, "image", (0, 2, 3, 1)),)
    assert mapped.info.details["io"] == ("the source's names and layout (from the manifest): "
                                         f"'{IN}' as 'image' (the file's tensor "
                                         ".transpose([0, 3, 1, 2]))")
    assert runtime.load(model, layout="model").io_map is None
    assert "io" not in runtime.load(model, layout="model").info.details


def test_a_transposed_output_comes_back_in_the_source_layout(tmp_path: Path) -> None:
    model = _mapped_copy(tmp_path, {}, {"source_perm": [1, 0]})  # file (1, 10) = source.T
    mapped, raw = runtime.load(model), runtime.load(model, layout="model")
    assert mapped.outputs[0].shape == (10, 1)
    x = _digits()
    np.testing.assert_array_equal(mapped.run({IN: x})[OUT], raw.run({IN: x})[OUT].T)


def test_prepare_binds_the_mapped_inputs_as_the_bench_agent_times_them(tmp_path: Path) -> None:
    model = _mapped_copy(tmp_path, {"source_name": "image", "source_perm": [0, 2, 3, 1]}, {})
    mapped = runtime.load(model)
    call = mapped.prepare({"image": _digits().transpose(0, 3, 1, 2)})
    call()  # runs on the model-layout copy bound once
    with pytest.raises(ConfigError, match="missing"):
        mapped.prepare({IN: _digits()})  # the file's name is not the one shown


def test_input_shapes_are_given_in_the_source_layout(tmp_path: Path) -> None:
    model = _mapped_copy(tmp_path, {"source_name": "image", "source_perm": [0, 2, 3, 1]}, {})
    assert IOMap.from_manifest(runtime.load(model).manifest).model_input_shapes(  # type: ignore[union-attr]
        {"image": (1, 8, 1, 8)}) == {IN: (1, 1, 8, 8)}
    mapped = runtime.load(model, input_shapes={"image": (1, 8, 1, 8)})
    assert mapped.inputs[0].shape == (1, 8, 1, 8)


def test_raw_images_are_prepared_in_the_layout_the_session_shows() -> None:
    # the manifest's preprocessing layout is the file's (what an app on the bare interpreter
    # feeds: onnx2tf's NHWC); a session showing the source's layout is fed the source's
    from edgeship.runtime.preprocess import preprocessing_from_manifest

    manifest = {"inputs": [{"name": "input", "shape": [1, 224, 224, 3], "dtype": "float32",
                            "layout": "NHWC", "source_perm": [0, 2, 3, 1]}],
                "outputs": [{"name": "logits", "shape": [1, 1000], "dtype": "float32"}],
                "preprocessing": {"resize": [224, 224], "color": "rgb", "layout": "NHWC"}}
    source = preprocessing_from_manifest(manifest)
    model = preprocessing_from_manifest(manifest, layout="model")
    assert source is not None and model is not None
    assert (source.layout, model.layout) == ("NCHW", "NHWC")
    image = np.random.default_rng(3).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert source.batch(image).shape == (1, 3, 224, 224)
    np.testing.assert_array_equal(source.batch(image).transpose(0, 2, 3, 1), model.batch(image))


def test_a_native_tflite_without_a_mapping_is_unchanged() -> None:
    from tests.fixtures.corpus import corpus_model

    blazeface = corpus_model("blazeface_short_range")  # MediaPipe's, NHWC by design, no manifest
    session = runtime.load(blazeface)
    assert session.io_map is None and "io" not in session.info.details
    assert [s.shape for s in session.inputs] == [(1, 128, 128, 3)]
    assert type(session) is type(runtime.load(blazeface, layout="model"))


def test_an_edgeship_manifest_without_source_fields_maps_nothing() -> None:
    session = runtime.load(DIGITS)
    assert session.io_map is None
    assert [s.name for s in session.inputs] == [IN]


def test_a_manifest_for_other_tensors_is_an_error_naming_the_opt_out(tmp_path: Path) -> None:
    model = _mapped_copy(tmp_path, {"name": "other", "source_perm": [0, 2, 3, 1]}, {})
    with pytest.raises(ModelError, match="layout='model'"):
        runtime.load(model)
    assert runtime.load(model, layout="model").inputs[0].name == IN


def test_a_malformed_source_perm_is_an_error(tmp_path: Path) -> None:
    model = _mapped_copy(tmp_path, {"source_perm": [0, 0, 1, 2]}, {})
    with pytest.raises(ModelError, match="malformed"):
        runtime.load(model)


def test_an_unknown_layout_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown layout 'nhwc'"):
        runtime.load(DIGITS, layout="nhwc")


def test_the_bench_agent_feeds_a_mapped_model_in_the_source_names_and_layout(tmp_path: Path) -> None:
    from edgeship.runtime.bench import BenchmarkResult

    from tests.fixtures.cli import run_cli_process

    model = _mapped_copy(tmp_path, {"source_name": "image", "source_perm": [0, 2, 3, 1]}, {})
    data = tmp_path / "samples.npz"
    np.savez(data, image=_digits(4).transpose(0, 3, 1, 2))  # the source's names and layout
    proc = run_cli_process(str(model), "--runs", "5", "--min-seconds", "0", "--warmup", "1",
                           "--data", str(data), module="edgeship.runtime.bench", timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = BenchmarkResult.from_json(proc.stdout)
    assert [(i.name, i.shape) for i in result.inputs] == [("image", [1, 8, 1, 8])]
    assert result.backend.details["io"].startswith("the source's names and layout")


def test_inspect_shows_the_source_view_and_says_it_is_mapped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.cli import run_cli

    model = _mapped_copy(tmp_path, {"source_name": "image", "source_perm": [0, 2, 3, 1]}, {})
    code, out, _ = run_cli(capsys, "inspect", model, "--json")
    assert code == 0
    info = json.loads(out)
    assert [(i["name"], i["shape"]) for i in info["inputs"]] == [("image", [1, 8, 1, 8])]
    assert info["manifest"]["inputs"][0]["source_perm"] == [0, 2, 3, 1]
    code, _, err = run_cli(capsys, "inspect", model)
    assert code == 0 and "shown as the source's names and layout" in " ".join(err.split())

"""The one Step system: typed configs that are the recipe YAML schema, discriminated by
``step``, with one ``apply(artifact, ctx)``; compress's builder is a loop over them and their
defaults are the public functions'."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import edgeship
import numpy as np
import pytest
from edgeship.compression.build import Builder
from edgeship.compression.original import Original, load_data
from edgeship.converters import steps
from edgeship.converters.evaluate import count_onnx
from edgeship.converters.step_context import BuildContext
from edgeship.core.artifact import ModelArtifact
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError
from edgeship.recipe import DistillStep, ExportStep, PruneStep, QuantizeStep, Recipe, load_recipes

from tests.fixtures.training import one_thread  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_recipe_steps_are_the_converters_steps() -> None:
    assert (PruneStep, DistillStep, QuantizeStep, ExportStep) == (
        steps.PruneStep, steps.DistillStep, steps.QuantizeStep, steps.ExportStep)


def test_every_step_kind_loads_from_yaml_by_its_step_key(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("recipes:\n"
                    "  - name: all\n"
                    "    steps:\n"
                    "      - {step: prune, sparsity: 0.25, structured: false, importance: l2}\n"
                    "      - {step: distill, epochs: 3, temperature: 2}\n"
                    "      - {step: export, to: openvino, precision: fp16}\n"
                    "      - {step: quantize, mode: dynamic, backend: onnxruntime}\n")
    (recipe,) = load_recipes(path)
    assert recipe.steps == (PruneStep(sparsity=0.25, structured=False, importance="l2"),
                            DistillStep(epochs=3, temperature=2.0),
                            ExportStep(to="openvino", precision="fp16"),
                            QuantizeStep(mode="dynamic"))
    assert recipe.format == "onnx"


@pytest.mark.parametrize(("entry", "message"), [
    ("{sparsity: 0.5}", "recipes.0.steps.0: Unable to extract tag using discriminator 'step'"),
    ("{step: squash}", "recipes.0.steps.0: Input tag 'squash' found using 'step' does not match"),
    ("{step: export, to: onnx, quantize: true}",
     "recipes.0.steps.0.export.quantize: Unexpected keyword argument"),
    ("{step: quantize, backend: tensorrt}", "recipes.0.steps.0.quantize.backend: Input should be"),
])
def test_a_bad_step_is_a_one_line_config_error(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"recipes:\n  - name: a\n    steps: [{entry}]\n")
    with pytest.raises(ConfigError) as err:
        load_recipes(path)
    line = err.value.one_line()
    assert "\n" not in line and message in line, line


def _defaults(function: object) -> dict[str, object]:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}  # type: ignore[arg-type]


def test_step_defaults_are_the_public_functions_defaults() -> None:
    from edgeship.converters.quantize import _default_backend

    prune = _defaults(edgeship.prune)
    step = PruneStep()
    assert (step.sparsity, step.importance, step.finetune_epochs) == (
        prune["sparsity"], prune["importance"], prune["epochs"])
    # the one documented difference: a recipe prunes channels (faster), the API zeroes weights
    assert step.structured is True and prune["structured"] is False

    distill = _defaults(edgeship.distill)
    step_d = DistillStep()
    assert (step_d.epochs, step_d.temperature, step_d.alpha, step_d.lr) == (
        distill["epochs"], distill["temperature"], distill["alpha"], distill["lr"])

    quantize = _defaults(edgeship.quantize)
    step_q = QuantizeStep()
    assert (step_q.mode, step_q.per_channel, step_q.calibration, step_q.activations,
            step_q.reduce_range) == (quantize["mode"], quantize["per_channel"],
                                     quantize["calibration"], quantize["activations"],
                                     quantize["reduce_range"])
    assert step_q.backend == _default_backend(Path("model.onnx"))  # the API picks by model
    assert step_q.accuracy_aware is (quantize["max_accuracy_drop"] is not None)

    assert ExportStep().precision == _defaults(edgeship.export)["precision"]


@pytest.fixture
def digits_original(digits_onnx: Path) -> Original:
    return Original.open(digits_onnx)


def _context(original: Original, tmp_path: Path, train: SampleSet | None) -> BuildContext:
    example = np.zeros((1, 1, 8, 8), np.float32)
    return BuildContext(original, tmp_path / "scratch", example, train=train, calibration=train)


def test_the_quantize_step_applies_its_config_to_the_artifact(
        digits_original: Original, digits_test_npz: Path, tmp_path: Path) -> None:
    data = load_data(digits_original, digits_test_npz, None)
    ctx = _context(digits_original, tmp_path, data.train)
    step = QuantizeStep(calibration="percentile", per_channel=False)
    out = step.apply(ctx.start(), ctx)
    assert out.path is not None and out.path.parent.parent == tmp_path / "scratch"
    assert [r["step"] for r in out.steps] == ["quantize"]
    manifest = ModelArtifact.load(out.path).manifest
    assert manifest.provenance.steps[-1].config["calibration"] == "percentile"
    assert manifest.quantization is not None
    assert manifest.quantization["params"]["per_channel"] is False


def test_training_steps_need_training_samples(digits_original: Original, tmp_path: Path) -> None:
    ctx = _context(digits_original, tmp_path, None)
    with pytest.raises(ConfigError, match="pruning needs training samples"):
        PruneStep().apply(ctx.start(), ctx)
    with pytest.raises(ConfigError, match="distillation needs training samples"):
        DistillStep(epochs=1).apply(ctx.start(), ctx)


def test_the_builder_runs_the_steps_in_order_and_reuses_a_trained_prefix(
        digits_original: Original, digits_test_npz: Path, tmp_path: Path) -> None:
    data = load_data(digits_original, digits_test_npz, None)
    builder = Builder(digits_original, data, tmp_path / "build", None)
    head = (PruneStep(sparsity=0.5), DistillStep(epochs=1))
    onnx = builder.build(Recipe("pruned-onnx", (*head, ExportStep(to="onnx"))))
    assert [s["step"] for s in onnx.steps] == ["prune", "distill", "export"]
    assert count_onnx(onnx.path).macs == onnx.macs == 7232  # half the channels, as edgeship.prune
    assert onnx.steps[0]["config"]["structured"] is True
    assert onnx.steps[1]["config"]["samples"] == len(data.train)  # type: ignore[arg-type]
    int8 = builder.build(Recipe("pruned-int8", (*head, QuantizeStep())))
    assert int8.steps[:2] == onnx.steps[:2]  # the same trained model, not trained again
    assert [s["step"] for s in int8.steps] == ["prune", "distill", "export", "quantize"]
    assert pickle.loads(pickle.dumps(builder)).ctx.example.shape == (1, 1, 8, 8)  # Ray ships it


def test_sample_sets_split_and_take_keeping_labels_and_names() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    samples = SampleSet([x], np.arange(20), "demo", ("input",))
    first = samples.take(5)
    assert len(first) == 5 and first.y.tolist() == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
    train, val = samples.split(0.25, seed=1)
    assert (len(train), len(val)) == (15, 5)
    assert sorted([*train.y, *val.y]) == list(range(20))  # type: ignore[misc]
    np.testing.assert_array_equal(val.array[:, 0] / 2, val.y)  # rows keep their labels
    np.testing.assert_array_equal(samples.feeds[3]["input"], x[3:4])
    assert samples.by_name()["input"] is x


def test_sample_sets_from_feeds_give_each_sample_its_feed_back() -> None:
    # a batch axis of one at axis 0, a recurrent state batched on axis 1, a rank-0 sample rate
    feeds = [{"a": np.full((1, 3), i, np.float32), "state": np.full((2, 1, 4), i, np.float32),
              "rate": np.array(16000)} for i in range(4)]
    samples = SampleSet.from_feeds(feeds, "random", batched=True)
    assert samples.x[0].shape == (4, 3) and samples.random
    assert samples.unbatched == {"state", "rate"}
    for given, back in zip(feeds, samples.feeds):
        assert all(np.array_equal(back[n], given[n]) and back[n].shape == given[n].shape
                   and isinstance(back[n], np.ndarray) for n in given)
    with pytest.raises(ConfigError, match="give input 'a' different shapes"):
        SampleSet.from_feeds([{"a": np.zeros(3)}, {"a": np.zeros(4)}], "list")
    two = SampleSet([np.zeros((2, 1)), np.zeros((2, 1))], None, "two")
    with pytest.raises(ConfigError, match="holds 2 input arrays"):
        _ = two.array


def test_a_dataset_reads_into_a_sample_set_with_its_labels(digits_test_npz: Path) -> None:
    from edgeship.runtime.session import TensorSpec

    samples = edgeship.Dataset(digits_test_npz).for_model(
        [TensorSpec("input", ("N", 1, 8, 8), "float32")]).samples(50)
    assert samples.names == ("input",) and samples.array.shape == (50, 1, 8, 8)
    with np.load(digits_test_npz) as npz:
        np.testing.assert_array_equal(samples.array, npz["x"][:50])
        np.testing.assert_array_equal(samples.y, npz["y"][:50])  # type: ignore[arg-type]
    assert samples.source == str(digits_test_npz) and not samples.random


def test_a_tflite_step_whose_torch_route_failed_goes_to_onnx2tf_at_once_the_next_time(
        digits_original: Original, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeship.converters.export import onnx2tf, tools
    from edgeship.core.errors import ModelError, UnsupportedError

    assert onnx2tf.tool_env is tools.tool_env  # imported first: it keeps the real lookup
    monkeypatch.setattr(tools, "tool_env", lambda name: tmp_path / "env")  # onnx2tf is there
    ctx = _context(digits_original, tmp_path, None)
    tried: list[str] = []

    def convert(model: object, example: object) -> object:
        tried.append("onnx2tf" if isinstance(model, Path) else "torch")
        if not isinstance(model, Path):
            raise RuntimeError("litert-torch: torch.export failed")
        if len(tried) > 3:
            raise UnsupportedError("onnx2tf could not convert it", "report the model")
        return model

    assert ctx.tflite_route(ctx.start(), convert) == digits_original.path  # fp32: torch, then
    assert ctx.tflite_route(ctx.start(), convert) == digits_original.path  # int8: onnx2tf only
    assert tried == ["torch", "onnx2tf", "onnx2tf"]
    with pytest.raises(ModelError, match="through torch: litert-torch: torch.export failed"):
        ctx.tflite_route(ctx.start(), convert)  # the reason the torch route failed is kept

"""Pruning on the trained digits CNN (and tiny residual/MLP nets): exact sparsity, protected
layers, dependency-consistent channel removal, onnx2torch round trips, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import edgeship
import numpy as np
import pytest
import torch
from edgeship.converters.evaluate import count_onnx, load_labelled, predict
from edgeship.converters.onnx_to_torch import check_conversion, onnx_to_torch
from edgeship.converters.prune import prunable_layers, prune
from edgeship.core.artifact import ModelArtifact, sha256_file
from edgeship.core.errors import ConfigError, ModelError, OutputMismatchError, UnsupportedError

from tests.fixtures.cli import run_cli
from tests.fixtures.training import one_thread  # noqa: F401 (a fixture)

nn = torch.nn
pytestmark = pytest.mark.usefixtures("one_thread")


def _weights(model: Any) -> dict[str, np.ndarray]:
    return {n: m.weight.detach().numpy().copy() for n, m in prunable_layers(model).items()}


class ResidualNet(nn.Module):
    """stem -> conv-bn-relu-conv + skip (residual add) -> two 1x1 branches concatenated -> head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.left = nn.Conv2d(8, 6, 1)
        self.right = nn.Conv2d(8, 6, 1)
        self.head = nn.Linear(12, 10)

    def forward(self, x: Any) -> Any:
        x = torch.relu(self.bn(self.stem(x)))
        x = x + self.conv2(torch.relu(self.conv1(x)))
        y = torch.cat([self.left(x), self.right(x)], dim=1)
        return self.head(y.mean(dim=(2, 3)))


# -- unstructured ---------------------------------------------------------------------------------
def test_unstructured_global_sparsity_is_exact(digits_torch_model, digits_data) -> None:
    original = _weights(digits_torch_model)
    result = prune(digits_torch_model, 0.5, example_input=digits_data.x_test[:1])
    total = sum(w.size for w in original.values())
    zeros = sum(int((w == 0).sum()) for w in _weights(result.model).values())
    assert zeros == round(0.5 * total)
    assert result.achieved == zeros / total
    # the caller's model is not touched
    for name, w in _weights(digits_torch_model).items():
        np.testing.assert_array_equal(w, original[name])


def test_unstructured_keeps_the_largest_weights(digits_torch_model, digits_data) -> None:
    result = prune(digits_torch_model, 0.3, example_input=digits_data.x_test[:1])
    before = np.concatenate([w.ravel() for w in _weights(digits_torch_model).values()])
    after = np.concatenate([w.ravel() for w in _weights(result.model).values()])
    kept = after != 0
    assert np.abs(before[~kept]).max() <= np.abs(before[kept]).min()
    np.testing.assert_array_equal(after[kept], before[kept])


def test_unstructured_per_layer_ratios_are_exact(digits_torch_model, digits_data) -> None:
    result = prune(digits_torch_model, 0.5, scope="layer", per_layer={"3": 0.25},
                   example_input=digits_data.x_test[:1])
    zeros = {n: int((w == 0).sum()) for n, w in _weights(result.model).items()}
    assert zeros == {"0": round(0.5 * 72), "3": round(0.25 * 1152), "7": round(0.5 * 640)}


def test_unstructured_reports_dense_size_and_the_honest_note(digits_torch_model, digits_data) -> None:
    result = prune(digits_torch_model, 0.6, example_input=digits_data.x_test[:1])
    assert result.after.params == result.before.params  # zeros are still stored
    assert result.after.macs == result.before.macs  # and still multiplied
    assert result.after.nonzero_params < 0.5 * result.before.nonzero_params
    assert result.after.compressed_bytes < 0.8 * result.before.compressed_bytes
    assert any("not faster" in note for note in result.notes)


def test_protected_layers_are_untouched_by_unstructured_pruning(digits_torch_model,
                                                                 digits_data) -> None:
    result = prune(digits_torch_model, 0.7, protect=("0", "7"), example_input=digits_data.x_test[:1])
    before, after = _weights(digits_torch_model), _weights(result.model)
    np.testing.assert_array_equal(after["0"], before["0"])
    np.testing.assert_array_equal(after["7"], before["7"])
    assert int((after["3"] == 0).sum()) == round(0.7 * after["3"].size)


def test_fine_tuning_keeps_the_pruned_weights_at_zero(digits_torch_model, digits_data) -> None:
    result = prune(digits_torch_model, 0.5, finetune_data=(digits_data.x_train, digits_data.y_train),
                   epochs=1, lr=1e-3, progress=False)
    weights = _weights(result.model)
    total = sum(w.size for w in weights.values())
    assert sum(int((w == 0).sum()) for w in weights.values()) == round(0.5 * total)
    assert len(result.finetune) == 1


# -- structured -----------------------------------------------------------------------------------
def test_structured_halves_channels_and_protects_the_classifier(digits_torch_model,
                                                                 digits_data) -> None:
    result = prune(digits_torch_model, 0.5, structured=True, example_input=digits_data.x_test[:1],
                   eval_data=(digits_data.x_test, digits_data.y_test))
    shapes = {r.name: r.shape_after for r in result.layers}
    assert shapes == {"0": (4, 1, 3, 3), "3": (8, 4, 3, 3), "7": (10, 32)}
    assert [r.name for r in result.layers if r.protected] == ["7"]
    assert result.achieved == 0.5
    assert result.after.macs == 4 * 64 * 9 + 8 * 16 * 4 * 9 + 10 * 32
    assert result.macs_ratio is not None and result.macs_ratio <= 0.55
    assert result.after.accuracy is not None and result.before.accuracy is not None


def test_structured_protect_keeps_a_layer_whole(digits_torch_model, digits_data) -> None:
    result = prune(digits_torch_model, 0.5, structured=True, protect=("0",),
                   example_input=digits_data.x_test[:1])
    np.testing.assert_array_equal(_weights(result.model)["0"], _weights(digits_torch_model)["0"])
    assert {r.name: r.shape_after for r in result.layers}["3"] == (8, 8, 3, 3)


def test_structured_per_layer_ratio(digits_torch_model, digits_data) -> None:
    result = prune(digits_torch_model, 0.5, structured=True, per_layer={"3": 0.25},
                   example_input=digits_data.x_test[:1])
    assert {r.name: r.shape_after[0] for r in result.layers} == {"0": 4, "3": 12, "7": 10}


@pytest.mark.parametrize("importance", ["l1", "l2", "taylor"])
def test_residual_and_concat_stay_consistent(importance: str, tmp_path: Path) -> None:
    model = ResidualNet().eval()
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    result = prune(model, 0.5, structured=True, importance=importance, finetune_data=(x, y),
                   output=tmp_path / "res.onnx")
    pruned = result.model
    # both operands of the residual add shrink together, and so does what reads the concat
    assert pruned.stem.out_channels == pruned.conv2.out_channels == pruned.bn.num_features == 4
    assert pruned.conv1.in_channels == pruned.left.in_channels == pruned.right.in_channels == 4
    assert pruned.head.in_features == pruned.left.out_channels + pruned.right.out_channels == 6
    assert pruned.head.out_features == 10
    # the pruned graph exports and runs the same in onnxruntime as in torch
    with torch.no_grad():
        expected = pruned(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(predict(tmp_path / "res.onnx", x), expected, atol=1e-5)
    assert count_onnx(tmp_path / "res.onnx").macs < 0.4 * result.before.macs  # type: ignore[operator]


def test_neuron_pruning_shrinks_hidden_linear_layers_only(digits_data) -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    result = prune(mlp, 0.25, neurons=True, example_input=digits_data.x_test[:1])
    shapes = {r.name: r.shape_after for r in result.layers}
    assert shapes == {"0": (4, 1, 3, 3), "3": (24, 256), "5": (10, 24)}
    assert result.achieved == 0.25  # of the hidden neurons; convolutions are not candidates


def test_neuron_pruning_with_no_hidden_neurons_says_so(digits_torch_model, digits_data) -> None:
    with pytest.raises(ConfigError, match="no neurons could be pruned"):
        prune(digits_torch_model, 0.5, neurons=True, example_input=digits_data.x_test[:1])


# -- ONNX input -----------------------------------------------------------------------------------
def test_onnx_to_torch_round_trip_matches_onnxruntime(digits_onnx: Path, digits_data) -> None:
    module = onnx_to_torch(digits_onnx, samples=digits_data.x_test[:32])
    report = check_conversion(digits_onnx, module, digits_data.x_test[:32])
    assert report.ok and (report.random, report.real) == (8, 32)
    with torch.no_grad():
        got = module(torch.from_numpy(digits_data.x_test)).numpy()
    np.testing.assert_allclose(got, predict(digits_onnx, digits_data.x_test), atol=1e-5)
    assert "torchvision" not in sys.modules  # the import placeholder is gone again


def test_a_conversion_that_drifts_is_an_output_mismatch(digits_onnx: Path) -> None:
    module = onnx_to_torch(digits_onnx)
    with torch.no_grad():
        next(module.parameters()).add_(0.1)
    with pytest.raises(OutputMismatchError, match="conversion differs .* max abs diff"):
        check_conversion(digits_onnx, module)


def test_an_op_needing_torchvision_fails_loudly(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["boxes", "scores", "k"], ["picked"])],
        "nms",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 5, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 5])],
        [helper.make_tensor_value_info("picked", TensorProto.INT64, [None, 3])],
        initializer=[numpy_helper.from_array(np.array([2], np.int64), "k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "nms.onnx"))
    with pytest.raises(UnsupportedError, match="NonMaxSuppression needs torchvision"):
        onnx_to_torch(tmp_path / "nms.onnx")


def test_cli_prunes_an_onnx_model_structured(digits_onnx: Path, digits_test_npz: Path,
                                             tmp_path: Path, capsys) -> None:
    out = tmp_path / "small.onnx"
    code, stdout, _ = run_cli(capsys, "prune", str(digits_onnx), "--sparsity", "0.5", "--structured",
                            "--eval-data", str(digits_test_npz), "-o", str(out), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["macs_ratio"] <= 0.55
    assert report["after"]["macs"] == count_onnx(out).macs
    data = load_labelled(digits_test_npz)
    assert predict(out, data.array).shape == (360, 10)
    # the manifest continues the source's provenance and records the parity of the export
    manifest = ModelArtifact.load(out).manifest
    assert manifest.provenance.source == str(digits_onnx)
    assert manifest.provenance.source_sha256 == sha256_file(digits_onnx)
    assert [s.step for s in manifest.provenance.steps] == ["prune", "export"]
    assert manifest.provenance.steps[0].config["method"] == "channels"
    assert manifest.parity is not None and manifest.parity["ok"]
    assert [i.name for i in manifest.inputs] == ["input"] and manifest.outputs[0].name == "logits"


def test_cli_table_and_note_for_unstructured(digits_onnx: Path, tmp_path: Path, capsys) -> None:
    code, stdout, stderr = run_cli(capsys, "prune", str(digits_onnx), "--sparsity", "0.4",
                                 "-o", str(tmp_path / "sparse.onnx"))
    assert code == 0 and stdout == ""
    assert "non-zero params" in stderr and "not faster" in stderr
    assert count_onnx(tmp_path / "sparse.onnx").sparsity == pytest.approx(0.4, abs=0.02)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", ["0", "1", "-0.2", "1.5"])
def test_cli_sparsity_outside_zero_one_exits_2(sparsity: str, digits_onnx: Path, tmp_path: Path,
                                               capsys) -> None:
    out = tmp_path / "never.onnx"
    code, _, err = run_cli(capsys, "prune", str(digits_onnx), "--sparsity", sparsity, "-o", str(out))
    assert code == 2
    assert err.startswith("error: sparsity must be between 0 and 1") and err.count("\n") == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"per_layer": {"9": 0.5}}, "unknown layers"),
     ({"protect": ("conv",)}, "unknown layers"),
     ({"per_layer": {"3": 1.0}}, "sparsity for layer '3'"),
     ({"importance": "random"}, "unknown importance"),
     ({"structured": True, "per_layer": {"7": 0.5}}, "protected"),
     ({"structured": True, "neurons": True}, "two different methods"),
     ({"importance": "taylor"}, "taylor importance needs labelled data"),
     ({"epochs": 2}, "fine-tuning needs labelled data")],
)
def test_bad_prune_options_are_config_errors(kwargs: dict, message: str, digits_torch_model,
                                             digits_data) -> None:
    with pytest.raises(ConfigError, match=message):
        prune(digits_torch_model, 0.5, example_input=digits_data.x_test[:1], **kwargs)


def test_a_torch_module_without_an_example_is_refused(digits_torch_model) -> None:
    with pytest.raises(ConfigError, match="example input"):
        prune(digits_torch_model, 0.5)


def test_a_pickled_module_is_never_loaded(tmp_path: Path, capsys) -> None:
    path = tmp_path / "pickled.pt"
    torch.save(nn.Linear(2, 2), path)
    code, _, err = run_cli(capsys, "prune", str(path))
    assert code == 2 and "--trust-model-code" in err
    code, _, err = run_cli(capsys, "prune", str(path), "--trust-model-code")
    assert code == 2 and "TorchScript" in err  # trusted or not, a pickle is never unpickled
    with pytest.raises(ConfigError, match="trust_model_code"):
        prune(path, 0.5, example_input=np.zeros((1, 2), np.float32))
    with edgeship.trust_model_code(), pytest.raises(ModelError):
        prune(path, 0.5, example_input=np.zeros((1, 2), np.float32))


def test_cli_prunes_torchscript_given_its_input_shape(digits_torch_model, tmp_path: Path,
                                                      capsys) -> None:
    scripted = tmp_path / "digits.pt"
    torch.jit.trace(digits_torch_model, torch.zeros(1, 1, 8, 8)).save(str(scripted))
    code, _, err = run_cli(capsys, "prune", str(scripted), "--structured", "--trust-model-code")
    assert code == 2 and "--input-shape" in err
    code, _, err = run_cli(capsys, "prune", str(scripted), "--structured", "--input-shape", "x=1,1,8,8",
                            "--trust-model-code")
    assert code == 0, err
    assert count_onnx(tmp_path / "digits-pruned.onnx").macs == 7232
    assert "fine-tune" in err  # the note that channels removed without training cost accuracy

"""Distillation on the digits data: the prune + distill proof, the loss, teachers of every kind,
students from files, and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from edgeship.converters.distill import distill
from edgeship.converters.evaluate import accuracy, count_onnx
from edgeship.converters.training import TrainConfig, _loss
from edgeship.core.errors import ConfigError

from tests.fixtures.cli import run_cli
from tests.fixtures.training import one_thread  # noqa: F401 (a fixture)

nn = torch.nn
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits_train_npz(digits_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("distill") / "digits_train.npz"
    np.savez(path, x=digits_data.x_train, y=digits_data.y_train)
    return path


def _tiny_student(classes: int = 10) -> Any:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, classes))


def test_prune_half_then_distill_keeps_accuracy_at_under_55_percent_macs(
    digits_onnx: Path, digits_data, tmp_path: Path
) -> None:
    """The proof line: 50 % structured prune + distill -> MACs <= 55 %, accuracy drop <= 2 pt.
    The teacher is the ONNX model run with onnxruntime; the student its pruned torch copy."""
    out = tmp_path / "student.onnx"
    result = distill(digits_onnx, "pruned:0.5", (digits_data.x_train, digits_data.y_train),
                     epochs=15, lr=1e-2, output=out, progress=False)
    teacher = accuracy(digits_onnx, digits_data.x_test, digits_data.y_test).accuracy
    student = accuracy(out, digits_data.x_test, digits_data.y_test).accuracy
    macs_ratio = count_onnx(out).macs / count_onnx(digits_onnx).macs
    print(f"teacher {teacher:.4f} student {student:.4f} MACs {macs_ratio:.3f}")
    assert macs_ratio <= 0.55
    assert 100 * (teacher - student) <= 2.0
    assert result.after.macs == count_onnx(out).macs
    assert len(result.history) == 15 and result.history[-1].val_accuracy is not None


def test_distill_loss_is_the_documented_formula() -> None:
    import torch.nn.functional as F

    s, t = torch.randn(6, 5), torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    config = TrainConfig(temperature=3.0, alpha=0.7)
    p_t = F.softmax(t / 3, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / 3, dim=1))).sum(1).mean()
    expected = 0.7 * kl * 9 + 0.3 * F.cross_entropy(s, y)
    assert float(_loss(s, t, y, config)) == pytest.approx(float(expected), rel=1e-5)
    assert float(_loss(s, t, None, config)) == pytest.approx(float(kl * 9), rel=1e-5)


def test_a_torch_teacher_distills_into_a_torch_student(digits_torch_model, digits_data) -> None:
    student = _tiny_student()
    untouched = [p.detach().clone() for p in student.parameters()]
    result = distill(digits_torch_model, student, (digits_data.x_train, digits_data.y_train),
                     epochs=8, lr=1e-2, optimizer="adamw", progress=False)
    assert result.history[-1].loss < result.history[0].loss
    assert result.after.accuracy is not None and result.after.accuracy > 0.85
    # the caller's student is not trained in place
    assert all(torch.equal(a, b) for a, b in zip(untouched, student.parameters()))


def test_without_labels_the_teacher_alone_is_the_target(digits_torch_model, digits_data) -> None:
    result = distill(digits_torch_model, _tiny_student(), digits_data.x_train, epochs=6, lr=1e-2,
                     optimizer="sgd", progress=False)
    assert all(h.val_accuracy is None for h in result.history)
    with torch.no_grad():
        x = torch.from_numpy(digits_data.x_test)
        agree = (result.student(x).argmax(1) == digits_torch_model(x).argmax(1)).float().mean()
    assert float(agree) > 0.8


def test_cli_distills_into_a_pruned_student(digits_onnx: Path, digits_train_npz: Path,
                                            digits_test_npz: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "small.onnx"
    code, stdout, _ = run_cli(capsys, "distill", "--teacher", str(digits_onnx), "--student", "pruned",
                            "--sparsity", "0.25", "--data", str(digits_train_npz),
                            "--val-data", str(digits_test_npz), "--epochs", "2", "--lr", "0.01",
                            "-o", str(out), "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["student"]["macs"] == count_onnx(out).macs < report["teacher"]["macs"]
    assert [h["epoch"] for h in report["history"]] == [1, 2]


def test_cli_takes_a_torch_export_student(digits_onnx: Path, digits_train_npz: Path,
                                          tmp_path: Path, capsys) -> None:
    student_file = tmp_path / "student.pt2"
    example = (torch.zeros(2, 1, 8, 8),)
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(_tiny_student().eval(), example,
                                          dynamic_shapes=({0: batch},)), student_file)
    out = tmp_path / "trained.pt2"
    code, _, err = run_cli(capsys, "distill", "--teacher", str(digits_onnx), "--student", str(student_file),
                         "--data", str(digits_train_npz), "--epochs", "2", "--lr", "0.01",
                         "-o", str(out), "--trust-model-code")
    assert code == 0, err
    assert "teacher" in err and "student" in err
    trained = torch.export.load(str(out)).module()
    assert trained(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", ["0", "-1"])
def test_cli_temperature_must_be_positive(temperature: str, digits_onnx: Path,
                                          digits_train_npz: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never.onnx"
    code, _, err = run_cli(capsys, "distill", "--teacher", str(digits_onnx), "--student", "pruned",
                         "--data", str(digits_train_npz), "--temperature", temperature,
                         "-o", str(out))
    assert code == 2 and err.startswith("error: temperature must be > 0") and err.count("\n") == 1
    assert not out.exists()


def test_teacher_and_student_with_different_output_sizes(digits_onnx: Path, digits_train_npz: Path,
                                                         digits_data, tmp_path: Path,
                                                         capsys) -> None:
    with pytest.raises(ConfigError, match="teacher has 10 outputs, the student 7"):
        distill(digits_onnx, _tiny_student(classes=7), digits_data.x_train, progress=False)
    student_file = tmp_path / "seven.pt2"
    torch.export.save(torch.export.export(_tiny_student(7).eval(), (torch.zeros(2, 1, 8, 8),),
                                          dynamic_shapes=({0: torch.export.Dim("b")},)),
                      student_file)
    code, _, err = run_cli(capsys, "distill", "--teacher", str(digits_onnx), "--student", str(student_file),
                         "--data", str(digits_train_npz), "-o", str(tmp_path / "x.onnx"),
                         "--trust-model-code")
    assert code == 2 and "10 outputs" in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("teacher_kind", ["onnx", "torch"])
def test_data_of_the_wrong_shape(teacher_kind: str, digits_onnx: Path, digits_torch_model) -> None:
    teacher = digits_onnx if teacher_kind == "onnx" else digits_torch_model
    wrong = np.zeros((40, 1, 7, 7), np.float32)
    with pytest.raises(ConfigError, match="shape"):
        distill(teacher, _tiny_student(), wrong, progress=False)


def test_cli_data_of_the_wrong_shape_exits_2(digits_onnx: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "wrong.npz"
    np.savez(data, x=np.zeros((40, 3, 8, 8), np.float32), y=np.zeros(40, np.int64))
    code, _, err = run_cli(capsys, "distill", "--teacher", str(digits_onnx), "--student", "pruned",
                         "--data", str(data), "-o", str(tmp_path / "x.onnx"))
    assert code == 2 and "shape" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"alpha": 1.5}, "alpha must be in"),
     ({"optimizer": "lbfgs"}, "unknown optimizer"),
     ({"epochs": 0}, "epochs must be at least 1"),
     ({"lr": 0.0}, "learning rate must be > 0")],
)
def test_bad_training_options(kwargs: dict, message: str, digits_torch_model, digits_data) -> None:
    with pytest.raises(ConfigError, match=message):
        distill(digits_torch_model, _tiny_student(), digits_data.x_train, progress=False, **kwargs)


def test_labels_outside_the_classes(digits_torch_model, digits_data) -> None:
    labels = digits_data.y_train + 5
    with pytest.raises(ConfigError, match="classes"):
        distill(digits_torch_model, _tiny_student(), (digits_data.x_train, labels), progress=False)


def test_bad_pruned_student_spec(digits_onnx: Path, digits_data) -> None:
    with pytest.raises(ConfigError, match="bad student"):
        distill(digits_onnx, "pruned:half", digits_data.x_train, progress=False)


def test_pruned_candidates_for_the_compression_benchmark(digits_onnx: Path, digits_data,
                                                         tmp_path: Path) -> None:
    import edgeship
    from edgeship.converters.distill import pruned_candidates

    assert edgeship.distill is distill
    rows = pruned_candidates(digits_onnx, (digits_data.x_train, digits_data.y_train), tmp_path,
                             epochs=2)
    assert [r.name for r in rows] == ["prune-unstructured-50", "prune-channels-50",
                                      "prune-channels-50+distill"]
    original = count_onnx(digits_onnx)
    unstructured, channels, distilled = (count_onnx(r.path) for r in rows)
    assert unstructured.macs == original.macs and unstructured.sparsity == pytest.approx(0.5, abs=0.02)
    assert channels.macs == distilled.macs <= 0.55 * original.macs
    assert all(r.path.with_name(r.path.name + ".manifest.json").is_file() for r in rows)

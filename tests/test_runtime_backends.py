"""Every backend runs the bundled digits model for real, and they agree.

examples/models/digits_cnn.{onnx,xml,tflite} are the same trained CNN in three formats
(examples/make_digits_model.py); examples/data/digits_test.npz is its held-out test split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edgeship import runtime
from edgeship.core.errors import ModelError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "examples" / "models"
MODEL = {"onnxruntime": MODELS / "digits_cnn.onnx", "openvino": MODELS / "digits_cnn.xml",
         "tflite": MODELS / "digits_cnn.tflite"}
BACKENDS = list(MODEL)


@pytest.fixture(scope="module")
def test_split() -> tuple[np.ndarray, np.ndarray]:
    with np.load(REPO / "examples" / "data" / "digits_test.npz", allow_pickle=False) as data:
        return data["x"], data["y"]


def logits(session: runtime.Session, x: np.ndarray) -> np.ndarray:
    """All of x through the session: in one batch, or sample by sample for a fixed batch of 1."""
    name, out = session.inputs[0].name, session.outputs[0].name
    if session.inputs[0].shape[0] == 1:
        return np.concatenate([session.run({name: x[i:i + 1]})[out] for i in range(len(x))])
    return session.run({name: x})[out]


@pytest.fixture(scope="module")
def outputs(test_split: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Logits of the whole test split per backend (OpenVINO in fp32)."""
    x, _ = test_split
    return {b: logits(runtime.load(MODEL[b], precision="fp32" if b == "openvino" else None), x)
            for b in BACKENDS}


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_runs_the_bundled_model(backend: str) -> None:
    session = runtime.load(MODEL[backend])
    assert session.info.backend == backend
    assert session.inputs[0].dtype == "float32" and session.inputs[0].shape[1:] == (1, 8, 8)
    assert session.outputs[0].shape[1:] == (10,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_classifies_the_test_split(
    outputs: dict[str, np.ndarray], test_split: tuple[np.ndarray, np.ndarray], backend: str,
) -> None:
    _, y = test_split
    assert (outputs[backend].argmax(1) == y).mean() > 0.95


@pytest.mark.parametrize("backend", ["openvino", "tflite"])
def test_backends_agree_with_onnxruntime(outputs: dict[str, np.ndarray], backend: str) -> None:
    reference = outputs["onnxruntime"]
    assert np.abs(outputs[backend] - reference).max() < 1e-4
    assert (outputs[backend].argmax(1) == reference.argmax(1)).all()


def test_manifests_agree_with_the_models_they_describe() -> None:
    for backend, path in MODEL.items():
        session = runtime.load(path)
        manifest = json.loads(path.with_name(path.name + ".manifest.json").read_text())
        assert manifest["file"] == path.name
        assert [i["name"] for i in manifest["inputs"]] == [s.name for s in session.inputs], backend
        assert [o["name"] for o in manifest["outputs"]] == [s.name for s in session.outputs], backend
        assert manifest["preprocessing"]["scale"] == 1 / 16
        assert manifest["labels"] == [str(d) for d in range(10)]
        # made by examples/make_digits_model.py from the torch model, parity-checked against it
        assert [s["step"] for s in manifest["provenance"]["steps"]] == ["export"], backend
        assert manifest["parity"]["reference"].startswith("torch"), backend
        assert manifest["parity"]["real"] == 360 and manifest["parity"]["ok"], backend


def test_the_manifest_preprocessing_turns_raw_digits_into_model_inputs() -> None:
    """Raw 0..16 images through the manifest's spec are exactly the training inputs (x / 16)."""
    from edgeship.core.artifact import ModelArtifact
    from sklearn.datasets import load_digits

    raw = load_digits().images[:5]  # what a device would read: (8, 8) values 0..16
    for path in MODEL.values():
        spec = ModelArtifact.load(path).manifest.preprocessing_spec()
        assert spec is not None
        batch = spec.batch(list(raw))
        assert batch.dtype == np.float32
        assert np.array_equal(batch, (raw / 16.0).astype(np.float32)[:, None])


# -- OpenVINO precision ----------------------------------------------------------------------
def test_openvino_reports_fp32_when_asked_and_computes_in_it(outputs: dict[str, np.ndarray]) -> None:
    session = runtime.load(MODEL["openvino"], precision="fp32")
    assert session.info.precision == "fp32"
    assert np.abs(outputs["openvino"] - outputs["onnxruntime"]).max() < 1e-4


def test_openvino_default_precision_report_matches_what_it_computed(
    outputs: dict[str, np.ndarray], test_split: tuple[np.ndarray, np.ndarray],
) -> None:
    x, _ = test_split
    session = runtime.load(MODEL["openvino"])
    diff = np.abs(logits(session, x) - outputs["openvino"]).max()
    if session.info.precision == "bf16":  # CPUs with AMX / AVX512-BF16
        assert diff > 1e-3  # bf16 keeps ~3 significant digits: visibly not fp32
    else:
        assert session.info.precision == "fp32" and diff < 1e-5


# -- threads ---------------------------------------------------------------------------------
THREAD_PROBE = """
import os, sys
import numpy as np
from edgeship import runtime
session = runtime.load(sys.argv[1], threads=int(sys.argv[2]))
x = np.zeros((1, 1, 8, 8), np.float32)
for _ in range(3):
    session.run({session.inputs[0].name: x})
print(len(os.listdir("/proc/self/task")), session.info.threads,
      session.info.details.get("inference_num_threads"))
"""


def thread_count(path: Path, threads: int) -> tuple[int, ...]:
    out = subprocess.run([sys.executable, "-c", THREAD_PROBE, str(path), str(threads)],
                         capture_output=True, text=True, timeout=120, check=True)
    return tuple(int(v) if v != "None" else -1 for v in out.stdout.split())


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_are_honoured_by_every_backend(backend: str) -> None:
    """One more requested thread is one more OS thread in the process running the model."""
    one, two = thread_count(MODEL[backend], 1), thread_count(MODEL[backend], 2)
    assert two[0] - one[0] == 1
    assert (one[1], two[1]) == (1, 2)
    if backend == "openvino":  # the compiled model says what it will use
        assert (one[2], two[2]) == (1, 2)


# -- missing backends ------------------------------------------------------------------------
BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None

sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
"""

LOAD = BLOCKER + """
from edgeship import runtime
from edgeship.core.errors import MissingBackendError
try:
    runtime.load(sys.argv[1])
except MissingBackendError as exc:
    print(type(exc).__name__, exc.exit_code, exc.fix)
"""


@pytest.mark.parametrize("backend,blocked,pip", [
    ("onnxruntime", "onnxruntime", "pip install onnxruntime"),
    ("openvino", "openvino", "pip install openvino"),
    ("tflite", "ai_edge_litert,tflite_runtime,tensorflow", "pip install ai-edge-litert"),
])
def test_a_missing_backend_names_the_pip_package(backend: str, blocked: str, pip: str) -> None:
    out = subprocess.run([sys.executable, "-c", LOAD, blocked, str(MODEL[backend])],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == f"MissingBackendError 4 {pip}", out.stderr


def test_export_without_litert_torch_exits_4_naming_the_package(tmp_path: Path) -> None:
    """The TFLite exporter's dependency missing: one line, exit 4, what to pip install."""
    import torch

    program = tmp_path / "digits.pt2"
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    torch.export.save(torch.export.export(model, (torch.zeros(1, 1, 8, 8),)), str(program))
    cli = BLOCKER + "from edgeship.cli import main\nmain(sys.argv[1:])\n"
    out = subprocess.run([sys.executable, "-c", cli, "litert_torch", "export", str(program),
                          "--to", "tflite", "--trust-model-code"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 4, out.stderr
    error = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "litert-torch" in error[0]
    assert "Fix: run: edgeship tools install converters" in error[0]
    assert not (tmp_path / "digits.tflite").exists()


# -- bad model files -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_truncated_model_is_a_model_error(backend: str, tmp_path: Path) -> None:
    source = MODEL[backend]
    target = tmp_path / source.name
    if backend == "openvino":  # the weights file is the one cut short
        target.write_bytes(source.read_bytes())
        weights = source.with_suffix(".bin").read_bytes()
        target.with_suffix(".bin").write_bytes(weights[: len(weights) // 2])
    else:
        data = source.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        runtime.load(target)


def test_a_model_under_the_wrong_suffix_is_refused(tmp_path: Path) -> None:
    disguised = tmp_path / "digits.tflite"
    disguised.write_bytes(MODEL["onnxruntime"].read_bytes())
    with pytest.raises(ModelError, match="cannot load|TFLite"):
        runtime.load(disguised)

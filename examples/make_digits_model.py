"""Build edgeship's bundled example model: a small CNN trained on scikit-learn's digits.

Run it from anywhere (seconds on one core, fixed seed, same files every time):

    python examples/make_digits_model.py

It writes, with edgeship's own exporters (every export parity-checked against the torch model):

    examples/models/digits_cnn.onnx           + .manifest.json   (opset 17, dynamic batch)
    examples/models/digits_cnn.xml / .bin     + .manifest.json   (OpenVINO IR, fp32 weights)
    examples/models/digits_cnn.tflite         + .manifest.json   (fp32, batch 1, NCHW)
    examples/data/digits_test.npz             x (360, 1, 8, 8) float32, y (360,) int64

The images are 8x8 grey with values 0..16; preprocessing is x / 16 (recorded in each manifest).
The test fixtures (tests/fixtures/models.py) reuse this file's data split and training code.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED = 0
TEST_SIZE = 0.2  # 360 of the 1797 images
HERE = Path(__file__).resolve().parent
PREPROCESSING = {"resize": [8, 8], "color": "gray", "scale": 1 / 16, "mean": [0.0], "std": [1.0],
                 "layout": "NCHW", "dtype": "float32"}
LABELS = [str(d) for d in range(10)]


@dataclass(frozen=True)
class DigitsData:
    """The digits split, model-ready: x float32 (N, 1, 8, 8) in [0, 1], y int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split() -> DigitsData:
    """sklearn digits scaled by 1/16, split once: stratified, fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return DigitsData(x_train, y_train, x_test, y_test)


def build_digits_cnn(width: int = 8) -> Any:
    """conv(1->w) relu pool, conv(w->2w) relu pool, linear(8w -> 10); seeded initial weights."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(SEED)
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 2 * 2, 10),
        )


def train_classifier(model: Any, data: DigitsData, epochs: int = 15, lr: float = 1e-2) -> Any:
    """Adam + cross-entropy, batch 64, fixed seed, one CPU thread; returns it in eval mode."""
    import torch
    import torch.nn.functional as F

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic, and polite on a shared machine
    try:
        generator = torch.Generator().manual_seed(SEED)
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), 64):
                batch = order[start:start + 64]
                optimizer.zero_grad()
                F.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(previous_threads)
    return model.eval()


def torch_accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).argmax(1).numpy()
    return float((predicted == y).mean())


def main(out: Path = HERE) -> int:
    data = load_digits_split()
    model = train_classifier(build_digits_cnn(width=16), data, epochs=20)
    accuracy = torch_accuracy(model, data.x_test, data.y_test)
    print(f"digits CNN: test accuracy {accuracy:.4f} on {len(data.y_test)} images", file=sys.stderr)

    # Work from out's parent so the manifests record paths relative to it, not this machine's.
    previous_cwd = Path.cwd()
    os.chdir(out.parent)
    try:
        return _export_all(model, data, Path(out.name))
    finally:
        os.chdir(previous_cwd)


def _export_all(model: Any, data: DigitsData, out: Path) -> int:
    import edgeship
    import torch
    from edgeship.core.io import write_atomic

    buffer = io.BytesIO()
    np.savez(buffer, x=data.x_test, y=data.y_test)
    test_npz = write_atomic(out / "data" / "digits_test.npz", buffer.getvalue())
    test_npz.chmod(0o644)

    common: dict[str, Any] = dict(
        example_input=torch.zeros(1, 1, 8, 8), input_names=["input"], output_names=["logits"],
        data=test_npz, parity_real=len(data.y_test), preprocessing=PREPROCESSING,
        labels=LABELS, task="classification")
    for to, suffix in (("onnx", ".onnx"), ("openvino", ".xml"), ("tflite", ".tflite")):
        artifact = edgeship.export(model, to, out / "models" / f"digits_cnn{suffix}", **common)
        figures = artifact.manifest.parity or {}
        worst = figures["outputs"][0]
        print(f"{artifact.path}: max abs diff {worst['max_abs_diff']:.3g}, "
              f"top-1 agreement {100 * worst['top1']:.1f}% on {figures['samples']} samples",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

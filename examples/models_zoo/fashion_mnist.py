"""Fashion-MNIST: the real data set (Debian package dataset-fashion-mnist) and a small CNN for it.

Zalando's Fashion-MNIST is 70,000 grey 28x28 photos of clothes in 10 classes (60k train,
10k test), MIT licensed, read here from the idx files the Debian package installs.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip or plain): big-endian header, dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an idx file of uint8")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split: str, folder: Path = FASHION_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Raw images (N, 28, 28) uint8 and labels (N,) int64 for split 'train' or 't10k'."""
    images, labels = (folder / f"{split}-images-idx3-ubyte.gz", folder / f"{split}-labels-idx1-ubyte.gz")
    if not images.is_file():
        raise SystemExit(f"{images} is missing: apt-get install dataset-fashion-mnist")
    return read_idx(images), read_idx(labels).astype(np.int64)


def build_cnn() -> Any:
    """conv-bn-relu x3 with pooling, then a 576->64->10 head: ~60k parameters, ~2 MMAC/image."""
    from torch import nn

    def block(cin: int, cout: int) -> list[Any]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(1, 16), nn.MaxPool2d(2),            # 28 -> 14
        *block(16, 32), nn.MaxPool2d(2),           # 14 -> 7
        *block(32, 64), nn.MaxPool2d(2),           # 7 -> 3
        nn.Flatten(),
        nn.Linear(64 * 3 * 3, 64), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(64, 10),
    )

"""Train the Fashion-MNIST CNN on CPU, export it to ONNX with its manifest, ship test data.

    python examples/models_zoo/train_fashion_mnist.py [--epochs 6] [--threads 2]

Writes (atomically, each file whole or not at all):
  examples/models/fashion_mnist_cnn.onnx (+ .manifest.json: preprocessing, labels, provenance)
  examples/data/fashion_mnist_test_1k.npz   100 held-out test images per class, model-ready
  examples/edge_app/images/*.png + labels.csv   20 raw test images for the edge app

The preprocessing (scale 1/255, the training set's mean and std) is applied with
edgeship.runtime.preprocess, the same code the runtime runs on the device.  The test split is
used only to report accuracy after the fixed number of epochs, never to pick a model.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.models_zoo.common import DATA, MODELS, REPO, export_onnx, write_manifest  # noqa: E402
from examples.models_zoo.fashion_mnist import CLASSES, FASHION_DIR, build_cnn, load_split  # noqa: E402

SEED = 0


def preprocess_all(spec: object, images: np.ndarray) -> np.ndarray:
    return np.stack([spec.sample(img) for img in images])  # type: ignore[attr-defined]


def train(model: object, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch: int) -> None:
    import torch
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)  # type: ignore[attr-defined]
    steps = epochs * -(-len(x) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    for epoch in range(epochs):
        model.train()  # type: ignore[attr-defined]
        order = torch.randperm(len(x), generator=generator)
        total, t0 = 0.0, time.perf_counter()
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xt[idx]), yt[idx])  # type: ignore[operator]
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f} "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    model.eval()  # type: ignore[attr-defined]


def onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from edgeship.runtime import load

    session = load(path, threads=2)
    name = session.inputs[0].name
    predicted = np.concatenate([session.run({name: x[i:i + 500]})["logits"].argmax(1)
                                for i in range(0, len(x), 500)])
    return float((predicted == y).mean())


def write_test_subset(x: np.ndarray, y: np.ndarray, per_class: int = 100) -> Path:
    from edgeship.core.io import write_atomic

    keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)]))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x[keep], y=y[keep])
    return write_atomic(DATA / "fashion_mnist_test_1k.npz", buffer.getvalue())


def write_edge_app_images(images: np.ndarray, labels: np.ndarray, per_class: int = 2) -> Path:
    """Raw test images as PNG (lossless: the runtime decodes them exactly) with labels.csv."""
    from edgeship.core.io import write_atomic
    from PIL import Image

    folder = REPO / "examples" / "edge_app" / "images"
    rows = ["filename,label"]
    # the last images of each class in the test split, so they are not in the 1k npz
    picks = sorted(i for c in range(10) for i in np.flatnonzero(labels == c)[-per_class:])
    for n, i in enumerate(picks):
        name = f"{n:04d}_{CLASSES[labels[i]].lower().replace('/', '_').replace(' ', '_')}.png"
        buffer = io.BytesIO()
        Image.fromarray(images[i]).save(buffer, format="PNG")
        write_atomic(folder / name, buffer.getvalue())
        rows.append(f"{name},{CLASSES[labels[i]]}")
    return write_atomic(folder / "labels.csv", "\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", type=Path, default=MODELS / "fashion_mnist_cnn.onnx")
    parser.add_argument("--reuse-onnx", action="store_true",
                        help="skip training: evaluate the model already at --out and rewrite its "
                             "manifest, the test subset and the edge-app images")
    args = parser.parse_args()

    import torch
    from edgeship.runtime.preprocess import Preprocessing

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    train_images, train_labels = load_split("train")
    test_images, test_labels = load_split("t10k")
    pixels = train_images.astype(np.float64) / 255
    spec = Preprocessing(resize=(28, 28), color="gray", scale=1 / 255,
                         mean=(round(float(pixels.mean()), 4),), std=(round(float(pixels.std()), 4),))
    x_train, x_test = preprocess_all(spec, train_images), preprocess_all(spec, test_images)

    seconds = None
    if not args.reuse_onnx:
        model = build_cnn()
        t0 = time.perf_counter()
        train(model, x_train, train_labels, args.epochs, args.lr, args.batch)
        seconds = round(time.perf_counter() - t0, 1)
        export_onnx(model, torch.zeros(1, 1, 28, 28), args.out)
    accuracy = onnx_accuracy(args.out, x_test, test_labels)
    write_manifest(
        args.out, preprocessing=spec.to_dict(), labels=CLASSES,
        source=FASHION_DIR / "train-images-idx3-ubyte.gz",
        steps=[
            {"step": "train", "config": {"data": "fashion-mnist train (60000)", "epochs": args.epochs,
                                         "lr": args.lr, "batch": args.batch, "seed": SEED,
                                         "threads": args.threads, "seconds": seconds,
                                         "test_accuracy": accuracy}},
            {"step": "export", "config": {"format": "onnx", "opset": 17, "exporter": "torchscript"}},
        ],
    )
    write_test_subset(x_test, test_labels)
    write_edge_app_images(test_images, test_labels)
    print(json.dumps({"model": str(args.out.relative_to(REPO)), "train_seconds": seconds,
                      "test_accuracy": accuracy, "test_images": len(test_labels)}))


if __name__ == "__main__":
    main()

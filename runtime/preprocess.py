"""A model's preprocessing, applied the same way at calibration, evaluation and on the device.

The spec is the ``preprocessing`` object of the manifest beside every model
(``X.ext.manifest.json``, see runtime/manifest.py and core/artifact.py)::

    {"resize": [H, W] | null, "color": "gray" | "rgb" | null, "scale": 0.00392156862745098,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
     "layout": "NCHW" | "NHWC", "dtype": "float32"}

Semantics, in this order: raw image (H, W) or (H, W, C), any integer or float dtype ->
colour conversion (an alpha channel is dropped, not composited; RGB -> grey uses ITU-R 601
luma 0.299 R + 0.587 G + 0.114 B, grey -> RGB repeats the channel) -> float32 -> bilinear
resize to (H, W) -> x * scale -> (x - mean) / std per channel -> layout -> batch axis.

The resize is computed here in numpy, in float32, with half-pixel centres and edge clamping
(OpenCV's INTER_LINEAR, PIL's BILINEAR without its antialiasing filter), and is not rounded
back to integers: it is deterministic and the same on every machine, which is the point.
Stdlib + numpy only: this module ships to devices with the runtime.

Example:
    >>> spec = Preprocessing.from_dict({"resize": [28, 28], "color": "gray", "scale": 1 / 255,
    ...                                 "mean": [0.0], "std": [1.0], "layout": "NCHW"})
    >>> spec.batch(np.zeros((56, 40, 3), np.uint8)).shape
    (1, 1, 28, 28)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from edgeship.runtime.errors import ConfigError
from edgeship.runtime.manifest import manifest_path

ImageLike = Union[np.ndarray, str, Path]
_KEYS = ("resize", "color", "scale", "mean", "std", "layout", "dtype")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Preprocessing:
    """The manifest's preprocessing spec; ``sample``/``batch`` apply it to raw images."""

    resize: Optional[tuple[int, int]] = None
    color: Optional[str] = None  # gray | rgb | None (keep the image's channels)
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: str = "NCHW"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        fix = "fix the manifest's 'preprocessing' object (see edgeship.runtime.preprocess)"
        if self.resize is not None and (
            len(self.resize) != 2 or any(not isinstance(d, int) or d < 1 for d in self.resize)
        ):
            raise ConfigError(f"preprocessing resize must be [H, W] positive ints, got {self.resize}", fix)
        if self.color not in (None, "gray", "rgb"):
            raise ConfigError(f"preprocessing color must be 'gray' or 'rgb', got {self.color!r}", fix)
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError(f"preprocessing layout must be NCHW or NHWC, got {self.layout!r}", fix)
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"preprocessing dtype must be float32 or float16, got {self.dtype!r}", fix)
        numbers = [self.scale, *self.mean, *self.std]
        if not self.mean or not self.std or not all(math.isfinite(v) for v in numbers):
            raise ConfigError("preprocessing scale/mean/std must be finite numbers", fix)
        if any(v == 0 for v in self.std) or self.scale == 0:
            raise ConfigError("preprocessing std and scale must not be zero", fix)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Preprocessing:
        """Validate a manifest's ``preprocessing`` object (unknown keys are an error)."""
        if not isinstance(spec, dict):
            raise ConfigError(f"preprocessing must be an object, got {type(spec).__name__}",
                              "write it as in edgeship.runtime.preprocess's docstring")
        unknown = sorted(set(spec) - set(_KEYS))
        if unknown:
            raise ConfigError(f"unknown preprocessing keys {unknown}", f"use only {list(_KEYS)}")
        try:
            resize = spec.get("resize")
            return cls(
                resize=(int(resize[0]), int(resize[1])) if resize is not None else None,
                color=spec.get("color"),
                scale=float(spec.get("scale", 1.0)),
                mean=tuple(float(v) for v in spec.get("mean", (0.0,))),
                std=tuple(float(v) for v in spec.get("std", (1.0,))),
                layout=str(spec.get("layout", "NCHW")),
                dtype=str(spec.get("dtype", "float32")),
            )
        except (TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
            raise ConfigError(f"bad preprocessing spec {str(spec)[:200]}: {exc}",
                              "resize is [H, W], scale a number, mean and std lists of numbers") from None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resize"] = list(self.resize) if self.resize else None
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def sample(self, image: ImageLike) -> np.ndarray:
        """One raw image -> one model-ready sample, without the batch axis."""
        x = to_color(load_pixels(image), self.color)
        x = x.astype(np.float32)
        if self.resize is not None:
            x = resize_bilinear(x, self.resize)
        channels = x.shape[2]
        mean, std = _per_channel(self.mean, channels, "mean"), _per_channel(self.std, channels, "std")
        x = (x * np.float32(self.scale) - mean) / std
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def batch(self, images: Union[ImageLike, Sequence[ImageLike]]) -> np.ndarray:
        """An image (array or path) or a list of them -> a batch (N, ...) for the model."""
        if isinstance(images, (np.ndarray, str, Path)):
            images = [images]
        if len(images) == 0:
            raise ConfigError("no images to preprocess", "pass at least one image")
        return np.stack([self.sample(img) for img in images])


def load_pixels(image: ImageLike) -> np.ndarray:
    """An image array as (H, W, C); a path is decoded with edgeship.runtime.images."""
    if isinstance(image, (str, Path)):
        from edgeship.runtime.images import read_image

        image = read_image(image)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ConfigError(f"an image must be (H, W) or (H, W, C) with C in 1..4, got {arr.shape}",
                          "pass one decoded image at a time (height, width[, channels])")
    if arr.dtype.kind not in "uif" and arr.dtype != np.bool_:
        raise ConfigError(f"image dtype {arr.dtype} is not numeric", "pass uint8 or float pixels")
    return arr


def to_color(x: np.ndarray, color: Optional[str]) -> np.ndarray:
    """(H, W, C) -> grey (H, W, 1) or RGB (H, W, 3); an alpha channel is dropped."""
    if x.shape[2] in (2, 4):
        x = x[:, :, :-1]
    if color == "gray" and x.shape[2] == 3:
        return (x.astype(np.float32) @ _LUMA)[:, :, None]
    if color == "rgb" and x.shape[2] == 1:
        return np.repeat(x, 3, axis=2)
    return x


def resize_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (H, W, C) float32 to ``size`` (half-pixel centres, clamped edges)."""
    out_h, out_w = size
    if x.shape[:2] == (out_h, out_w):
        return x
    y0, y1, wy = _axis_weights(x.shape[0], out_h)
    x0, x1, wx = _axis_weights(x.shape[1], out_w)
    rows = x[y0] * (1 - wy)[:, None, None] + x[y1] * wy[:, None, None]
    return (rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]).astype(np.float32)


def _axis_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def _per_channel(values: tuple[float, ...], channels: int, name: str) -> np.ndarray:
    if len(values) not in (1, channels):
        raise ConfigError(f"preprocessing {name} has {len(values)} values, the image has {channels} "
                          "channels", f"give one {name} or one per channel (check 'color')")
    return np.asarray(values, np.float32)


def preprocessing_from_manifest(manifest: Optional[dict[str, Any]], layout: str = "source"
                                ) -> Optional[Preprocessing]:
    """The manifest's preprocessing spec, or None when it has none.

    The manifest records the layout the model file takes (onnx2tf's NHWC); with ``layout``
    "source" (how ``load`` presents a model by default, ``iomap.py``) images are prepared in
    the source's layout instead, which the session maps.
    """
    from dataclasses import replace

    from edgeship.runtime.iomap import IOMap

    spec = (manifest or {}).get("preprocessing")
    if spec is None:
        return None
    pre = Preprocessing.from_dict(spec)
    io_map = IOMap.from_manifest(manifest) if layout == "source" else None
    return replace(pre, layout=io_map.image_layout(pre.layout)) if io_map else pre


def preprocessing_for_session(session: Any) -> Preprocessing:
    """The spec a loaded model's manifest gives, or a ConfigError saying how to add one."""
    spec = preprocessing_from_manifest(session.manifest,
                                       "source" if session.io_map is not None else "model")
    if spec is None:
        where = manifest_path(session.path).name
        raise ConfigError(
            f"'{Path(session.path).name}' has no preprocessing spec "
            f"({'no ' + where if session.manifest is None else where + ' has preprocessing: null'})",
            "export it with edgeship (which writes the manifest), or preprocess the images yourself "
            "and call Session.run",
        )
    if len(session.inputs) != 1:
        raise ConfigError(f"'{Path(session.path).name}' has {len(session.inputs)} inputs; raw "
                          "images feed single-input models only", "build the feeds and call run()")
    return spec

"""Read image files into numpy arrays on a device that has numpy and nothing else.

PNG (every colour type and bit depth, not interlaced) and binary/ASCII PGM/PPM are decoded here
with zlib and numpy; other formats (JPEG, BMP, WebP, ...) need Pillow and say so.  PNG is
lossless, so this decoder and Pillow give the same pixels: an edge app without Pillow sees
exactly the arrays the host evaluated with.

Every reader returns uint8 (or uint16 for 16-bit files) shaped (H, W) for grey or (H, W, C)
with C = 2 (grey + alpha), 3 (RGB) or 4 (RGBA).

An image file is a user's input, and a 560 KB PNG can declare 24000 x 24000 pixels: every
reader refuses images of more than ``max_pixels`` (default ``DEFAULT_MAX_PIXELS``, Pillow's own
limit; the ``EDGESHIP_MAX_IMAGE_PIXELS`` environment variable or the argument raises it) before
allocating, and PNG data is inflated only up to the size its header implies.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Optional, Union

import numpy as np
from edgeship.runtime.errors import ConfigError, MissingBackendError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BUILTIN_SUFFIXES = (".png", ".pgm", ".ppm", ".pnm")
IMAGE_SUFFIXES = BUILTIN_SUFFIXES + (".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # the spec's
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: about 0.35 GB as RGBA
MAX_PIXELS_ENV = "EDGESHIP_MAX_IMAGE_PIXELS"


def max_pixels_allowed(override: Optional[int] = None) -> int:
    """The pixel cap: the argument, else $EDGESHIP_MAX_IMAGE_PIXELS, else DEFAULT_MAX_PIXELS."""
    if override is not None:
        return override
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV}={text!r} is not a positive whole number",
                          f"set it to a pixel count such as {DEFAULT_MAX_PIXELS}, or unset it")
    return int(text)


def _check_pixels(width: int, height: int, limit: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"the image declares {width}x{height} pixels")
    if width * height > limit:
        raise _TooLarge(f"it declares {width}x{height} pixels ({width * height / 1e6:.0f} MP), "
                        f"more than the limit of {limit / 1e6:.0f} MP")


class _TooLarge(ValueError):
    """An image bigger than the pixel cap (a real image, just too big: a different fix)."""


def read_image(path: Union[str, Path], max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode an image file: PNG/PGM/PPM here, anything else through Pillow.  Images of more
    than ``max_pixels`` pixels are refused (see the module docstring).

    Example:
        >>> img = read_image("examples/edge_app/images/0000_ankle_boot.png")  # doctest: +SKIP
        >>> img.shape, img.dtype                                           # doctest: +SKIP
        ((28, 28), dtype('uint8'))
    """
    path = Path(path)
    limit = max_pixels_allowed(max_pixels)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read image '{path}': {exc.strerror or exc}",
                          "check the path and its permissions") from None
    try:
        if data.startswith(PNG_SIGNATURE):
            return decode_png(data, limit)
        if data[:2] in (b"P2", b"P3", b"P5", b"P6"):
            return decode_pnm(data, limit)
    except _TooLarge as exc:
        raise ConfigError(f"image '{path}' is too large: {exc}",
                          f"downscale it, or raise the limit with {MAX_PIXELS_ENV}=N") from None
    except (ValueError, zlib.error, struct.error, IndexError) as exc:
        raise ConfigError(f"image '{path}' is corrupt: {exc}", "re-save or remove the file") from None
    return _read_with_pillow(path, limit)


def _read_with_pillow(path: Path, limit: int) -> np.ndarray:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise MissingBackendError(
            f"decoding '{path.name}' needs Pillow (only PNG/PGM/PPM decode without it)",
            "pip install Pillow, or convert the images to PNG",
        ) from None
    try:
        with Image.open(path) as opened:  # lazy: reads the header, not the pixels
            img: Image.Image = opened
            try:
                _check_pixels(*img.size, limit)
            except _TooLarge as exc:
                raise ConfigError(f"image '{path}' is too large: {exc}",
                                  f"downscale it, or raise the limit with {MAX_PIXELS_ENV}=N"
                                  ) from None
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
                img = img.convert("RGB")
            return np.asarray(img).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError
            ) as exc:
        raise ConfigError(f"'{path}' is not a readable image: {exc}",
                          "remove it or convert it to PNG/JPEG") from None


def decode_png(data: bytes, max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode a non-interlaced PNG (zlib + the five scanline filters), refusing more than
    ``max_pixels`` pixels before inflating anything."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, idat, palette, header = 8, [], None, None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"tRNS" and palette is not None:
            alpha = np.full(len(palette), 255, np.uint8)
            alpha[:length] = np.frombuffer(body, np.uint8)
            palette = np.concatenate([palette, alpha[:, None]], axis=1)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise ValueError("missing IHDR or IDAT chunk")
    width, height, depth, color, _, _, interlace = header
    if interlace:
        raise ValueError("interlaced PNG is not supported without Pillow; re-save it non-interlaced")
    if depth not in _DEPTHS.get(color, ()):
        raise ValueError(f"unsupported PNG colour type {color} / bit depth {depth}")
    _check_pixels(width, height, max_pixels_allowed(max_pixels))
    channels = _CHANNELS[color]
    row_bytes = (width * channels * depth + 7) // 8
    expected = height * (row_bytes + 1)
    # Inflate no more than the header implies: a few KB of zlib can expand to gigabytes.
    inflated = zlib.decompressobj().decompress(b"".join(idat), expected)
    raw = _unfilter(inflated, height, row_bytes, max(1, channels * depth // 8))
    pixels: np.ndarray
    if depth == 16:
        pixels = raw.view(">u2").astype(np.uint16).reshape(height, width, channels)
    elif depth == 8:
        pixels = raw.reshape(height, width, channels)
    else:  # 1, 2, 4 bits per sample: grey or palette indices, packed MSB first
        bits = np.unpackbits(raw, axis=1).reshape(height, -1, depth)[:, :width]
        values = (bits * (1 << np.arange(depth - 1, -1, -1, dtype=np.uint8))).sum(2).astype(np.uint8)
        if color == 0:
            values = values * np.uint8(255 // ((1 << depth) - 1))
        pixels = values[:, :, None]
    if color == 3:
        if palette is None:
            raise ValueError("palette image without a PLTE chunk")
        pixels = palette[pixels[:, :, 0]]
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def _unfilter(data: bytes, height: int, row_bytes: int, bpp: int) -> np.ndarray:
    """Undo PNG's per-row filters; returns (height, row_bytes) uint8."""
    if len(data) < height * (row_bytes + 1):
        raise ValueError("image data is truncated")
    rows = np.frombuffer(data, np.uint8)[: height * (row_bytes + 1)].reshape(height, row_bytes + 1)
    out = np.zeros((height, row_bytes), np.uint8)
    prior = np.zeros(row_bytes, np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: running sum per byte position modulo bpp
            padded = np.zeros(-(-row_bytes // bpp) * bpp, np.int64)
            padded[:row_bytes] = line
            sums = np.cumsum(padded.reshape(-1, bpp), axis=0).reshape(-1)[:row_bytes]
            cur = (sums % 256).astype(np.uint8)
        elif kind == 2:  # Up
            cur = line + prior
        elif kind in (3, 4):  # Average and Paeth depend on the byte to the left: a plain loop
            cur = _unfilter_sequential(int(kind), line, prior, bpp)
        else:
            raise ValueError(f"unknown PNG filter type {kind}")
        out[y] = cur
        prior = cur
    return out


def _unfilter_sequential(kind: int, line: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    cur = bytearray(line.tobytes())
    up = prior.tobytes()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            cur[i] = (cur[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


def decode_pnm(data: bytes, max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode PGM/PPM: P5/P6 (binary) or P2/P3 (ASCII), maxval up to 65535."""
    magic = data[:2]
    tokens: list[bytes] = []
    pos = 2
    while len(tokens) < 3:  # width, height, maxval; '#' starts a comment
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        tokens.append(data[pos:end])
        pos = end
    width, height, maxval = (int(t) for t in tokens)
    if not 0 < maxval < 65536:
        raise ValueError(f"maxval {maxval} is outside 1..65535")
    _check_pixels(width, height, max_pixels_allowed(max_pixels))
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = width * height * channels
    dtype = np.uint8 if maxval < 256 else np.uint16
    if magic in (b"P5", b"P6"):
        body = data[pos + 1:]
        values = np.frombuffer(body, np.uint8 if maxval < 256 else ">u2", count=count).astype(dtype)
    else:
        values = np.array(data[pos:].split()[:count], dtype=np.int64).astype(dtype)
        if values.size != count:
            raise ValueError("image data is truncated")
    pixels = values.reshape(height, width, channels)
    return pixels[:, :, 0] if channels == 1 else pixels

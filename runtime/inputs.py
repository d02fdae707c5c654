"""Inputs for measurement: random tensors shaped and typed from the model, or user samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.runtime.errors import ConfigError
from edgeship.runtime.session import TensorSpec, format_shape, shape_fits


def parse_input_shapes(values: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Parse repeated ``NAME=1,3,224,224`` flags into {name: shape}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values:
        name, sep, dims = value.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            shape = tuple(int(d) for d in dims.split(","))
            if not shape or any(d <= 0 for d in shape):
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"bad --input-shape '{value}'",
                "write it as NAME=D1,D2,... with positive integers, e.g. input=1,3,224,224",
            ) from None
        shapes[name.strip()] = shape
    return shapes


def resolve_shape(spec: TensorSpec, fixed: Optional[dict[str, tuple[int, ...]]] = None) -> tuple[int, ...]:
    """A concrete shape for ``spec``: user-fixed, else static; a dynamic batch becomes 1."""
    if fixed and spec.name in fixed:
        shape = fixed[spec.name]
        if not shape_fits(spec.shape, shape):
            raise ConfigError(
                f"--input-shape {spec.name}={','.join(map(str, shape))} does not fit the model's "
                f"{format_shape(spec.shape)}",
                "keep the fixed dimensions and give only the dynamic ones new sizes",
            )
        return shape
    out = []
    for i, d in enumerate(spec.shape):
        if isinstance(d, int) and d >= 0:
            out.append(d)
        elif i == 0:
            out.append(1)  # dynamic batch
        else:
            raise ConfigError(
                f"input '{spec.name}' has dynamic dimension {i} in {format_shape(spec.shape)}",
                f"fix it with --input-shape {spec.name}=" + ",".join(
                    str(x) if isinstance(x, int) and x >= 0 else "N" for x in spec.shape
                ),
            )
    return tuple(out)


def random_inputs(
    specs: Sequence[TensorSpec],
    seed: int = 0,
    fixed: Optional[dict[str, tuple[int, ...]]] = None,
) -> dict[str, np.ndarray]:
    """Deterministic random inputs: floats in [0, 1), small non-negative ints (token ids), bools."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = resolve_shape(spec, fixed)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            arr = rng.random(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind in "iu":
            arr = rng.integers(0, 100, size=shape).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.random(shape) < 0.5
        else:
            raise ConfigError(f"cannot make random data of dtype {dtype} for '{spec.name}'",
                              "pass real samples with --data")
        feeds[spec.name] = arr
    return feeds


NPZ_FIX = "write it with numpy.savez(path, x=inputs, y=labels)"
_DEFLATE_MAX_RATIO = 1032  # deflate cannot expand more than ~1032:1, so a member claiming more lies


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, read without pickle (object arrays are refused).

    Each member's header is checked against what the file can hold before numpy allocates:
    a 1 KB file declaring 10^11 samples is an error, not a 400 GB allocation."""
    import zipfile
    import zlib

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                _check_npz_member(path, archive, info)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
            NotImplementedError) as exc:
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        if "pickled" in detail:
            detail = "it holds object arrays, which need pickle"
        raise ConfigError(f"cannot read '{path}': {detail}", NPZ_FIX) from None


def _check_npz_member(path: Path, archive: Any, info: Any) -> None:
    """Refuse a member whose declared array is bigger than the bytes that can back it."""
    import zipfile

    if not info.filename.endswith(".npy"):
        raise ConfigError(f"'{path}' holds '{info.filename}', which is not an .npy array", NPZ_FIX)
    limit = info.compress_size * (_DEFLATE_MAX_RATIO if info.compress_type != zipfile.ZIP_STORED
                                  else 1)
    if info.file_size > limit:
        raise ConfigError(f"'{path}' member '{info.filename}' claims {info.file_size} bytes "
                          f"from {info.compress_size} stored: the file is corrupt", NPZ_FIX)
    from numpy.lib import format as npy

    with archive.open(info) as member:
        version = npy.read_magic(member)
        read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(
            version)
        if read_header is None:
            raise ConfigError(f"'{path}' array '{info.filename[:-4]}' uses .npy format "
                              f"{version[0]}.{version[1]}", "re-save it with numpy.savez")
        try:
            shape, _, dtype = read_header(member)  # reads the header only, allocates nothing
        except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, ...
            raise ConfigError(f"'{path}' array '{info.filename[:-4]}' has a corrupt header "
                              f"({type(exc).__name__})", NPZ_FIX) from None
        header_bytes = member.tell()
    if dtype.hasobject:
        raise ConfigError(f"'{path}' array '{info.filename[:-4]}' holds Python objects, which "
                          "need pickle", "store numeric arrays only")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > info.file_size - header_bytes:
        raise ConfigError(
            f"'{path}' array '{info.filename[:-4]}' declares shape {tuple(shape)} "
            f"({declared} bytes) but holds {max(info.file_size - header_bytes, 0)}: the file is "
            "truncated or corrupt", NPZ_FIX)


def load_samples(path: str | Path, specs: Sequence[TensorSpec], index: int = 0) -> dict[str, np.ndarray]:
    """One model-ready sample from an ``.npz``: array ``x`` (single input) or one per input name.

    The first axis of each array enumerates samples; a batch of one is cut at ``index``.
    """
    path = Path(path)
    arrays = read_npz(path)
    names = [s.name for s in specs]
    if all(n in arrays for n in names):
        chosen = {n: arrays[n] for n in names}
    elif len(names) == 1 and "x" in arrays:
        chosen = {names[0]: arrays["x"]}
    else:
        raise ConfigError(f"'{path}' has arrays {sorted(arrays)}, the model takes {names}",
                          "name the arrays after the inputs, or use 'x' for a single input")
    out = {}
    for spec in specs:
        arr = chosen[spec.name]
        want_rank = len(spec.shape)
        if arr.ndim == want_rank:
            batch = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else 1
            arr = arr[index * batch:(index + 1) * batch]
        elif arr.ndim == want_rank - 1:
            arr = arr[None]
        if arr.shape[0] == 0:
            raise ConfigError(f"'{path}' has no sample {index} for '{spec.name}'",
                              "pass a file with at least one sample")
        out[spec.name] = arr.astype(spec.dtype, copy=False)
    return out

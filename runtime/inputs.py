"""Inputs for measurement: random tensors shaped and typed from the model, or user samples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

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


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, read without pickle (object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read '{path}': {exc}",
                          "write it with numpy.savez(path, x=inputs, y=labels)") from None


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

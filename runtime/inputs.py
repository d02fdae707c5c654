"""Inputs for measurement: random tensors shaped and typed from the model, or user samples."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypeGuard

import numpy as np
from edgeship.runtime.errors import ConfigError
from edgeship.runtime.session import Dim, TensorSpec, format_shape, shape_fits


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


def check_input_names(specs: Sequence[TensorSpec], names: Iterable[str], flag: str) -> None:
    """A flag that names no input of the model is a mistake, not something to ignore."""
    known = [s.name for s in specs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"{flag} names {', '.join(repr(n) for n in unknown)}, which "
            f"{'is not an input' if len(unknown) == 1 else 'are not inputs'} of the model",
            f"use the model's input names: {', '.join(known)}",
        )


def _is_static(d: Dim) -> bool:
    return isinstance(d, int) and d >= 0


def resolve_shapes(
    specs: Sequence[TensorSpec], fixed: Optional[Mapping[str, tuple[int, ...]]] = None
) -> dict[str, tuple[int, ...]]:
    """Concrete shapes for every input: user-fixed, else static; a dynamic batch becomes 1.

    Dynamic dimensions that share a symbolic name (``batch``, ``sequence``) share one size, so
    fixing ``input=1,512`` also sizes a state input of shape ``(2, batch, 64)``.
    """
    fixed = dict(fixed or {})
    check_input_names(specs, fixed, "--input-shape")
    bound: dict[str, int] = {}
    for spec in specs:
        if spec.name in fixed:
            shape = fixed[spec.name]
            if not shape_fits(spec.shape, shape):
                raise ConfigError(
                    f"--input-shape {spec.name}={','.join(map(str, shape))} does not fit the "
                    f"model's {format_shape(spec.shape)}",
                    "keep the fixed dimensions and give only the dynamic ones new sizes",
                )
            bound.update((d, s) for d, s in zip(spec.shape, shape) if shared_dim(d))
    for spec in specs:  # a dynamic batch axis not given is 1, and so is every dim named like it
        if spec.name not in fixed and spec.shape and shared_dim(spec.shape[0]):
            bound.setdefault(spec.shape[0], 1)  # type: ignore[arg-type]
    return {spec.name: fixed[spec.name] if spec.name in fixed else _resolve(spec, bound)
            for spec in specs}


def shared_dim(d: Dim) -> TypeGuard[str]:
    """A symbolic dimension every input naming it shares ("batch", "sequence")."""
    return isinstance(d, str) and d not in ("", "?")  # '?' is anonymous, not one shared size


def _resolve(spec: TensorSpec, bound: Mapping[str, int]) -> tuple[int, ...]:
    out = []
    for i, d in enumerate(spec.shape):
        if _is_static(d):
            out.append(int(d))  # type: ignore[arg-type]
        elif shared_dim(d) and d in bound:
            out.append(bound[d])  # type: ignore[index]
        elif i == 0:
            out.append(1)  # dynamic batch
        else:
            hint = ",".join(
                str(x) if _is_static(x) else str(bound[x]) if shared_dim(x) and x in bound  # type: ignore[index]
                else "1" if j == 0 else "N" for j, x in enumerate(spec.shape))
            raise ConfigError(
                f"input '{spec.name}' has dynamic dimension {i} in {format_shape(spec.shape)}",
                f"fix it with --input-shape {spec.name}={hint} (N: the size you run it at)",
            )
    return tuple(out)


def resolve_shape(spec: TensorSpec, fixed: Optional[dict[str, tuple[int, ...]]] = None) -> tuple[int, ...]:
    """A concrete shape for one input (see :func:`resolve_shapes`)."""
    return resolve_shapes([spec], {k: v for k, v in (fixed or {}).items() if k == spec.name})[spec.name]


@dataclass(frozen=True)
class InputFill:
    """How to fill one input instead of the default random data: a fixed value broadcast to
    its shape (``--input-value NAME=V``), or uniform random values in ``[low, high]``
    (``--input-range NAME=LOW:HIGH``; integers include both ends)."""

    low: float
    high: float

    @property
    def is_value(self) -> bool:
        return self.low == self.high

    def flag(self, name: str) -> str:
        if self.is_value:
            return f"--input-value {name}={_num(self.low)}"
        return f"--input-range {name}={_num(self.low)}:{_num(self.high)}"

    def make(self, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator,
             name: str) -> np.ndarray:
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if self.low != int(self.low) or self.high != int(self.high) or \
                    self.low < info.min or self.high > info.max:
                raise ConfigError(f"{self.flag(name)} does not fit input '{name}' ({dtype})",
                                  f"give whole numbers from {info.min} to {info.max}")
            if self.is_value:
                return np.full(shape, int(self.low), dtype)
            return rng.integers(int(self.low), int(self.high), size=shape, endpoint=True).astype(dtype)
        if dtype.kind == "b":
            if self.low not in (0, 1) or self.high not in (0, 1):
                raise ConfigError(f"{self.flag(name)} does not fit bool input '{name}'",
                                  "give 0 or 1 (or --input-range NAME=0:1 for random bools)")
            if self.is_value:
                return np.full(shape, bool(self.low))
            return rng.random(shape) < 0.5
        if dtype.kind == "f":
            if self.is_value:
                return np.full(shape, self.low, dtype)
            return rng.uniform(self.low, self.high, size=shape).astype(dtype)
        raise ConfigError(f"cannot fill input '{name}' of dtype {dtype}", "pass real samples with --data")


def _num(x: float) -> str:
    return str(int(x)) if x == int(x) else repr(x)


def _parse_number(text: str, flag: str, value: str) -> float:
    try:
        number = float(text)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError
        return number
    except ValueError:
        raise ConfigError(f"bad {flag} '{value}'", _FILL_FORMS[flag]) from None


_FILL_FORMS = {
    "--input-value": "write it as NAME=VALUE, e.g. sr=16000 or state=0",
    "--input-range": "write it as NAME=LOW:HIGH with LOW <= HIGH, e.g. input_ids=0:30521",
}


def parse_input_fills(values: Sequence[str] = (), ranges: Sequence[str] = ()) -> dict[str, InputFill]:
    """Parse repeated ``--input-value NAME=V`` and ``--input-range NAME=LOW:HIGH`` flags."""
    fills: dict[str, InputFill] = {}
    for flag, items in (("--input-value", values), ("--input-range", ranges)):
        for item in items:
            name, sep, rest = item.partition("=")
            name = name.strip()
            if not sep or not name or not rest.strip():
                raise ConfigError(f"bad {flag} '{item}'", _FILL_FORMS[flag])
            if flag == "--input-value":
                low = high = _parse_number(rest, flag, item)
            else:
                lo, colon, hi = rest.partition(":")
                if not colon:
                    raise ConfigError(f"bad {flag} '{item}'", _FILL_FORMS[flag])
                low, high = _parse_number(lo, flag, item), _parse_number(hi, flag, item)
                if low > high:
                    raise ConfigError(f"bad {flag} '{item}': LOW is above HIGH", _FILL_FORMS[flag])
            if name in fills:
                raise ConfigError(f"input '{name}' is given more than one --input-value/--input-range",
                                  "give each input one value or one range")
            fills[name] = InputFill(low, high)
    return fills


def fill_args(fills: Mapping[str, InputFill]) -> list[str]:
    """The flags that recreate ``fills`` (argv items), e.g. for the measurement agent."""
    return [part for name, fill in fills.items() for part in fill.flag(name).split(" ", 1)]


def random_inputs(
    specs: Sequence[TensorSpec],
    seed: int = 0,
    fixed: Optional[Mapping[str, tuple[int, ...]]] = None,
    fills: Optional[Mapping[str, InputFill]] = None,
) -> dict[str, np.ndarray]:
    """Deterministic inputs: each ``fills`` entry as it says; otherwise random floats in [0, 1),
    small non-negative ints (token ids) and bools."""
    rng = np.random.default_rng(seed)
    fills = fills or {}
    check_input_names(specs, fills, "--input-value/--input-range")
    shapes = resolve_shapes(specs, fixed)
    feeds = {}
    for spec in specs:
        shape = shapes[spec.name]
        dtype = np.dtype(spec.dtype)
        if spec.name in fills:
            arr = fills[spec.name].make(shape, dtype, rng, spec.name)
        elif dtype.kind == "f":
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


def random_int_inputs(specs: Sequence[TensorSpec], fills: Optional[Mapping[str, InputFill]] = None,
                      given: Iterable[str] = ()) -> list[str]:
    """Inputs that got default random integers: what to name when inference rejects them."""
    skip = set(fills or {}) | set(given)
    return [s.name for s in specs if s.name not in skip and np.dtype(s.dtype).kind in "iub"]


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


def load_samples(
    path: str | Path,
    specs: Sequence[TensorSpec],
    index: int = 0,
    *,
    partial: bool = False,
) -> dict[str, np.ndarray]:
    """One model-ready sample from an ``.npz``: array ``x`` (single input) or one per input name.

    Per array, by its rank against the input's: one more axis is a stack of whole model inputs
    (sample ``index`` is taken); the same rank is samples along the model's first axis (a batch
    of one, or of the model's fixed first dimension, is cut at ``index``), except an array that
    is exactly the input of a model whose first axis is fixed (a state ``(2, batch, 64)``),
    which every sample shares; a rank-0 input takes a rank-0 array as it is (a sample rate);
    one axis less is a single sample without its batch axis.  With ``partial``, inputs the
    file does not hold are left out (the caller fills them).
    """
    path = Path(path)
    arrays = read_npz(path)
    arrays.pop("y", None)  # labels ride along in evaluation files
    names = [s.name for s in specs]
    if len(names) == 1 and set(arrays) == {"x"}:
        arrays = {names[0]: arrays["x"]}
    unknown = [k for k in arrays if k not in names]
    missing = [n for n in names if n not in arrays]
    if unknown or (missing and not partial) or not arrays:
        raise ConfigError(
            f"'{path}' has arrays {sorted(arrays)}, the model takes {names}",
            "name the arrays after the inputs (or 'x' for a single input)"
            + ("; fill the others with --input-value/--input-range" if partial else ""),
        )
    return {spec.name: _sample(arrays[spec.name], spec, index, path)
            for spec in specs if spec.name in arrays}


def _sample(arr: np.ndarray, spec: TensorSpec, index: int, path: Path) -> np.ndarray:
    rank = len(spec.shape)
    if arr.ndim == rank + 1:
        if index >= len(arr):
            raise ConfigError(f"'{path}' has no sample {index} for '{spec.name}'",
                              "pass a file with at least one sample")
        arr = arr[index]
    elif arr.ndim == rank and rank > 0 and _is_static(spec.shape[0]) and \
            shape_fits(spec.shape, arr.shape):
        pass  # the whole input of a model whose first axis is no batch (a state (2, B, 64))
    elif arr.ndim == rank and rank > 0:
        batch = spec.shape[0] if _is_static(spec.shape[0]) and spec.shape[0] else 1
        arr = arr[index * batch:(index + 1) * batch]  # type: ignore[operator]
        if arr.shape[0] == 0:
            raise ConfigError(f"'{path}' has no sample {index} for '{spec.name}'",
                              "pass a file with at least one sample")
    elif arr.ndim == rank - 1:
        arr = arr[None]
    if not shape_fits(spec.shape, arr.shape):
        raise ConfigError(
            f"array '{spec.name}' in '{path}' has shape {tuple(arr.shape)}, the model takes "
            f"{format_shape(spec.shape)}",
            "store one sample (or a stack of them along a new first axis) per input name",
        )
    dtype = np.dtype(spec.dtype)
    if arr.dtype != dtype and not np.can_cast(arr.dtype, dtype, casting="same_kind"):
        raise ConfigError(f"array '{spec.name}' in '{path}' is {arr.dtype}, the model takes {dtype}",
                          f"store it as {dtype}")
    return arr.astype(dtype, copy=False)

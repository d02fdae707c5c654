"""Calibration and evaluation data for quantization, behind one adapter over ``Dataset``.

``calibration_feeds`` and ``labelled_data`` are the only places data enters the quantizers.
They take what ``edgeship.core.data.Dataset`` takes (an ``.npz`` path, a folder of images, an
iterable of samples) plus a ready ``Dataset``, a numpy array of samples, or a mapping of arrays
by input name, and check it against the model's inputs before anything heavy runs.

On top of Dataset's checks, calibration refuses integer data for a float input: raw uint8
pixels would calibrate the activation ranges 255x too wide and wreck the quantized model.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError
from edgeship.runtime.session import TensorSpec

CalibData = Union[str, Path, np.ndarray, Mapping[str, np.ndarray], Iterable[Any], None]
Feed = dict[str, np.ndarray]


_NOTES: ContextVar[list[str] | None] = ContextVar("quantize_warnings", default=None)


def warn(message: str) -> None:
    """A warning the user must not miss: on stderr, marked, whatever the logging setup; also
    collected (see ``collect_warnings``) so the manifest records it."""
    text = " ".join(message.split())
    print(f"WARNING: {text}", file=sys.stderr, flush=True)
    notes = _NOTES.get()
    if notes is not None:
        notes.append(text)


def to_stderr() -> Any:
    """Silence what quantizers print (NNCF progress bars, onnxruntime's calibration chatter),
    or with ``EDGESHIP_VERBOSE=1`` (``edgeship -v``) send it to stderr: stdout belongs to
    ``--json`` either way."""
    from edgeship.converters.export.base import captured_output

    return captured_output()


@contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """Collect every ``warn`` issued inside the block into the yielded list."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def as_dataset(data: Any) -> Any:
    """Any accepted data source as an (unbound) ``edgeship.core.data.Dataset``."""
    from edgeship.core.data import Dataset

    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        x, y = data  # (inputs, labels) arrays
        return Dataset(list(zip(x, np.asarray(y).reshape(-1).tolist())))
    if isinstance(data, Mapping):
        arrays = {str(k): np.asarray(v) for k, v in data.items()}
        counts = {len(v) for v in arrays.values()}
        if len(counts) != 1:
            raise ConfigError(f"the input arrays have different sample counts {sorted(counts)}",
                              "pass the same number of samples for every input")
        return Dataset([{k: v[i] for k, v in arrays.items()} for i in range(counts.pop())])
    if isinstance(data, (str, Path, np.ndarray, Iterable)):
        return Dataset(data)
    raise ConfigError(f"cannot use {type(data).__name__} as data",
                      "pass an .npz path, a folder of images, a numpy array or an iterable")


@dataclass(frozen=True)
class ModelInputs:
    """What ``Dataset.for_model`` binds to: the model's inputs and its manifest (whose
    preprocessing turns an image folder into model-ready samples)."""

    inputs: list[TensorSpec]
    manifest: Optional[dict[str, Any]] = None


def model_inputs(model: Union[str, Path, None], inputs: Sequence[TensorSpec]) -> ModelInputs:
    """``inputs`` with the manifest beside ``model`` (None when there is none)."""
    from edgeship.runtime.manifest import read_manifest

    return ModelInputs(list(inputs), read_manifest(model) if model is not None else None)


def _binding(data: Any, inputs: Union[Sequence[TensorSpec], ModelInputs]) -> ModelInputs:
    """What to bind ``data`` to: arrays in memory are model-ready (the API's contract), so the
    manifest's preprocessing is only for data read from files (an image folder)."""
    model = inputs if isinstance(inputs, ModelInputs) else ModelInputs(list(inputs))
    if isinstance(data, (np.ndarray, Mapping, tuple)):
        return ModelInputs(model.inputs)
    return model


def calibration_feeds(
    data: CalibData, inputs: Union[Sequence[TensorSpec], ModelInputs], *, limit: int,
    seed: int = 0, fixed: Optional[Mapping[str, tuple[int, ...]]] = None,
    fills: Optional[Mapping[str, Any]] = None,
) -> SampleSet:
    """Up to ``limit`` checked samples for ``inputs``; random data (with a loud warning) if
    ``data`` is None, shaped by ``fixed`` (``--input-shape``) and valued by ``fills``
    (``--input-value``/``--input-range``).  Pass ``ModelInputs`` (``model_inputs(path,
    specs)``) so an image folder is read with the model's preprocessing."""
    model = _binding(data, inputs)
    if data is None:
        return _random_set(model.inputs, limit, seed, fixed, fills)
    bound = as_dataset(data).for_model(model)  # binds the preprocessing before reading a file
    _check_kinds(bound, model.inputs)
    return bound.samples(limit)


def labelled_data(data: Any, inputs: Union[Sequence[TensorSpec], ModelInputs]
                  ) -> tuple[Feed, np.ndarray]:
    """Labelled evaluation data (e.g. an ``.npz`` with ``x`` and ``y``): stacked feeds and
    integer labels."""
    model = _binding(data, inputs)
    dataset = as_dataset(data).for_model(model)
    _check_kinds(dataset, model.inputs)
    feeds, labels = dataset.arrays()
    if labels is None:
        raise ConfigError(f"the data '{dataset.source}' has no labels",
                          "pass labelled data: an .npz with 'y' beside 'x' (np.savez(f, x=x, y=y))")
    return feeds, labels


def _check_kinds(dataset: Any, inputs: Sequence[TensorSpec]) -> None:
    first = dataset.first_sample()  # as given (after any preprocessing), not yet cast
    by_name = {s.name: s for s in inputs}
    for name, arr in first.items():
        spec = by_name.get(name) or (inputs[0] if len(inputs) == 1 else None)
        if spec is None:
            continue  # Dataset.for_model names the mismatch
        want = np.dtype(spec.dtype)
        if want.kind == "f" and np.asarray(arr).dtype.kind != "f":
            raise ConfigError(
                f"data for input '{spec.name}' from '{dataset.source}' is "
                f"{np.asarray(arr).dtype}, the model takes {want} (raw pixels? apply the model's "
                "preprocessing: scale, mean/std)",
                f"pass model-ready {want} inputs",
            )


def _random_set(inputs: Sequence[TensorSpec], limit: int, seed: int,
                fixed: Optional[Mapping[str, tuple[int, ...]]] = None,
                fills: Optional[Mapping[str, Any]] = None) -> SampleSet:
    from edgeship.runtime.inputs import random_inputs

    warn(
        "no calibration data given: calibrating on RANDOM inputs. Activation ranges will not "
        "match real data and accuracy can collapse; pass --calib DATA with real samples. "
        "This is recorded in the model's manifest."
    )
    feeds = [random_inputs(inputs, seed=seed + i, fixed=fixed, fills=fills)
             for i in range(min(limit, 32))]
    return SampleSet.from_feeds(feeds, "random", batched=True)

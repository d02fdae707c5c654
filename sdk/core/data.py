"""Evaluation and calibration data: ``Dataset`` from an .npz, an image folder, or an iterable.

Three sources, one object (NNCF's ``Dataset(source, transform)`` idea):

- ``Dataset("test.npz")``: array ``x`` of model-ready inputs (samples along axis 0) and an
  optional ``y`` of integer labels, or one array per model input name (plus ``y``); a rank-0
  array (a sample rate) is one value shared by every sample, and a batch keeps it rank 0.
- ``Dataset("images/")``: image files (PNG/PGM/PPM always, JPEG and others with Pillow) and an
  optional ``labels.csv`` or ``labels.txt`` of ``filename,label`` lines (a ``filename,label``
  header is allowed; labels are class indices or class names).  Images are turned into inputs
  with a preprocessing spec (``edgeship.runtime.preprocess``): passed in, or the model's
  manifest spec adopted by ``for_model`` -- the same code the runtime runs on the device.
- ``Dataset(items, transform)``: any iterable; ``transform(item)`` (identity by default) gives
  an array (single-input model), a dict of arrays by input name, or a pair ``(inputs, label)``.

Samples carry no batch axis; ``batches(n)`` stacks them.  ``for_model(session)`` checks shapes
and dtypes against the model's inputs and names the arrays after them, so a mismatch is one
clear ``ConfigError`` before anything runs.

``SampleSet`` is what a read Dataset becomes inside edgeship: model-ready arrays in memory (one
per input, samples along axis 0), optional labels, and where they came from, with ``take`` and
``split``.  It is the one sample container: compress's evaluation and training splits, the
quantizers' calibration set, pruning's and distillation's training data.

Example:
    >>> from edgeship import Dataset, runtime
    >>> session = runtime.load("examples/models/fashion_mnist_cnn.onnx")     # doctest: +SKIP
    >>> data = Dataset("examples/data/fashion_mnist_test.npz").for_model(session)  # doctest: +SKIP
    >>> for feeds, labels in data.batches(64):                                # doctest: +SKIP
    ...     logits = session.run(feeds)["logits"]
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from edgeship.core.errors import ConfigError
from edgeship.runtime.images import IMAGE_SUFFIXES
from edgeship.runtime.inputs import read_npz
from edgeship.runtime.preprocess import Preprocessing, preprocessing_from_manifest
from edgeship.runtime.session import TensorSpec, format_shape

SINGLE = "x"  # the name of the input of a single-input source until for_model names it
LABEL_FILES = ("labels.csv", "labels.txt")
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class SampleSet:
    """Model-ready samples: one array per input (samples along axis 0, in the model's input
    order), optional integer labels (one per sample), and where they came from.

    ``names`` are the inputs' names when known (calibration feeds go by name).  ``unbatched``
    names the inputs whose batch axis is not axis 0 (a sample rate of rank 0, a recurrent
    state shaped ``[2, batch, 128]``): their array holds each sample's value as given, stacked
    along a new leading axis, and a sample's feed gets it back unchanged.

    Example:
        >>> s = SampleSet([np.zeros((10, 3), np.float32)], np.arange(10), "demo")
        >>> len(s.take(4)), [len(p) for p in s.split(0.2)]
        (4, [8, 2])
    """

    x: list[np.ndarray]
    y: Optional[np.ndarray] = None
    source: str = ""
    names: tuple[str, ...] = ()
    unbatched: frozenset[str] = frozenset()

    @classmethod
    def from_feeds(cls, feeds: list[Feeds], source: str, *, batched: bool = False,
                   labels: Optional[np.ndarray] = None) -> SampleSet:
        """SampleSet from one feed per sample, arrays by input name: without a batch axis
        (``Dataset`` iteration), or ``batched`` as a model takes them (random inputs: a batch
        axis of one where the input has one at axis 0, else as given, see ``unbatched``)."""
        if not feeds:
            raise ConfigError(f"'{source}' gives no samples", "pass at least one sample")
        names = tuple(feeds[0])
        unbatched = set()
        x = []
        for name in names:
            parts = [np.asarray(f[name]) for f in feeds]
            whole = batched and all(p.ndim and p.shape[0] == 1 for p in parts)
            if batched and not whole:
                unbatched.add(name)
            try:
                x.append(np.concatenate(parts) if whole else np.stack(parts))
            except ValueError:
                raise ConfigError(f"the samples from '{source}' give input '{name}' different "
                                  f"shapes ({parts[0].shape} and others)",
                                  "give every sample the same shape") from None
        return cls(x, labels, source, names, frozenset(unbatched))

    def __len__(self) -> int:
        return len(self.x[0])

    @property
    def array(self) -> np.ndarray:
        """The single input's array (pruning and distillation take single-input models)."""
        if len(self.x) != 1:
            raise ConfigError(f"'{self.source}' holds {len(self.x)} input arrays "
                              f"{list(self.names) or ''}".rstrip(),
                              "pruning and distillation take single-input data: store it as x")
        return self.x[0]

    def by_name(self) -> Feeds:
        """Every sample stacked per input, by input name."""
        return dict(zip(self.names, self.x))

    def take(self, index: Union[int, np.ndarray]) -> SampleSet:
        """The samples at ``index`` (an index array), or the first ``index`` of them (an int)."""
        if isinstance(index, (int, np.integer)):
            index = np.arange(min(len(self), int(index)))
        return SampleSet([a[index] for a in self.x], None if self.y is None else self.y[index],
                       self.source, self.names, self.unbatched)

    def split(self, share: float, seed: int = 0) -> tuple[SampleSet, SampleSet]:
        """A seeded random (1 - share, share) split, e.g. training and validation; the second
        part holds at least one sample."""
        order = np.random.default_rng(seed).permutation(len(self))
        cut = len(order) - max(1, int(round(share * len(order))))
        return self.take(order[:cut]), self.take(order[cut:])

    @property
    def feeds(self) -> list[Feeds]:
        """One feed per sample, by input name, each with a batch axis of one."""
        return [{n: a[i, ...] if n in self.unbatched else a[i:i + 1]
                 for n, a in zip(self.names, self.x)} for i in range(len(self))]

    def for_converters(self, specs: list[TensorSpec]) -> Union[np.ndarray, Feeds]:
        """What export/quantize take: one array for single-input models, else arrays by name."""
        return self.x[0] if len(self.x) == 1 else {s.name: a for s, a in zip(specs, self.x)}

    @property
    def random(self) -> bool:
        return self.source == "random"

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "samples": len(self), "random": self.random}


@dataclass(frozen=True)
class _Item:
    """One sample before loading: raw inputs (or a path), and its label if known."""

    inputs: Any
    label: Any = None


class Dataset:
    """SampleSet (and labels) for evaluation and calibration; see the module docstring."""

    def __init__(
        self,
        source: Union[str, Path, Iterable[Any]],
        transform: Optional[Callable[[Any], Any]] = None,
        *,
        preprocessing: Union[Preprocessing, dict[str, Any], None] = None,
        classes: Optional[list[str]] = None,
    ) -> None:
        self.transform = transform
        self.preprocessing = (Preprocessing.from_dict(preprocessing)
                              if isinstance(preprocessing, dict) else preprocessing)
        self.classes = list(classes) if classes is not None else None
        self.specs: Optional[list[TensorSpec]] = None  # set by for_model
        self._arrays: Optional[Feeds] = None
        self._shared: Feeds = {}  # rank-0 arrays of an .npz: one value for every sample
        self._labels_in_samples = False  # labels come out of the transform (iterables)
        if isinstance(source, (str, Path)):
            path = Path(source)
            self.source = str(path)
            if path.is_dir():
                self._items = _folder_items(path)
            elif path.suffix.lower() == ".npz" and path.is_file():
                self._items = self._npz_items(path)
            elif not path.exists():
                raise ConfigError(f"data '{path}' does not exist", "check the path")
            else:
                raise ConfigError(f"cannot read data from '{path}'",
                                  "pass an .npz file, a folder of images, or a Python iterable")
        else:
            self.source = type(source).__name__
            self._items = [_Item(item) for item in source]
            self._labels_in_samples = True
        if not self._items:
            raise ConfigError(f"data '{self.source}' holds no samples", "pass at least one sample")
        self._labels = self._label_array()

    # -- reading -------------------------------------------------------------------------------
    def _npz_items(self, path: Path) -> list[_Item]:
        arrays = read_npz(path)
        labels = arrays.pop("y", None)
        self._shared = {k: v for k, v in arrays.items() if v.ndim == 0}  # e.g. a sample rate
        arrays = {k: v for k, v in arrays.items() if v.ndim > 0}
        if self._shared and not arrays:
            arrays, self._shared = self._shared, {}  # only scalars: then they are one sample each
        if not arrays:
            raise ConfigError(f"'{path}' has no input arrays (at most labels 'y')",
                              "store inputs as 'x' or under the model's input names")
        counts = {k: len(v) if v.ndim else 1 for k, v in arrays.items()}
        if labels is not None:
            counts["y"] = len(labels) if labels.ndim else 0
        if len(set(counts.values())) != 1:
            raise ConfigError(f"arrays in '{path}' disagree on the number of samples: {counts}",
                              "give every array (and y) the same first dimension")
        self._arrays = arrays
        n = next(iter(counts.values()))
        return [_Item(i, None if labels is None else labels[i]) for i in range(n)]

    def _label_array(self) -> Optional[np.ndarray]:
        raw = [item.label for item in self._items]
        if all(v is None for v in raw):
            return None
        if any(v is None for v in raw):
            missing = sum(v is None for v in raw)
            raise ConfigError(f"{missing} of {len(raw)} samples in '{self.source}' have no label",
                              "label every sample or none")
        names = [str(v) for v in raw]
        if all(_is_int(v) for v in raw):
            return np.asarray([int(v) for v in raw], np.int64)
        if self.classes is None:
            self.classes = sorted(set(names))
        return self._indices(names)

    def _indices(self, names: list[str]) -> np.ndarray:
        assert self.classes is not None
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise ConfigError(f"labels {unknown[:5]} are not among the model's classes",
                              f"use class names from {self.classes[:10]}... or class indices")
        return np.asarray([index[n] for n in names], np.int64)

    def _load(self, item: _Item) -> tuple[Feeds, Any]:
        """One sample: its inputs as a dict of arrays (no batch axis), and its label."""
        label = item.label
        if self._arrays is not None:
            value: Any = {k: v[item.inputs] if v.ndim else v for k, v in self._arrays.items()}
            value.update(self._shared)
        else:
            value = item.inputs if self.transform is None else self.transform(item.inputs)
            if isinstance(value, tuple) and len(value) == 2 and _is_label(value[1]):
                value, label = value
        if isinstance(value, dict):
            feeds = {str(k): np.asarray(v) for k, v in value.items()}
        elif isinstance(value, (tuple, list)) and not isinstance(value, np.ndarray):
            raise ConfigError(f"a sample of '{self.source}' is a {type(value).__name__} of "
                              f"{len(value)} items", "return an array, a dict of arrays by input "
                              "name, or a pair (inputs, label) from the transform")
        else:
            feeds = {SINGLE: value}
        if self.preprocessing is not None:
            if len(feeds) != 1:
                raise ConfigError("a preprocessing spec applies to single-input data only",
                                  "preprocess multi-input samples in the transform")
            (name, raw), = feeds.items()
            feeds = {name: self.preprocessing.sample(raw)}
        elif any(isinstance(v, (str, Path)) for v in feeds.values()):
            raise ConfigError(f"'{self.source}' holds image files but no preprocessing spec",
                              "pass preprocessing=..., or call .for_model(session) on a model "
                              "whose manifest has one")
        return {k: np.asarray(v) for k, v in feeds.items()}, label

    # -- public --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._items)

    @property
    def labels(self) -> Optional[np.ndarray]:
        """Integer labels (N,), or None for unlabelled data."""
        if self._labels is None and self._labels_in_samples:
            found = [self._load(item)[1] for item in self._items]
            if all(v is not None for v in found):
                self._labels = np.asarray([int(v) for v in found], np.int64)
        return self._labels

    def __iter__(self) -> Iterator[tuple[Feeds, Optional[int]]]:
        """(inputs by name without the batch axis, label or None) per sample."""
        for i, item in enumerate(self._items):
            feeds, label = self._load(item)
            yield self._fit(feeds), (None if label is None else int(
                self._labels[i] if self._labels is not None else label))

    def batches(self, batch_size: int = 32) -> Iterator[tuple[Feeds, Optional[np.ndarray]]]:
        """Stacked inputs (batch_size, ...) by input name, and their labels (or None)."""
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}", "pass 1 or more")
        fixed = self._fixed_batch()
        if fixed is not None and batch_size != fixed:
            raise ConfigError(f"the model takes batches of exactly {fixed}, asked for {batch_size}",
                              f"use batch_size={fixed}, or export the model with a dynamic batch")
        feeds: list[Feeds] = []
        labels: list[Optional[int]] = []
        for sample, label in self:
            feeds.append(sample)
            labels.append(label)
            if len(feeds) == batch_size:
                yield _stack(feeds, labels, self.specs)
                feeds, labels = [], []
        if feeds:
            yield _stack(feeds, labels, self.specs)

    def arrays(self) -> tuple[Feeds, Optional[np.ndarray]]:
        """Every sample stacked into one batch per input, and the labels."""
        if not len(self):
            return {}, None
        feeds, labels = zip(*self)
        return _stack(feeds, labels, self.specs)

    def samples(self, limit: Optional[int] = None) -> SampleSet:
        """The (first ``limit``) samples in memory, stacked per input, with their labels."""
        feeds, labels = [], []
        for sample, label in islice(self, limit):
            feeds.append(sample)
            labels.append(label)
        known = None if any(v is None for v in labels) else np.asarray(labels, np.int64)
        return SampleSet.from_feeds(feeds, str(self.source), labels=known)

    def for_model(self, model: Any) -> Dataset:
        """Bind to a model (a runtime Session or a list of TensorSpec): check every input's shape
        and dtype on the first sample and name the arrays after the model's inputs.

        A Session's manifest supplies the preprocessing spec (image folders) and the class names
        (labels given as names) when this Dataset has none.  Returns a new Dataset.
        """
        import copy

        bound = copy.copy(self)
        specs = list(model.inputs) if hasattr(model, "inputs") else list(model)
        manifest = getattr(model, "manifest", None)
        if bound.preprocessing is None and self._arrays is None:
            bound.preprocessing = preprocessing_from_manifest(manifest)
        if self._labels is not None and self.classes and manifest and manifest.get("labels"):
            bound.classes = [str(c) for c in manifest["labels"]]
            bound._labels = bound._indices([self.classes[i] for i in self._labels])
        bound.specs = specs
        first, _ = bound._load(bound._items[0])
        bound._fit(first)
        return bound

    def first_sample(self) -> Feeds:
        """The first sample's inputs as loaded (preprocessed, not yet checked or cast): what
        a caller inspects for raw pixels where model-ready values belong."""
        return self._load(self._items[0])[0]

    # -- checking against the model ------------------------------------------------------------
    def _fixed_batch(self) -> Optional[int]:
        if not self.specs:
            return None
        dim = self.specs[0].shape[0] if self.specs[0].shape else None
        return dim if isinstance(dim, int) and dim > 0 else None

    def _fit(self, feeds: Feeds) -> Feeds:
        """Rename a single unnamed input and check shapes/dtypes when bound to a model."""
        if self.specs is None:
            return feeds
        names = [s.name for s in self.specs]
        if set(feeds) == {SINGLE} and names != [SINGLE]:
            if len(names) != 1:
                raise ConfigError(f"the model takes {len(names)} inputs {names}, the data has one "
                                  "array 'x'", "store one array per input name in the .npz")
            feeds = {names[0]: feeds[SINGLE]}
        if set(feeds) != set(names):
            raise ConfigError(f"the data has inputs {sorted(feeds)}, the model takes {names}",
                              "name the arrays after the model's inputs (or 'x' for one input)")
        return {s.name: _check_sample(feeds[s.name], s, self.source) for s in self.specs}


def _check_sample(arr: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    want = spec.shape[1:]  # a rank-0 input (a sample rate) has no batch axis: () either way
    if arr.ndim == len(spec.shape) and arr.shape[:1] == (1,):
        arr = arr[0]  # a sample that kept a batch axis of one
    if arr.ndim != len(want) or any(
        isinstance(d, int) and d >= 0 and d != a for d, a in zip(want, arr.shape)
    ):
        fix = ("give single samples without the batch axis (a torch Dataset, not a DataLoader)"
               if arr.ndim == len(spec.shape) else
               "prepare the data for this model's input shape, or give the matching preprocessing")
        raise ConfigError(
            f"data sample shape {tuple(arr.shape)} from '{source}' does not match the model's "
            f"input '{spec.name}' {format_shape(spec.shape)} (one sample is {format_shape(want)})",
            fix,
        )
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise ConfigError(f"data for input '{spec.name}' from '{source}' holds NaN or infinite "
                          "values", "clean the data: calibration and evaluation need finite inputs")
    dtype = np.dtype(spec.dtype)
    if arr.dtype != dtype:
        if not np.can_cast(arr.dtype, dtype, casting="same_kind"):
            raise ConfigError(f"data for input '{spec.name}' is {arr.dtype}, the model takes {dtype}",
                              f"store the data as {dtype}")
        arr = arr.astype(dtype)
    return arr


def _stack(feeds: Iterable[Feeds], labels: Iterable[Optional[int]],
           specs: Optional[list[TensorSpec]] = None) -> tuple[Feeds, Optional[np.ndarray]]:
    feeds, labels = list(feeds), list(labels)
    scalar = {s.name for s in specs or [] if not s.shape}
    batch = {name: _one_value([f[name] for f in feeds], name) if name in scalar
             else np.stack([f[name] for f in feeds]) for name in feeds[0]}
    known = None if any(v is None for v in labels) else np.asarray(labels, np.int64)
    return batch, known


def _one_value(values: list[np.ndarray], name: str) -> np.ndarray:
    """A rank-0 input has no batch axis: a batch carries one value for all its samples."""
    if any(not np.array_equal(v, values[0]) for v in values[1:]):
        raise ConfigError(f"input '{name}' is a scalar (no batch axis) but the samples give it "
                          "different values", "give it one value for all samples (a rank-0 "
                          "array in the .npz), or use batches of 1")
    return values[0]


def _is_int(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iu"
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def _is_label(value: Any) -> bool:
    """A class index or name: what the second element of an (inputs, label) pair looks like."""
    if isinstance(value, str) or _is_int(value):
        return True
    return getattr(value, "ndim", None) == 0 or (hasattr(value, "numel") and value.numel() == 1)


def _folder_items(folder: Path) -> list[_Item]:
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ConfigError(f"image folder '{folder}' holds no images",
                          f"add image files ({', '.join(IMAGE_SUFFIXES[:4])}, ...) to it")
    labels_file = next((folder / n for n in LABEL_FILES if (folder / n).is_file()), None)
    if labels_file is None:
        return [_Item(p) for p in images]
    labels = read_labels_file(labels_file)
    on_disk = {p.name for p in images}
    missing = sorted(set(labels) - on_disk)
    extra = sorted(on_disk - set(labels))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} listed but missing ({', '.join(missing[:3])})")
        if extra:
            parts.append(f"{len(extra)} images without a label ({', '.join(extra[:3])})")
        raise ConfigError(f"{labels_file.name} does not match the images in '{folder}': "
                          + "; ".join(parts), f"list every image in {labels_file.name} exactly once")
    return [_Item(p, labels[p.name]) for p in images]


def read_labels_file(path: Path) -> dict[str, str]:
    """``filename,label`` rows (comma or whitespace separated, optional header) -> {name: label}."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", "write it as UTF-8 text") from None
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
    if rows and len(rows[0]) == 1:  # "filename label with spaces", whitespace separated
        rows = [line.split(None, 1) for line in text.splitlines()
                if line.strip() and not line.startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["filename", "label"], ["file", "label"]):
        rows = rows[1:]
    labels: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ConfigError(f"{path.name} row {number} is {row!r}, expected filename,label",
                              "write one 'filename,label' per line")
        name = Path(row[0].strip()).name
        if name in labels:
            raise ConfigError(f"{path.name} lists '{name}' twice", "list every image once")
        labels[name] = row[1].strip()
    if not labels:
        raise ConfigError(f"{path} lists no images", "write one 'filename,label' per line")
    return labels

"""A model presented in its source's names and layout, as its manifest records them.

onnx2tf writes NHWC: an ONNX model's NCHW input ``input`` becomes a TFLite tensor of shape
(1, 224, 224, 3), and it may rename tensors (``input.1``).  The export records, per tensor of
the model file, the source's name (``source_name``, where it differs) and the transpose that
made the model's tensor from the source's (``source_perm``: ``model = source.transpose(perm)``).
``load`` reads those and wraps the backend's session in a ``MappedSession`` (mapped.py), so
``run`` takes the same feed dict (names, NCHW arrays) as the ONNX and OpenVINO exports and
returns the source's outputs.  This module is the one place that decides it: the bench agent, parity,
compress and ``inspect`` all see the session as it presents itself.

``load(path, layout="model")`` opts out: the model file's own tensors, names and layout.  A
model whose manifest records no such fields (a native NHWC TFLite, any ONNX) is never mapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
from edgeship.runtime.errors import ConfigError, ModelError

LAYOUTS = ("source", "model")  # load(layout=...): the source's view (default), or the file's


@dataclass(frozen=True)
class TensorMap:
    """One tensor: its name in the model file, its source's name, and ``perm`` with
    ``model_array = source_array.transpose(perm)`` (None: same layout)."""

    model: str
    source: str
    perm: Optional[tuple[int, ...]] = None

    @property
    def inverse(self) -> Optional[tuple[int, ...]]:
        return None if self.perm is None else tuple(int(i) for i in np.argsort(self.perm))

    def to_model(self, arr: np.ndarray) -> np.ndarray:
        return arr if self.perm is None else np.asarray(arr).transpose(self.perm)

    def to_source(self, arr: np.ndarray) -> np.ndarray:
        inverse = self.inverse
        return arr if inverse is None else np.ascontiguousarray(np.asarray(arr).transpose(inverse))

    def model_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape if self.perm is None else tuple(shape[i] for i in self.perm)

    def source_spec(self, spec: Any) -> Any:
        """A ``TensorSpec`` of the model's, as the source's."""
        inverse = self.inverse
        shape = spec.shape if inverse is None else tuple(spec.shape[i] for i in inverse)
        return replace(spec, name=self.source, shape=shape)

    def source_layout(self, layout: Optional[str]) -> Optional[str]:
        """The source's layout string, from the model's (``NHWC`` -> ``NCHW``)."""
        inverse = self.inverse
        if layout is None or inverse is None or len(layout) != len(inverse):
            return layout
        return "".join(layout[i] for i in inverse)

    def describe(self) -> str:
        renamed = f"'{self.model}' as '{self.source}'" if self.model != self.source else \
            f"'{self.source}'"
        return renamed + (f" (the file's tensor .transpose({list(self.inverse or ())}))"
                          if self.perm else "")


@dataclass(frozen=True)
class IOMap:
    """How a model's tensors map onto its source's, in the model file's order."""

    inputs: tuple[TensorMap, ...]
    outputs: tuple[TensorMap, ...]

    @classmethod
    def from_manifest(cls, manifest: Optional[Mapping[str, Any]]) -> Optional[IOMap]:
        """The map a manifest records, or None when its tensors are the source's as they are."""
        if not manifest:
            return None
        tensors = [manifest.get(kind) or [] for kind in ("inputs", "outputs")]
        ins, outs = ([_tensor_map(t) for t in group] if isinstance(group, list) else [None]
                     for group in tensors)
        if any(m is None for m in [*ins, *outs]):
            raise ModelError("the manifest's inputs/outputs are malformed (a name or source_perm)",
                             "re-export the model, or load it with layout='model'")
        iomap = cls(tuple(m for m in ins if m), tuple(m for m in outs if m))
        return iomap if any(m.perm or m.model != m.source for m in iomap.all) else None

    @property
    def all(self) -> tuple[TensorMap, ...]:
        return self.inputs + self.outputs

    def model_input_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """``load(input_shapes=...)`` given in the source's names and layout, for the backend."""
        by_source = {m.source: m for m in self.inputs}
        return {(by_source[k].model if k in by_source else k):
                (by_source[k].model_shape(tuple(v)) if k in by_source else tuple(v))
                for k, v in shapes.items()}

    def image_layout(self, layout: str) -> str:
        """The layout raw images are prepared in for this map's (single) image input, from the
        manifest's preprocessing layout, which is the model file's."""
        source = self.inputs[0].source_layout(layout) if len(self.inputs) == 1 else layout
        return source if source in ("NCHW", "NHWC") else layout

    def describe(self) -> str:
        changed = [m.describe() for m in self.all if m.perm or m.model != m.source]
        return "the source's names and layout (from the manifest): " + ", ".join(changed)


def _tensor_map(tensor: Any) -> Optional[TensorMap]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        return None
    source = tensor.get("source_name") or tensor["name"]
    perm = tensor.get("source_perm")
    if perm is not None and (not isinstance(perm, list) or not all(type(i) is int for i in perm)
                             or sorted(perm) != list(range(len(perm)))):
        return None
    if not isinstance(source, str):
        return None
    return TensorMap(tensor["name"], source, tuple(perm) if perm and perm != sorted(perm) else None)


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout '{layout}'",
                          "use layout='source' (the source's names and layout, the default) or "
                          "'model' (the model file's own tensors)")

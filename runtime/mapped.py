"""The session ``load`` returns for a model whose manifest maps its tensors onto its source's
(``iomap.py``): the source's names and layout outside, the backend's session inside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Callable, Optional

import numpy as np
from edgeship.runtime.errors import ModelError
from edgeship.runtime.iomap import IOMap, TensorMap
from edgeship.runtime.session import Session, TensorSpec


class MappedSession(Session):
    """A backend's session shown in the source's names and layout; ``model`` is the backend's
    own session (the file's tensors), ``io_map`` the mapping.  The transposes are numpy copies
    outside the timed call: ``prepare`` binds model-layout inputs once."""

    def __init__(self, model: Session, io_map: IOMap) -> None:
        self.model = model
        self.io_map = io_map
        self.path = model.path
        self.manifest = model.manifest
        self.inputs = _mapped_specs(model.inputs, io_map.inputs, "input")
        self.outputs = _mapped_specs(model.outputs, io_map.outputs, "output")
        self.info = replace(model.info, details={**model.info.details, "io": io_map.describe()})
        self._in = {m.source: m for m in io_map.inputs}
        self._out = {m.model: m for m in io_map.outputs}

    def _model_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {self._in[k].model: self._in[k].to_model(v) for k, v in feeds.items()}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.model._run(self.model.check_feeds(self._model_feeds(feeds)))
        return {self._out[k].source: self._out[k].to_source(v) for k, v in out.items()}

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        return self.model.prepare(self._model_feeds(self.check_feeds(feeds)))

    def node_coverage(self, feeds: Optional[Mapping[str, np.ndarray]] = None) -> Any:
        mapped = None if feeds is None else self._model_feeds(self.check_feeds(feeds))
        return self.model.node_coverage(mapped)

    def tensor_dtypes(self) -> Optional[dict[str, int]]:
        return self.model.tensor_dtypes()


def _mapped_specs(specs: list[TensorSpec], maps: tuple[TensorMap, ...], kind: str) -> list[TensorSpec]:
    """The model's specs as the source's; a manifest that does not describe these tensors is
    an error, never a silent guess."""
    by_model = {m.model: m for m in maps}
    if sorted(by_model) != sorted(s.name for s in specs):
        raise ModelError(
            f"the manifest's {kind}s {sorted(by_model)} are not the model's "
            f"{sorted(s.name for s in specs)}",
            "re-export the model (the manifest belongs to another file), or load it with "
            "layout='model'")
    mapped = []
    for spec in specs:
        m = by_model[spec.name]
        if m.perm is not None and len(m.perm) != len(spec.shape):
            raise ModelError(f"the manifest's source_perm {list(m.perm)} for '{spec.name}' does "
                             f"not fit its rank-{len(spec.shape)} shape",
                             "re-export the model, or load it with layout='model'")
        mapped.append(m.source_spec(spec))
    return mapped

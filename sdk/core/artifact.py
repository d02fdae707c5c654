"""ModelArtifact: a model file plus the manifest beside it (``X.ext`` -> ``X.ext.manifest.json``).

The manifest says what a model file is without loading it: format, inputs/outputs with their
layout, how to turn a raw image into its input (preprocessing), labels, where it came from
(source file and sha256, the steps applied) and how it was checked (parity, quantization).
It is JSON validated by pydantic (``extra="forbid"``) when read, and written atomically.

One reader, one writer, one way to make a manifest from another:

- ``read_manifest`` validates what the runtime's reader (``edgeship.runtime.manifest``, which
  the device uses alone) returns; nothing else parses a manifest;
- ``write_manifest`` (``ModelArtifact.save``) is the only code that writes one;
- ``derive_manifest`` (``ModelArtifact.derive``) describes a file made from another by a step:
  it carries the source's provenance, preprocessing, labels, task and quantization forward and
  appends the step, so no step re-implements the carrying.

Example:
    >>> from edgeship.core.artifact import ModelArtifact
    >>> art = ModelArtifact.load("examples/models/digits_cnn.onnx")      # doctest: +SKIP
    >>> art.manifest.preprocessing_spec().batch(raw_8x8_image).shape     # doctest: +SKIP
    (1, 1, 8, 8)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from edgeship.core.errors import ConfigError, ModelError
from edgeship.core.io import write_atomic
from edgeship.runtime.formats import FORMATS, files_of, format_of, renamed
from edgeship.runtime.manifest import manifest_path, read_manifest_file
from edgeship.runtime.manifest import read_manifest as read_raw_manifest
from edgeship.runtime.preprocess import Preprocessing
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

MANIFEST_SCHEMA = "edgeship.manifest/1"

Dim = Union[int, str, None]  # a symbolic name or None for a dynamic dimension


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorInfo(_Strict):
    """An input or output as the manifest records it."""

    name: str
    shape: list[Dim]
    dtype: str
    layout: Optional[str] = None  # NCHW / NHWC for image tensors, None when not an image
    # What the source called it and how its layout was changed (onnx2tf: NCHW -> NHWC), so the
    # runtime shows the source's tensors (edgeship.runtime.iomap); None where it kept them.
    source_name: Optional[str] = None
    source_perm: Optional[list[int]] = None  # this tensor = the source's .transpose(source_perm)

    @model_serializer(mode="wrap")
    def _without_unmapped(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a tensor the converter kept as it was is written as before these fields existed
        data: dict[str, Any] = handler(self)
        for key in ("source_name", "source_perm"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class StepRecord(_Strict):
    step: str
    config: dict[str, Any] = Field(default_factory=dict)


class Provenance(_Strict):
    source: str
    source_sha256: str
    steps: list[StepRecord] = Field(default_factory=list)
    created_by: str

    @classmethod
    def continued(cls, upstream: Optional[Mapping[str, Any]], steps: Sequence[StepRecord], *,
                  source: str, source_sha256: str) -> Provenance:
        """The provenance of a file made by ``steps`` from one whose manifest is ``upstream``
        (a dict as the runtime reads it, possibly partial, or None): its source and steps, then
        these; ``source``/``source_sha256`` where upstream names none."""
        before = (upstream or {}).get("provenance") or {}
        return cls(source=before.get("source") or source,
                   source_sha256=before.get("source_sha256") or source_sha256,
                   steps=[*(StepRecord(**s) for s in before.get("steps", [])), *steps],
                   created_by=created_by())


class Manifest(_Strict):
    """The JSON beside every model file edgeship writes (schema edgeship.manifest/1)."""

    schema_: Literal["edgeship.manifest/1"] = Field("edgeship.manifest/1", alias="schema")
    format: str  # a name in the formats table (runtime/formats.py FORMATS)
    file: str
    files: list[str]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    preprocessing: Optional[dict[str, Any]] = None  # validated by runtime.preprocess
    labels: Optional[list[str]] = None
    task: Optional[Literal["classification"]] = None
    provenance: Provenance
    quantization: Optional[dict[str, Any]] = None
    parity: Optional[dict[str, Any]] = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS:
            raise ValueError(f"unknown format {value!r}, expected one of {list(FORMATS)}")
        return value

    @field_validator("preprocessing")
    @classmethod
    def _valid_preprocessing(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if value is None:
            return None
        try:
            return Preprocessing.from_dict(value).to_dict()
        except ConfigError as exc:
            raise ValueError(exc.problem) from None

    def preprocessing_spec(self) -> Optional[Preprocessing]:
        """The preprocessing as the runtime applies it (``.batch(images)``), or None."""
        return None if self.preprocessing is None else Preprocessing.from_dict(self.preprocessing)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True, mode="json"), indent=2) + "\n"


def sha256_file(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def created_by() -> str:
    from edgeship.core import __version__

    return f"edgeship {__version__}"


@dataclass
class ModelArtifact:
    """A model file and its manifest."""

    path: Path
    manifest: Manifest

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.path)

    @property
    def files(self) -> list[Path]:
        """Every file of the model (the .xml and its .bin for OpenVINO), manifest excluded."""
        return [self.path.parent / name for name in self.manifest.files]

    def sha256(self) -> str:
        return sha256_file(self.path)

    def save(self) -> Path:
        """Write the manifest beside the model, atomically; returns its path."""
        return write_manifest(self.path, self.manifest)

    def derive(self, path: Union[str, Path], *, step: StepRecord, inputs: list[TensorInfo],
               outputs: list[TensorInfo], files: Optional[Sequence[str]] = None,
               **fields: Any) -> ModelArtifact:
        """The artifact of ``path``, made from this one by ``step`` (see ``derive_manifest``);
        ``files`` defaults to the model's files there (``formats.files_of``). Save it with
        ``.save()``."""
        path = Path(path)
        upstream = self.manifest.model_dump(by_alias=True, mode="json")
        names = [f.name for f in files_of(path)] if files is None else list(files)
        return ModelArtifact(path, derive_manifest(
            upstream, path, step=step, files=names, inputs=inputs, outputs=outputs,
            source=self.manifest.provenance.source,
            source_sha256=self.manifest.provenance.source_sha256, **fields))

    @classmethod
    def load(cls, model: Union[str, Path]) -> ModelArtifact:
        """Read the manifest beside ``model``; a model without one raises ModelError."""
        model = Path(model)
        if not model.is_file():
            raise ModelError(f"model file '{model}' does not exist", "check the path")
        path = manifest_path(model)
        if not path.is_file():
            raise ModelError(f"'{model.name}' has no manifest ('{path.name}')",
                             "export it with edgeship export, which writes one")
        return cls(model, read_manifest(path))


def read_manifest(path: Union[str, Path]) -> Manifest:
    """The manifest file ``path``, read by the runtime's reader and validated."""
    return _validated(read_manifest_file(path), Path(path).name)


def _validated(data: Mapping[str, Any], name: str) -> Manifest:
    try:
        return Manifest.model_validate(data)
    except (ValueError, RecursionError) as exc:  # ValidationError is a ValueError
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            if isinstance(exc, ValidationError)
            else str(exc).splitlines()[0]
        )
        raise ModelError(f"manifest '{name}' is not valid: {detail}",
                         "re-export the model to write a fresh manifest") from None


def write_manifest(model: Union[str, Path], manifest: Union[Manifest, Mapping[str, Any]]) -> Path:
    """The one manifest writer: ``manifest`` beside ``model``, atomically; returns its path.
    A mapping (another model's manifest as the runtime read it, retargeted by ``copy_model``)
    is written as it is, as the copy of a file would be."""
    text = (manifest.to_json() if isinstance(manifest, Manifest)
            else json.dumps(dict(manifest), indent=2) + "\n")
    return write_atomic(manifest_path(model), text)  # mode 0666 & ~umask, like the model


_CARRIED = ("preprocessing", "labels", "task", "quantization")


def derive_manifest(upstream: Optional[Mapping[str, Any]], model: Union[str, Path], *,
                    step: StepRecord, files: Sequence[str], inputs: list[TensorInfo],
                    outputs: list[TensorInfo], source: str, source_sha256: str,
                    **fields: Any) -> Manifest:
    """The manifest of ``model``, made by ``step`` from a file whose manifest is ``upstream``
    (as the runtime reads it; None when it had none).

    Carried forward: provenance (its source, its steps, then ``step``; ``source`` and
    ``source_sha256`` where upstream has none), preprocessing, labels, task and quantization.
    ``fields`` (those four, and ``parity``) replace what would be carried unless None; parity
    is never carried (it describes one file). The format comes from the file's suffix.
    """
    model = Path(model)
    unknown = set(fields) - {*_CARRIED, "parity"}
    if unknown:
        raise TypeError(f"derive_manifest got unknown fields {sorted(unknown)}")
    up = upstream or {}
    carried = {k: fields[k] if fields.get(k) is not None else up.get(k) for k in _CARRIED}
    try:
        provenance = Provenance.continued(up, [step], source=source, source_sha256=source_sha256)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"the manifest of the source of '{model.name}' has bad provenance: "
                         f"{' '.join(str(exc).split())[:160]}",
                         "re-export the source model to write a fresh manifest") from None
    return _validated({
        "schema": MANIFEST_SCHEMA, "format": format_of(model).name, "file": model.name,
        "files": list(files),
        "inputs": [t.model_dump() for t in inputs], "outputs": [t.model_dump() for t in outputs],
        **carried, "provenance": provenance.model_dump(), "parity": fields.get("parity"),
    }, manifest_path(model).name)


def carried_layouts(upstream: Optional[Mapping[str, Any]]) -> dict[str, Optional[str]]:
    """The input layouts a source's manifest records, by input name."""
    ins = (upstream or {}).get("inputs") or []
    return {i["name"]: i.get("layout") for i in ins if isinstance(i, dict) and "name" in i}


def copy_model(path: Path, directory: Path, stem: str) -> list[Path]:
    """Copy a model's files (``formats.renamed``) and its manifest into ``directory`` as
    ``stem``; returns the copies, the manifest last when there is one."""
    directory.mkdir(parents=True, exist_ok=True)
    copies = []
    for source, name in renamed(path, stem):
        shutil.copyfile(source, directory / name)
        copies.append(directory / name)
    upstream = read_raw_manifest(path)
    if upstream is not None:
        copy = {**upstream, "file": copies[0].name, "files": [c.name for c in copies]}
        copies.append(write_manifest(copies[0], copy))
    return copies

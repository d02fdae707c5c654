"""ModelArtifact: a model file plus the manifest beside it (``X.ext`` -> ``X.ext.manifest.json``).

The manifest says what a model file is without loading it: format, inputs/outputs with their
layout, how to turn a raw image into its input (preprocessing), labels, where it came from
(source file and sha256, the steps applied) and how it was checked (parity, quantization).
It is JSON validated by pydantic (``extra="forbid"``) when read, and written atomically.

Example:
    >>> from edgeship.core.artifact import ModelArtifact
    >>> art = ModelArtifact.load("examples/models/digits_cnn.onnx")      # doctest: +SKIP
    >>> art.manifest.preprocessing_spec().batch(raw_8x8_image).shape     # doctest: +SKIP
    (1, 1, 8, 8)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

from edgeship.core.errors import ConfigError, ModelError
from edgeship.core.io import write_atomic
from edgeship.runtime.preprocess import Preprocessing, manifest_path
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class StepRecord(_Strict):
    step: str
    config: dict[str, Any] = Field(default_factory=dict)


class Provenance(_Strict):
    source: str
    source_sha256: str
    steps: list[StepRecord] = Field(default_factory=list)
    created_by: str


class Manifest(_Strict):
    """The JSON beside every model file edgeship writes (schema edgeship.manifest/1)."""

    schema_: Literal["edgeship.manifest/1"] = Field("edgeship.manifest/1", alias="schema")
    format: Literal["onnx", "openvino", "tflite"]
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
        path = write_atomic(self.manifest_path, self.manifest.to_json())
        umask = os.umask(0)
        os.umask(umask)
        path.chmod(0o666 & ~umask)  # readable like the model file beside it (mkstemp makes 0600)
        return path

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
    path = Path(path)
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, ValidationError: ValueErrors
        detail = (
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            if isinstance(exc, ValidationError)
            else str(exc).splitlines()[0]
        )
        raise ModelError(f"manifest '{path.name}' is not valid: {detail}",
                         "re-export the model to write a fresh manifest") from None

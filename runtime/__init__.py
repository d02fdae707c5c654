"""edgeship.runtime: run any exported model with one call, on the device.

Stdlib + numpy at import time; each backend is imported only when a model needs it.

Example:
    >>> from edgeship import runtime
    >>> sess = runtime.load("model.tflite", threads=2)             # doctest: +SKIP
    >>> probs = sess.run({sess.inputs[0].name: x})                  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from edgeship.runtime.backends import import_backend, open_session
from edgeship.runtime.errors import (
    ConfigError,
    EdgeshipError,
    MissingBackendError,
    ModelError,
    UnsupportedError,
)
from edgeship.runtime.formats import (
    BACKENDS,
    FORMATS,
    backend_accepts,
    check_companions,
    format_for_path,
    quiet_backends,
)
from edgeship.runtime.iomap import IOMap, check_layout
from edgeship.runtime.manifest import read_manifest
from edgeship.runtime.mapped import MappedSession
from edgeship.runtime.session import BackendInfo, Session, TensorSpec

quiet_backends()  # none of the imports above loads a backend; anything later may


def parse_backend(value: str) -> tuple[str, Optional[str]]:
    """Split ``openvino:GPU`` / ``onnxruntime:CUDAExecutionProvider`` into backend and device."""
    name, _, device = value.partition(":")
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend '{name}'", f"use one of: {', '.join(BACKENDS)}")
    return name, (device or None)


def load(
    path: Union[str, Path],
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    *,
    device: Optional[str] = None,
    precision: Optional[str] = None,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    layout: str = "source",
) -> Session:
    """Load a model for inference.

    Args:
        path: .onnx, .xml (OpenVINO IR, its .bin beside it) or .tflite.
        backend: onnxruntime | openvino | tflite, optionally ``NAME:DEVICE`` (e.g.
            ``openvino:NPU``); by default chosen from the file suffix.
        threads: intra-op threads; None lets the backend decide.
        device: execution provider (onnxruntime) or device (OpenVINO); never silently replaced.
        precision: fp32/fp16/bf16 inference precision where the backend has a choice (OpenVINO).
        input_shapes: concrete shapes for inputs with dynamic dimensions.
        layout: "source" (default): where the manifest records that the export renamed or
            transposed tensors (onnx2tf's NHWC TFLite), the session shows and takes the source
            model's names and layout, so one feed dict runs every export; ``session.io_map``
            is then set and ``info.details["io"]`` says so.  "model": the file's own tensors.
    """
    check_layout(layout)
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file '{path}' does not exist", "check the path")
    if path.stat().st_size == 0:
        raise ModelError(f"model file '{path}' is empty", "re-export or re-copy the model")
    if backend:
        name, from_spec = parse_backend(backend)
        device = device or from_spec
        fmt = format_for_path(path)
        if not backend_accepts(name, fmt.name):
            raise UnsupportedError(
                f"the {name} backend cannot run {fmt.name} files ('{path.name}')",
                f"use one of {list(fmt.backends)}, or export to a format {name} runs",
            )
    else:
        name = format_for_path(path).backends[0]
    check_companions(path)
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}", "pass a positive count")
    manifest = read_manifest(path)  # preprocessing and labels for Session.run_raw; the io map
    io_map = IOMap.from_manifest(manifest) if layout == "source" else None
    if io_map and input_shapes:
        input_shapes = io_map.model_input_shapes(input_shapes)
    session = open_session(name, path, threads=threads, device=device, precision=precision,
                           input_shapes=input_shapes)
    session.manifest = manifest
    return MappedSession(session, io_map) if io_map else session


def available_backends() -> dict[str, str]:
    """Backends importable here, with the version of the module found."""
    found = {}
    for name in BACKENDS:
        try:
            module = import_backend(name)
        except MissingBackendError:
            continue
        found[name] = str(getattr(module, "__version__", "") or "installed")
    return found


__all__ = [
    "BACKENDS",
    "FORMATS",
    "BackendInfo",
    "ConfigError",
    "EdgeshipError",
    "MissingBackendError",
    "ModelError",
    "Session",
    "TensorSpec",
    "UnsupportedError",
    "available_backends",
    "load",
    "parse_backend",
]

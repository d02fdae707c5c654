"""The one table of model formats: names, suffixes, backends, precisions.

Every other module (runtime loaders, exporters, the planner, the CLI) reads this table instead of
spelling format facts again.  Stdlib only: it ships to devices with the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeship.runtime.errors import ConfigError, ModelError


@dataclass(frozen=True)
class Backend:
    """A runtime that can execute models, and how to install it."""

    name: str
    modules: tuple[str, ...]  # importable modules, in order of preference
    pip: str  # what to `pip install` when none of the modules is importable
    session: str  # "module:Class" of the edgeship Session that drives it
    # Modules kept from importing alongside it: usage telemetry that phones home from a forked
    # process (no network on devices, and a fork next to other threads can deadlock).
    blocked: tuple[str, ...] = ()
    # Environment set (unless the user set it) before it is imported, for the same reason:
    # files it would leave behind (onnxruntime's telemetry writes ~/.cache/Microsoft/... and a
    # session file, .ses, into $TMPDIR on every import).
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Format:
    """A model file format edgeship reads and writes."""

    name: str
    suffixes: tuple[str, ...]
    backends: tuple[str, ...]  # backends that run it, preferred first
    precisions: tuple[str, ...]  # precisions an export to this format can carry
    layout: str  # the layout of image inputs exporters produce by default
    exporter: str = ""  # "module:function" that writes this format (converters/export/)


def quiet_env() -> dict[str, str]:
    """Every backend's ``env``: what a process that may import any of them should carry."""
    return {k: v for backend in BACKENDS.values() for k, v in backend.env}


BACKENDS: dict[str, Backend] = {
    "onnxruntime": Backend(
        "onnxruntime",
        ("onnxruntime",),
        "onnxruntime",
        "edgeship.runtime.backends.onnxruntime_backend:OnnxRuntimeSession",
        env=(("ORT_DISABLE_TELEMETRY", "1"),),
    ),
    "openvino": Backend(
        "openvino",
        ("openvino",),
        "openvino",
        "edgeship.runtime.backends.openvino_backend:OpenVINOSession",
        blocked=("openvino_telemetry",),
    ),
    # ai-edge-litert works with numpy 2 and ships aarch64 wheels; tflite-runtime only works with
    # numpy 1.x (as on many Raspberry Pi OS images); tensorflow is the heavy last resort.
    "tflite": Backend(
        "tflite",
        ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow"),
        "ai-edge-litert",
        "edgeship.runtime.backends.tflite_backend:TFLiteSession",
    ),
}

FORMATS: dict[str, Format] = {
    "onnx": Format(
        "onnx", (".onnx",), ("onnxruntime", "openvino"), ("fp32", "fp16", "int8", "int4"), "NCHW",
        exporter="edgeship.converters.export.onnx:export_onnx",
    ),
    "openvino": Format("openvino", (".xml",), ("openvino",), ("fp32", "fp16", "int8", "int4"), "NCHW",
                       exporter="edgeship.converters.export.openvino:export_openvino"),
    # litert-torch (torch -> TFLite) keeps NCHW; onnx2tf (ONNX -> TFLite) writes NHWC.  The
    # manifest of each export records the layout it really has.
    "tflite": Format("tflite", (".tflite",), ("tflite",), ("fp32", "fp16", "int8"), "NCHW",
                     exporter="edgeship.converters.export.tflite:export_tflite"),
}


def format_for_path(path: str | Path) -> Format:
    """The format a model file is in, from its suffix."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    known = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
    raise ModelError(
        f"cannot tell the format of '{path}' from its suffix '{suffix or '(none)'}'",
        f"use one of {known}, or pass --backend explicitly",
    )


def get_format(name: str) -> Format:
    """A format by name (onnx, openvino, tflite)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"unknown format '{name}'", f"use one of: {', '.join(FORMATS)}"
        ) from None


def get_backend(name: str) -> Backend:
    """A backend by name (onnxruntime, openvino, tflite)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown backend '{name}'", f"use one of: {', '.join(BACKENDS)}"
        ) from None


def quiet_backends() -> None:
    """Apply every backend's ``env`` to this process (before any backend is imported:
    edgeship.runtime calls it on import, and every edgeship module imports edgeship.runtime)."""
    import os

    for key, value in quiet_env().items():
        os.environ.setdefault(key, value)

"""The one table of model formats: names, suffixes, companion files, backends, precisions.

Every other module (runtime loaders, exporters, quantizers, the planner, the CLI, deployment)
reads this table instead of spelling format facts again: no suffix, companion file or precision
rule is written anywhere else.  Stdlib only: it ships to devices with the runtime.

A model is one *main* file (``format_of`` tells its format from the suffix) plus

- **companions**: files that must lie beside it, named from its stem (an OpenVINO IR's weights,
  ``model.xml`` -> ``model.bin``); a model without them cannot load (``check_companions``);
- **external data**: files the main file refers to by name and may or may not have (ONNX
  external tensors: ``model.onnx.data``, the name torch.onnx and onnx.save give them);
- its **manifest**, ``model.onnx.manifest.json`` (``MANIFEST_SUFFIX``; runtime/manifest.py).

``files_of(path)`` is all of it except the manifest.  Torch files (TorchScript, exported
programs) are sources edgeship exports from, never runs: ``SOURCES``.

To add a format: one ``FORMATS`` entry (suffixes, companions, external data, the backends that
run it, the precisions it holds, its exporter ``module:function`` in converters/export/); a new
runtime is one ``BACKENDS`` entry plus its Session in runtime/backends/ (and, if it takes
precision hints or has a quantizer, ``hints``/``exact``/``quantizes``).  Nothing else names
suffixes: tests/test_formats.py fails on a model suffix spelled outside this file.

Example:
    >>> format_of("m.xml").name, [p.name for p in companions("m.xml")]
    ('openvino', ['m.bin'])
    >>> backend_accepts("openvino", "onnx"), exact_precision("openvino")
    (True, 'fp32')
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
    # Inference precisions ``load(precision=...)`` may ask of it on an fp32 file (the others run
    # a file in the precision it was written in and reject a hint).
    hints: tuple[str, ...] = ()
    # The hint that makes it run a file as built.  OpenVINO runs fp32 models in bf16 on CPUs
    # with AMX (and fp16 on GPUs) unless told otherwise, so parity, accuracy and the reference
    # outputs would measure the device's choice instead of the model.
    exact: str | None = None
    # What its quantizer (converters/quantize/) reads and writes: formats, or "torch".
    quantizes: tuple[str, ...] = ()
    quantized_format: str = ""


@dataclass(frozen=True)
class Format:
    """A model file format edgeship reads and writes."""

    name: str
    suffixes: tuple[str, ...]
    backends: tuple[str, ...]  # backends that run it, preferred first
    precisions: tuple[str, ...]  # precisions an export to this format can carry
    layout: str  # the layout of image inputs exporters produce by default
    exporter: str = ""  # "module:function" that writes this format (converters/export/)
    title: str = ""  # how messages name a file of it
    # (suffix, role) of files beside it named from its stem, without which it does not load
    companions: tuple[tuple[str, str], ...] = ()
    # suffixes appended to its whole name of files it may refer to (ONNX external tensors)
    external_data: tuple[str, ...] = ()
    # "module:function" (stdlib only) listing the file names a model file refers to
    references: str = ""

    @property
    def suffix(self) -> str:
        """The suffix edgeship writes this format with."""
        return self.suffixes[0]

    def filename(self, stem: str) -> str:
        """``stem`` as a file of this format (``filename("m") == "m.onnx"``)."""
        return stem + self.suffix


@dataclass(frozen=True)
class SourceFormat:
    """A file edgeship reads models from but never runs (torch files)."""

    name: str
    suffixes: tuple[str, ...]
    written: str  # the suffix edgeship writes a torch module with (torch.export's archive)


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
        quantizes=("onnx",), quantized_format="onnx",
    ),
    "openvino": Backend(
        "openvino",
        ("openvino",),
        "openvino",
        "edgeship.runtime.backends.openvino_backend:OpenVINOSession",
        blocked=("openvino_telemetry",),
        hints=("fp32", "bf16", "fp16"), exact="fp32",
        quantizes=("onnx", "openvino"), quantized_format="openvino",
    ),
    # ai-edge-litert works with numpy 2 and ships aarch64 wheels; tflite-runtime only works with
    # numpy 1.x (as on many Raspberry Pi OS images); tensorflow is the heavy last resort.
    "tflite": Backend(
        "tflite",
        ("ai_edge_litert.interpreter", "tflite_runtime.interpreter", "tensorflow"),
        "ai-edge-litert",
        "edgeship.runtime.backends.tflite_backend:TFLiteSession",
        # onnx: through onnx2tf when it is installed (converters/quantize/tflite.py)
        quantizes=("torch", "onnx"), quantized_format="tflite",
    ),
}

FORMATS: dict[str, Format] = {
    "onnx": Format(
        "onnx", (".onnx",), ("onnxruntime", "openvino"), ("fp32", "fp16", "int8", "int4"), "NCHW",
        exporter="edgeship.converters.export.onnx:export_onnx", title="ONNX model",
        external_data=(".data",), references="edgeship.runtime.onnx_refs:external_locations",
    ),
    "openvino": Format("openvino", (".xml",), ("openvino",), ("fp32", "fp16", "int8", "int4"), "NCHW",
                       exporter="edgeship.converters.export.openvino:export_openvino",
                       title="OpenVINO IR", companions=((".bin", "weights"),)),
    # litert-torch (torch -> TFLite) keeps NCHW; onnx2tf (ONNX -> TFLite) writes NHWC.  The
    # manifest of each export records the layout it really has.
    "tflite": Format("tflite", (".tflite",), ("tflite",), ("fp32", "fp16", "int8"), "NCHW",
                     exporter="edgeship.converters.export.tflite:export_tflite", title="TFLite model"),
}


# TorchScript (.pt, .pth, .ts) or torch.export archives (.pt2)
SOURCES: dict[str, SourceFormat] = {
    "torch": SourceFormat("torch", (".pt", ".pth", ".pt2", ".ts"), written=".pt2"),
}

MANIFEST_SUFFIX = ".manifest.json"  # appended to the model file's whole name


def format_or_none(path: str | Path) -> Format | None:
    """The format a model file is in, from its suffix; None when no format has that suffix."""
    suffix = Path(path).suffix.lower()
    return next((fmt for fmt in FORMATS.values() if suffix in fmt.suffixes), None)


def is_format(path: str | Path, name: str) -> bool:
    """Whether ``path``'s suffix is format ``name``'s (``is_format("m.xml", "openvino")``)."""
    fmt = format_or_none(path)
    return fmt is not None and fmt.name == name


def is_torch_file(path: str | Path) -> bool:
    """Whether ``path`` is a torch file by its suffix (TorchScript, exported program)."""
    return Path(path).suffix.lower() in SOURCES["torch"].suffixes


def source_kind(path: str | Path) -> str | None:
    """What a model file is, from its suffix: a format name, "torch", or None."""
    fmt = format_or_none(path)
    return fmt.name if fmt else "torch" if is_torch_file(path) else None


def format_of(path: str | Path) -> Format:
    """The format a model file is in, from its suffix (a ModelError names the known ones)."""
    return format_for_path(path)


def format_for_path(path: str | Path) -> Format:
    """The format a model file is in, from its suffix."""
    fmt = format_or_none(path)
    if fmt is not None:
        return fmt
    suffix = Path(path).suffix.lower()
    known = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
    raise ModelError(
        f"cannot tell the format of '{path}' from its suffix '{suffix or '(none)'}'",
        f"use one of {known}, or pass --backend explicitly",
    )


def companions(path: str | Path) -> list[Path]:
    """The files ``path`` needs beside it, present or not (``m.xml`` -> ``[m.bin]``)."""
    path = Path(path)
    fmt = format_or_none(path)
    return [path.with_suffix(suffix) for suffix, _ in fmt.companions] if fmt else []


def external_data(path: str | Path) -> list[Path]:
    """The external data files beside ``path`` that exist: those its format's convention names
    (``m.onnx.data``) and those the file itself refers to (``Format.references``).  Only plain
    names beside the model count: a location with a directory part, absolute or ``..``, is
    never followed (deploy and copies lay files out flat, and a hostile model must not make
    edgeship read /etc/passwd as its weights)."""
    path = Path(path)
    fmt = format_or_none(path)
    if fmt is None:
        return []
    names = [path.name + s for s in fmt.external_data]
    if fmt.references and path.is_file():
        import importlib

        module, _, function = fmt.references.partition(":")
        names += getattr(importlib.import_module(module), function)(path)
    candidates = [path.with_name(n) for n in dict.fromkeys(names)
                  if n == Path(n).name and n not in ("", ".", "..") and n != path.name]
    return [p for p in candidates if p.is_file()]


def check_companions(path: str | Path) -> None:
    """Raise a ModelError naming the first companion file missing beside ``path``."""
    fmt = format_or_none(path)
    if fmt is None:
        return
    for companion, (suffix, role) in zip(companions(path), fmt.companions):
        if not companion.is_file():
            raise ModelError(f"{fmt.title} '{Path(path).name}' has no {role} file '{companion.name}'",
                             f"keep the {suffix} beside the {Path(path).suffix}")


def files_of(path: str | Path) -> list[Path]:
    """Every file of the model at ``path`` that exists: itself first, its companions, its
    external data (the manifest excluded: ``manifest_path``)."""
    path = Path(path)
    return [path, *(c for c in companions(path) if c.is_file()), *external_data(path)]


def renamed(path: str | Path, stem: str) -> list[tuple[Path, str]]:
    """``files_of(path)`` with the names they take when the model is copied as ``stem``:
    companions follow the stem (OpenVINO finds the .bin by it); external data keeps its
    name, because the model file refers to it by that name."""
    path = Path(path)
    fmt = format_of(path)
    names = {path: fmt.filename(stem), **{c: stem + c.suffix for c in companions(path)}}
    return [(f, names.get(f, f.name)) for f in files_of(path)]


def backend_accepts(backend: str, fmt: str) -> bool:
    """Whether ``backend`` (a name, or ``NAME:DEVICE``) runs files of format ``fmt``."""
    return backend.partition(":")[0] in get_format(fmt).backends


def exact_precision(backend: str) -> str | None:
    """The precision hint that makes ``backend`` (``NAME[:DEVICE]``) run a file as built:
    "fp32" for OpenVINO, None for backends that always do."""
    found = BACKENDS.get(backend.partition(":")[0])
    return found.exact if found else None


def exact_precision_for(path: str | Path) -> str | None:
    """``exact_precision`` of the backend that runs ``path`` by default."""
    fmt = format_or_none(path)
    return exact_precision(fmt.backends[0]) if fmt else None


def default_quantizer(path: str | Path) -> str:
    """The backend whose quantizer takes ``path`` by default: the first (in BACKENDS order)
    that reads its kind; onnxruntime, which then names what it reads, for anything else."""
    kind = source_kind(path)
    return next((b.name for b in BACKENDS.values() if kind in b.quantizes), "onnxruntime")


def quantized_suffix(backend: str) -> str:
    """The suffix of the file ``backend``'s quantizer writes."""
    return get_format(get_backend(backend).quantized_format).suffix


def runtime_hints(backend: str) -> tuple[str, ...]:
    """The precisions ``backend`` (``NAME[:DEVICE]``) takes as a hint on an fp32 file."""
    found = BACKENDS.get(backend.partition(":")[0])
    return found.hints if found else ()


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

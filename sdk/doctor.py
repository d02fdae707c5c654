"""``edgeship doctor``: what is installed, where, what it enables, and the command for what is not.

Every backend, converter and tool edgeship uses is one ``Component`` row of ``COMPONENTS``
(data, not code): its distribution and module, what it enables (formats, candidates, devices),
and the one command that adds it.  Probing reads package metadata and import specs only, so it
imports none of the heavy packages and answers in well under a second.

Example:
    >>> from edgeship.doctor import doctor
    >>> report = doctor()
    >>> [c.name for c in report if not c.present]              # doctest: +SKIP
    ['tensorflow']
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Optional, Union

PIP = "pip install 'edgeship[{}]'"


@dataclass(frozen=True)
class Component:
    name: str
    kind: str  # backend | converter | tool
    dist: str  # the distribution whose version is shown
    modules: tuple[str, ...]  # any of them importable means present (own-env tools: none)
    enables: str
    formats: tuple[str, ...] = ()  # formats it runs (backend) or writes (converter)
    candidates: str = ""  # which compress candidates need it
    fix: str = ""
    optional: bool = False  # an alternative to another row (tflite-runtime, tensorflow)


COMPONENTS: tuple[Component, ...] = (
    Component("onnxruntime", "backend", "onnxruntime", ("onnxruntime",),
              "runs ONNX models; ONNX int8/fp16 quantization", ("onnx",), "*-onnx", PIP.format("onnx")),
    Component("openvino", "backend", "openvino", ("openvino",),
              "runs OpenVINO IR (and ONNX) on CPU/GPU/NPU; ONNX -> IR", ("openvino", "onnx"),
              "*-openvino", PIP.format("openvino")),
    Component("ai-edge-litert", "backend", "ai-edge-litert", ("ai_edge_litert",),
              "runs TFLite models", ("tflite",), "*-tflite", PIP.format("tflite")),
    Component("tflite-runtime", "backend", "tflite-runtime", ("tflite_runtime",),
              "runs TFLite models (numpy 1.x devices)", ("tflite",), "*-tflite",
              "pip install tflite-runtime", optional=True),
    Component("onnx", "converter", "onnx", ("onnx",), "reads and edits ONNX graphs", ("onnx",),
              "every candidate from an ONNX model", PIP.format("onnx")),
    Component("torch", "converter", "torch", ("torch",),
              "torch models in; torch -> ONNX; pruning and distillation", ("onnx",),
              "pruned*, and every candidate from a torch model", PIP.format("torch")),
    Component("onnxscript", "converter", "onnxscript", ("onnxscript",),
              "torch.onnx's dynamo exporter", ("onnx",), "export --dynamo", PIP.format("torch")),
    Component("nncf", "converter", "nncf", ("nncf",),
              "OpenVINO int8 quantization, accuracy-aware int8", ("openvino",),
              "int8-openvino, int8-accuracy-openvino", PIP.format("compress")),
    Component("torch-pruning", "converter", "torch-pruning", ("torch_pruning",),
              "structured (channel) pruning", (), "pruned*", PIP.format("compress")),
    Component("onnx2torch", "converter", "onnx2torch", ("onnx2torch",),
              "ONNX -> torch, for pruning and distilling ONNX models", (),
              "pruned* from an ONNX model", "edgeship tools install converters"),
    Component("litert-torch", "converter", "litert-torch", ("litert_torch",),
              "torch -> TFLite fp32/fp16/int8", ("tflite",),
              "pruned*-tflite, and *-tflite from a torch model", "edgeship tools install converters"),
    Component("onnx2tf", "converter", "onnx2tf", (),
              "ONNX -> TFLite fp32/fp16/int8 (own environment)", ("tflite",),
              "fp32-tflite, int8-tflite from an ONNX model", "edgeship tools install converters"),
    Component("paramiko", "tool", "paramiko", ("paramiko",),
              "SSH targets: bench, deploy, provision, compress --target", (), "",
              PIP.format("remote")),
    Component("Pillow", "tool", "Pillow", ("PIL",), "JPEG/BMP image folders as --data", (), "",
              PIP.format("compress")),
)


@dataclass
class Found:
    """One component as found on this machine."""

    name: str
    kind: str
    present: bool
    version: Optional[str]
    location: Optional[str]
    enables: str
    formats: list[str]
    candidates: str
    devices: list[str]
    fix: Optional[str]  # None when present
    optional: bool = False
    note: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Needs:
    """What one compress (a model for a device) needs, and which of it is missing."""

    model: str
    device: str
    needed: list[str] = field(default_factory=list)
    missing: list[Found] = field(default_factory=list)


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _location(modules: tuple[str, ...]) -> Optional[str]:
    for module in modules:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            where = spec.origin if spec.origin not in (None, "namespace") else (
                next(iter(spec.submodule_search_locations or []), None))
            return str(Path(where).parent) if where and where.endswith(".py") else where
    return None


def _devices(component: Component, profiles: list[Any]) -> list[str]:
    """Profiles whose backends include this one (a backend), or whose formats include one it
    writes (a converter)."""
    if component.kind == "backend":
        key = "tflite" if "tflite" in component.formats else component.name
        return [p.name for p in profiles if any(b.partition(":")[0] == key for b in p.backends)]
    if not component.formats:
        return []
    return [p.name for p in profiles if set(p.formats) & set(component.formats)]


def probe(component: Component, profiles: Optional[list[Any]] = None) -> Found:
    if component.name == "onnx2tf":
        from edgeship.converters.export.tools import tool_env, tool_version

        env = tool_env("onnx2tf")
        version, location = (tool_version(env), str(env)) if env else (None, None)
    else:
        location = _location(component.modules)
        version = _version(component.dist) if location else None
    present = location is not None
    return Found(component.name, component.kind, present, version, location, component.enables,
                 list(component.formats), component.candidates,
                 _devices(component, profiles if profiles is not None else _profiles()),
                 None if present else component.fix,
                 component.optional)


def _profiles() -> list[Any]:
    from edgeship.profiles import list_profiles

    return list_profiles()


def doctor() -> list[Found]:
    """Every component of ``COMPONENTS`` as found here."""
    profiles = _profiles()
    return [probe(c, profiles) for c in COMPONENTS]


def needed_for(model: Union[str, Path], profile: Any) -> list[str]:
    """The components a compress of ``model`` for ``profile`` uses, by the planner's rules:
    each listed format's backend, the converters that write it from the model's format, and
    those the structural (prune + distill) candidates use."""
    from edgeship.runtime.formats import FORMATS, source_kind

    source = source_kind(model) or "torch"
    formats = [f for f in profile.formats if f in FORMATS]
    names: list[str] = []
    backend_rows = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "ai-edge-litert"}
    for fmt in formats:
        names.append(backend_rows[fmt])
    if source in ("onnx", "torch"):
        names += ["onnx", "torch", "torch-pruning"]  # structural candidates
        if source == "onnx":
            names.append("onnx2torch")
        if "openvino" in formats:
            names.append("nncf")
        if "tflite" in formats:
            names += ["onnx2tf"] if source == "onnx" else []
            names.append("litert-torch")  # the pruned torch model -> TFLite
    return list(dict.fromkeys(names))


def missing_for(model: Union[str, Path], profile: Any) -> list[Found]:
    """The components ``needed_for`` that are not installed (a TFLite interpreter counts as
    present when any of them is)."""
    found = {f.name: f for f in doctor()}
    tflite_ok = any(f.present for f in found.values() if "tflite" in f.formats and f.kind == "backend")
    return [found[n] for n in needed_for(model, profile)
            if not found[n].present and not (n == "ai-edge-litert" and tflite_ok)]

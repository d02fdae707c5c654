"""Export a model to ONNX, OpenVINO IR or TFLite, parity-checked, with its manifest.

One exporter per format (onnx.py, openvino.py, tflite.py), named by the formats table
(runtime/formats.py, ``Format.exporter``).  ``export`` stages the files in a temporary
directory beside the output, checks the result against its source (converters/parity.py),
writes the manifest, and only then moves everything into place: a failed export leaves nothing.

Example:
    >>> import edgeship, torch
    >>> art = edgeship.export(model, to="tflite", output="digits.tflite",
    ...                       example_input=torch.zeros(1, 1, 8, 8))        # doctest: +SKIP
    >>> art.manifest.parity["outputs"][0]["max_abs_diff"]                   # doctest: +SKIP
    2.4e-07
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Optional, Union

from edgeship.converters.export.base import Exported, ExportOptions
from edgeship.converters.export.source import Source, resolve_source
from edgeship.converters.parity import TOLERANCES, ParityReport, Perm, check_parity, make_samples
from edgeship.core.artifact import Manifest, ModelArtifact, StepRecord, TensorInfo, derive_manifest
from edgeship.core.errors import ConfigError, UnsupportedError
from edgeship.runtime.formats import Format, exact_precision, get_format
from edgeship.runtime.manifest import read_manifest
from edgeship.runtime.preprocess import Preprocessing

Exporter = Callable[[Source, Path, str, ExportOptions, Any], Exported]


def export(
    model: Any,
    to: str,
    output: Union[str, Path, None] = None,
    *,
    example_input: Any = None,
    precision: str = "fp32",
    data: Any = None,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    input_fills: Optional[dict[str, Any]] = None,
    input_names: Optional[Sequence[str]] = None,
    output_names: Optional[Sequence[str]] = None,
    dynamic_batch: bool = True,
    opset: int = 17,
    dynamo: bool = False,
    preprocessing: Union[Preprocessing, dict[str, Any], None] = None,
    labels: Optional[Sequence[str]] = None,
    task: Optional[str] = None,
    parity_random: int = 8,
    parity_real: int = 64,
    check: bool = True,
) -> ModelArtifact:
    """Export ``model`` to format ``to`` (onnx | openvino | tflite) and check it against its source.

    Args:
        model: a torch ``nn.Module`` (with ``example_input``), a TorchScript or exported-program
            file, or an ``.onnx`` file.
        output: the model file to write (default: beside the source, the format's suffix).
        precision: fp32, or fp16 (OpenVINO, TFLite weights), or int8 (TFLite full-integer,
            calibrated on ``data``).
        data: real model-ready samples (anything ``edgeship.Dataset`` reads): used for the
            parity check (up to ``parity_real``) and as the int8 representative dataset.
        input_shapes: ``{name: shape}`` for dynamic dimensions (``--input-shape``): parity
            inputs, onnx2tf's static copy, OpenVINO's conversion.
        input_fills: ``{name: runtime.inputs.InputFill}`` (``--input-value``/``--input-range``):
            the values random parity inputs take (a sample rate, a zero state, token ids).
        preprocessing, labels, task: recorded in the manifest (inherited from the source's
            manifest when the source has one).

    Returns the ModelArtifact; raises OutputMismatchError when parity fails (nothing written).
    """
    fmt = get_format(to)
    if precision not in fmt.precisions:
        raise UnsupportedError(f"{fmt.name} cannot hold a {precision} model",
                               f"use one of {list(fmt.precisions)}")
    options = ExportOptions(to=fmt.name, precision=precision, opset=opset,
                            dynamic_batch=dynamic_batch, dynamo=dynamo,
                            parity_random=parity_random, parity_real=parity_real, check=check)
    source = resolve_source(model, example_input, input_shapes=input_shapes,
                            input_names=input_names, output_names=output_names)
    source.input_fills = dict(input_fills or {})
    upstream = read_manifest(source.path) if source.path else None
    target = output_path(output, source, fmt)
    with staging_dir(target.parent) as staging:
        exported = exporter_for(fmt)(source, staging, target.stem, options, data)
        parity = (compare(source, staging / exported.file, exported, options, data)
                  if check else None)
        manifest = build_manifest(
            source, exported, options, staging / exported.file, upstream, parity,
            preprocessing=preprocessing, labels=labels, task=task)
        artifact = ModelArtifact(staging / exported.file, manifest)
        artifact.save()
        publish(staging, [*exported.files, artifact.manifest_path.name], target.parent)
    return ModelArtifact(target, manifest)


def exporter_for(fmt: Format) -> Exporter:
    module, _, name = fmt.exporter.partition(":")
    exporter: Exporter = getattr(importlib.import_module(module), name)
    return exporter


def output_path(output: Union[str, Path, None], source: Source, fmt: Format) -> Path:
    """Where the export goes: ``output``, or beside the source with the format's suffix."""
    suffix = fmt.suffix
    if output is None:
        base = source.path or Path("model")
        target = base.with_suffix(suffix)
    else:
        target = Path(output)
        if target.is_dir():
            target = target / ((source.path or Path("model")).stem + suffix)
    if target.suffix.lower() not in fmt.suffixes:
        raise ConfigError(f"output '{target}' does not end in {suffix}, the {fmt.name} suffix",
                          f"name the output file something{suffix}")
    if source.path is not None and target.resolve() == source.path.resolve():
        raise ConfigError(f"output '{target}' is the source model itself",
                          "pass another output path with -o")
    return target


@contextmanager
def staging_dir(parent: Path) -> Iterator[Path]:
    """A temporary directory beside the output, removed whatever happens."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        # absolute: converters run with another cwd, and a relative path would resolve twice
        staging = Path(tempfile.mkdtemp(prefix=".edgeship-export-", dir=parent)).resolve()
    except OSError as exc:
        raise ConfigError(f"cannot write to '{parent}': {exc.strerror or exc}",
                          "choose a writable output path with -o") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, names: list[str], directory: Path) -> None:
    """Move the staged files into ``directory`` (each with an atomic rename), manifest last."""
    for name in names:
        os.replace(staging / name, directory / name)


def compare(source: Source, path: Path, exported: Exported, options: ExportOptions,
            data: Any) -> ParityReport:
    """Run the exported file and its source on the same samples; raise on a mismatch."""
    from edgeship.converters.parity import session_batch, session_runner
    from edgeship.runtime import load

    fmt = get_format(options.to)
    # parity is about the export, not the precision a backend picks by itself (formats table)
    # The file's own tensors, shown through the mapping its manifest will record (the one
    # IOMap the runtime applies), so parity checks what users will run, with no perms of its own.
    session = load(path, backend=fmt.backends[0], precision=exact_precision(fmt.backends[0]),
                   layout="model")
    session = source_view(session, *io_tensors(session, source, exported))
    samples = make_samples(source.inputs, random=options.parity_random, data=data,
                           max_real=options.parity_real, fixed=source.input_shapes or None,
                           fills=source.input_fills or None)
    ref_name, reference, ref_batch = source.reference()
    return check_parity(
        reference, session_runner(session, [s.name for s in source.inputs], source.output_names),
        samples,
        tolerance=TOLERANCES[exported.tolerance],
        output_names=source.output_names,
        reference_name=ref_name,
        candidate_name=f"{fmt.name} export ({session.info.backend} {session.info.version})",
        reference_batch=ref_batch,
        candidate_batch=session_batch(session),
    )


def build_manifest(
    source: Source,
    exported: Exported,
    options: ExportOptions,
    model_path: Path,
    upstream: Optional[dict[str, Any]],
    parity: Optional[ParityReport],
    *,
    preprocessing: Union[Preprocessing, dict[str, Any], None],
    labels: Optional[Sequence[str]],
    task: Optional[str],
) -> Manifest:
    from edgeship.runtime import load

    fmt = get_format(options.to)
    session = load(model_path, backend=fmt.backends[0], layout="model")
    inputs, outputs = io_tensors(session, source, exported)
    if isinstance(preprocessing, Preprocessing):
        preprocessing = preprocessing.to_dict()
    if preprocessing is None:
        preprocessing = (upstream or {}).get("preprocessing")
    step = StepRecord(step="export", config={
        **options.to_dict(), "from": source.description, "from_sha256": source.sha256,
        "converter": exported.converter, **exported.notes})
    return derive_manifest(
        upstream, model_path, step=step, files=exported.files,
        inputs=inputs, outputs=outputs,
        source=source.description, source_sha256=source.sha256,
        preprocessing=_with_layout(preprocessing, exported.input_layouts),
        labels=list(labels) if labels is not None else None, task=task,
        quantization=exported.quantization or None,
        parity=parity.to_dict() if parity else None,
    )


def _with_layout(preprocessing: Optional[dict[str, Any]], layouts: Sequence[Optional[str]]
                 ) -> Optional[dict[str, Any]]:
    """The preprocessing spec with the layout the export really takes (onnx2tf: NHWC), so an app
    preparing inputs from the manifest feeds the exported model the right arrays."""
    image = [layout for layout in layouts if layout]
    if not preprocessing or not image or preprocessing.get("layout") in (None, image[0]):
        return preprocessing
    return {**preprocessing, "layout": image[0]}


def io_tensors(session: Any, source: Source, exported: Exported
               ) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The manifest's inputs and outputs for the exported file (``session``: its own tensors)."""
    return (_tensors(session.inputs, [i.name for i in source.inputs], exported.input_layouts,
                     exported.input_perms, exported.positional_names),
            _tensors(session.outputs, source.output_names, exported.output_layouts,
                     [_inverse(p) for p in exported.output_perms], exported.positional_names))


def source_view(session: Any, inputs: list[TensorInfo], outputs: list[TensorInfo]) -> Any:
    """``session`` shown as ``runtime.load`` will show it once this manifest is beside it."""
    from edgeship.runtime.iomap import IOMap
    from edgeship.runtime.mapped import MappedSession

    io_map = IOMap.from_manifest({"inputs": [t.model_dump() for t in inputs],
                                  "outputs": [t.model_dump() for t in outputs]})
    return MappedSession(session, io_map) if io_map else session


def _tensors(specs: Sequence[Any], names: Sequence[str], layouts: Sequence[Optional[str]],
             perms: Sequence[Perm], positional: bool) -> list[TensorInfo]:
    """The manifest's record of the exported file's tensors, in the source's order, each with
    the source's name where the converter renamed it and the transpose it made (the runtime
    maps them back, edgeship.runtime.iomap)."""
    ordered = _in_order(specs, names)
    same = positional and len(ordered) == len(names)
    padded = [*perms, *[None] * (len(ordered) - len(perms))]
    return [TensorInfo(name=s.name, shape=list(s.shape), dtype=s.dtype,
                       layout=layouts[i] if i < len(layouts) else None,
                       source_name=names[i] if same and names[i] != s.name else None,
                       source_perm=list(perm) if perm else None)
            for i, (s, perm) in enumerate(zip(ordered, padded))]


def _inverse(perm: Perm) -> Perm:
    """An output's perm (the export's file -> the source) as the manifest's (source -> file)."""
    return None if perm is None else tuple(sorted(range(len(perm)), key=perm.__getitem__))


def _in_order(specs: Sequence[Any], names: Sequence[str]) -> list[Any]:
    """The exported model's tensors in the source's order when they carry the source's names
    (exporters record layouts in that order; a converter may have sorted the tensors)."""
    by_name = {s.name: s for s in specs}
    if sorted(by_name) != sorted(names):
        return list(specs)
    return [by_name[n] for n in names]


__all__ = ["ExportOptions", "export"]

"""``quantize``: one model file in, one quantized model file (plus manifest) out.

All work happens in a temporary folder beside the output; only a finished, loadable model is
moved into place, so a failure at any point leaves no partial output behind.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.converters.quantize.calib import (
    CalibData,
    Feed,
    calibration_feeds,
    collect_warnings,
    labelled_data,
    model_inputs,
    warn,
)
from edgeship.converters.quantize.config import Outcome, QuantizeConfig
from edgeship.converters.quantize.reports import AccuracySearch, SensitivityReport
from edgeship.core.data import SampleSet
from edgeship.core.errors import BudgetExceeded, ConfigError, ModelError
from edgeship.runtime.formats import (
    FORMATS,
    exact_precision_for,
    get_backend,
    is_format,
    quantized_suffix,
    source_kind,
)


@dataclass
class QuantizeResult:
    """The quantized model and everything worth knowing about how it was made."""

    path: Path
    files: list[Path]
    config: QuantizeConfig
    params: dict[str, Any]
    calibration: Optional[dict[str, Any]]
    size_bytes: int
    source_size_bytes: int
    warnings: list[str] = field(default_factory=list)
    accuracy: Optional[dict[str, Any]] = None  # fp32, quantized, drop_points on labelled data
    sensitivity: Optional[SensitivityReport] = None
    sensitivity_path: Optional[Path] = None
    manifest_path: Optional[Path] = None

    @property
    def size_ratio(self) -> float:
        return self.size_bytes / self.source_size_bytes

    def record(self) -> dict[str, Any]:
        """The manifest's ``quantization`` entry."""
        return {
            "backend": self.config.backend,
            "mode": self.config.weights_only or self.config.mode,
            "params": self.params,
            "calibration": self.calibration,
            "clip_percentile": self.config.clip_percentile,
            "accuracy": self.accuracy,
            "sensitivity_report": self.sensitivity_path.name if self.sensitivity_path else None,
            "warnings": self.warnings,
            "size_bytes": self.size_bytes,
            "source_size_bytes": self.source_size_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "files": [str(f) for f in self.files],
                "config": self.config.to_dict(), **self.record(),
                "manifest": str(self.manifest_path) if self.manifest_path else None}


def default_output(model: Path, cfg: QuantizeConfig) -> Path:
    tag = cfg.weights_only or {"static": "int8", "dynamic": "dynint8", "fp16": "fp16"}[cfg.mode]
    return model.with_name(f"{model.stem}.{tag}{quantized_suffix(cfg.backend)}")


def quantize_file(
    model: Path,
    output: Optional[Path],
    cfg: QuantizeConfig,
    *,
    calib: CalibData = None,
    data: Any = None,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    input_fills: Optional[dict[str, Any]] = None,
) -> QuantizeResult:
    """Quantize an ONNX (or, for OpenVINO, IR) file; see ``edgeship.quantize``."""
    if not model.is_file():
        raise ModelError(f"model file '{model}' does not exist", "check the path")
    kind = source_kind(model)
    if kind == "tflite":
        raise ConfigError(
            f"'{model.name}' is a TFLite model: it runs in the precision it was converted to "
            "and edgeship does not quantize it again",
            "use it as it is (edgeship bench), or quantize the ONNX/torch model it came from")
    reads = get_backend(cfg.backend).quantizes
    if kind not in reads:
        kinds = " and ".join(FORMATS[f].suffix for f in reads if f in FORMATS) + " files"
        raise ModelError(
            f"--backend {cfg.backend} quantizes {kinds}, not '{model.name}'",
            "export the model first (edgeship export MODEL --to onnx)",
        )
    out = Path(output) if output else default_output(model, cfg)
    writes = quantized_suffix(cfg.backend)
    if out.suffix.lower() != writes:
        raise ConfigError(f"--backend {cfg.backend} writes {writes} files, not "
                          f"'{out.name}'", f"name the output *{writes}")
    if out.resolve() == model.resolve():
        raise ConfigError("the output would overwrite the input model", "pass another -o path")
    from edgeship.converters.export import staging_dir

    with collect_warnings() as notes, staging_dir(out.parent) as work:
        src, specs, clip, cfg = _prepare_source(model, cfg, work, input_shapes)
        bound = model_inputs(model, specs)  # the manifest's preprocessing reads image folders
        calib_set = (calibration_feeds(calib, bound, limit=cfg.calib_samples, seed=cfg.seed,
                                       fixed=input_shapes, fills=input_fills)
                     if cfg.mode == "static" and not cfg.weights_only else None)
        if calib_set is None and calib is not None:
            warn(f"--calib is ignored: {cfg.weights_only or cfg.mode} quantization needs no "
                 "calibration data")
        labelled = labelled_data(data, bound) if data is not None else None
        if cfg.max_accuracy_drop is not None and labelled is None:
            raise ConfigError("--max-accuracy-drop needs labelled data to measure the drop",
                              "pass --data test.npz (arrays x and y)")
        (work / "out").mkdir()  # the result under its final name, apart from scratch files
        staged = work / "out" / out.name
        if cfg.backend == "openvino":
            from edgeship.converters.quantize.openvino import run as run_backend
        else:
            from edgeship.converters.quantize.ort_run import run as run_backend
        outcome = run_backend(src, staged, cfg, calib_set, labelled, work)
        outcome.clip = clip
        result = _finish(model, out, staged, cfg, calib_set, labelled, outcome, notes)
    return result


def _prepare_source(model: Path, cfg: QuantizeConfig, work: Path,
                    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
                    ) -> tuple[Path, list[Any], Optional[dict[str, Any]], QuantizeConfig]:
    """Validate the model (a corrupt file fails here), refuse one that is quantized already,
    bring an old opset up for static per-channel int8 and apply weight clipping; returns the
    file to quantize (``model`` itself or a private copy in ``work``), the input specs (with
    ``--input-shape`` applied), what clipping changed and the config (per-tensor when an old
    opset could not be upgraded)."""
    from edgeship.converters.onnx_shapes import fix_specs

    if is_format(model, "openvino"):
        if cfg.clip_percentile is not None:
            raise ConfigError("--clip-percentile works on ONNX models", "pass the .onnx model")
        from edgeship.runtime import load

        specs = list(load(model, backend="openvino").inputs)  # bad IR: ModelError
        return model, fix_specs(specs, input_shapes), None, cfg
    import onnx
    from edgeship.converters.export.source import read_onnx, resolve_source
    from edgeship.converters.quantize.graph import refuse_quantized, upgrade_opset

    # validates the file (corrupt ONNX fails here) and the --input-shape names
    specs = list(resolve_source(model, input_shapes=input_shapes).inputs)
    proto = read_onnx(model)
    refuse_quantized(proto, model.name)
    src = model
    if cfg.mode == "static" and not cfg.weights_only:
        src, per_channel = upgrade_opset(proto, model, work, cfg.per_channel)
        cfg = dataclasses.replace(cfg, per_channel=per_channel)
    if cfg.clip_percentile is None:
        return src, specs, None, cfg
    from edgeship.converters.quantize.graph import clip_weights

    proto = read_onnx(src)
    report = clip_weights(proto, cfg.clip_percentile, cfg.per_channel)
    clipped = work / FORMATS["onnx"].filename("clipped")
    onnx.save(proto, str(clipped))
    return clipped, specs, report.to_dict(), cfg


def _finish(model: Path, out: Path, staged: Path, cfg: QuantizeConfig,
            calib: Optional[SampleSet], labelled: Optional[tuple[Feed, np.ndarray]],
            outcome: Outcome, notes: list[str]) -> QuantizeResult:
    from edgeship.converters.evaluate import model_size

    accuracy = _accuracy(model, staged, labelled, outcome.search)
    if (cfg.max_accuracy_drop is not None and accuracy is not None
            and accuracy["drop_points"] > cfg.max_accuracy_drop + 1e-9):
        raise BudgetExceeded(
            f"the quantized model loses {accuracy['drop_points']:.2f} accuracy points "
            f"(fp32 {accuracy['fp32']:.2%}, int8 {accuracy['quantized']:.2%}), more than "
            f"--max-accuracy-drop {cfg.max_accuracy_drop:g}; nothing was written",
            "raise the budget, pass more representative --calib data, or use --backend "
            "onnxruntime, whose search keeps sensitive layers in fp32",
        )
    calibration = None
    if calib is not None:
        calibration = {**calib.describe(), "method": cfg.calibration}
    finals = [out.parent / f.name for f in outcome.files]
    result = QuantizeResult(
        path=out, files=finals, config=cfg, params={**outcome.params, **(
            {"clipping": outcome.clip} if outcome.clip else {})},
        calibration=calibration, size_bytes=model_size(staged).bytes,
        source_size_bytes=model_size(model).bytes, warnings=list(notes), accuracy=accuracy,
        sensitivity=outcome.sensitivity)
    if outcome.sensitivity is not None and outcome.sensitivity.layers:
        result.sensitivity_path = out.with_name(out.name + ".sensitivity.json")
    from edgeship.converters.export import publish

    names = [f.name for f in outcome.files]
    if result.sensitivity_path is not None:
        assert outcome.sensitivity is not None
        side = staged.with_name(result.sensitivity_path.name)
        side.write_text(outcome.sensitivity.to_json())
        names.append(side.name)
    staged_manifest = _manifest(model, staged, finals, result).save()
    publish(staged.parent, [*names, staged_manifest.name], out.parent)  # manifest last
    result.manifest_path = out.parent / staged_manifest.name
    return result


def _accuracy(model: Path, staged: Path, labelled: Optional[tuple[Feed, np.ndarray]],
              search: Optional[AccuracySearch]) -> Optional[dict[str, Any]]:
    if search is not None:
        return {"fp32": search.fp32_accuracy, "quantized": search.accuracy,
                "drop_points": round(search.drop_points, 4), "samples": len(labelled[1])
                if labelled else None, "search": search.to_dict()}
    if labelled is None:
        return None
    from edgeship.converters.evaluate import accuracy
    from edgeship.runtime import load

    feeds, labels = labelled
    # measure what was built, not the precision a backend picks by itself (formats table)
    before = accuracy(load(model, precision=exact_precision_for(model)), feeds, labels).accuracy
    after = accuracy(load(staged, precision=exact_precision_for(staged)), feeds, labels).accuracy
    return {"fp32": before, "quantized": after, "drop_points": round(100 * (before - after), 4),
            "samples": len(labels)}


def _manifest(model: Path, staged: Path, finals: list[Path], result: QuantizeResult) -> Any:
    """The output's manifest: the source's (preprocessing, labels, layout, earlier steps) when
    it has one, with this step appended; else one built from the quantized model itself."""
    from edgeship.core.artifact import (
        ModelArtifact,
        StepRecord,
        TensorInfo,
        carried_layouts,
        derive_manifest,
        sha256_file,
    )
    from edgeship.runtime import load
    from edgeship.runtime.manifest import read_manifest

    session = load(staged)
    upstream = read_manifest(model)
    layouts = carried_layouts(upstream)
    manifest = derive_manifest(
        upstream, staged, step=StepRecord(step="quantize", config=result.config.to_dict()),
        files=[f.name for f in finals],
        inputs=[TensorInfo(name=s.name, shape=list(s.shape), dtype=s.dtype,
                           layout=layouts.get(s.name)) for s in session.inputs],
        outputs=[TensorInfo(name=s.name, shape=list(s.shape), dtype=s.dtype)
                 for s in session.outputs],
        source=str(model), source_sha256=sha256_file(model), quantization=result.record())
    return ModelArtifact(staged, manifest)

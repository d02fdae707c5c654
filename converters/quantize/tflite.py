"""TFLite int8 / fp16 through the TFLite exporter (litert-torch, PT2E for int8).

Input: a torch ``nn.Module`` with ``example_input`` (its batch size becomes the model's fixed
batch), or a TorchScript / exported-program file (``--input-shape`` for the example).  An ONNX
file cannot be quantized to TFLite here: convert it with ``edgeship export --to tflite`` (which
needs onnx2tf's own environment) or quantize it for onnxruntime/OpenVINO instead.

What the exporter fixes, and so is not configurable here: int8 weights symmetric per output
channel, activations calibrated with PT2E's observers (min/max), int8 inputs and outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from edgeship.converters.quantize.api import QuantizeResult
from edgeship.converters.quantize.calib import CalibData, calibration_feeds, collect_warnings
from edgeship.converters.quantize.config import QuantizeConfig
from edgeship.core.errors import ConfigError
from edgeship.runtime.formats import FORMATS, source_kind


def _check(model: Any, cfg: QuantizeConfig) -> None:
    kind = source_kind(model) if isinstance(model, (str, Path)) else "torch"
    if kind == "tflite":
        raise ConfigError(
            f"'{Path(model).name}' is a TFLite model: it runs in the precision it was converted "
            "to and edgeship does not quantize it again",
            "use it as it is (edgeship bench), or quantize the ONNX/torch model it came from")
    if kind == "openvino" or (kind == "onnx" and _onnx2tf() is None):
        raise ConfigError(
            "--backend tflite quantizes from torch (litert-torch)"
            + (" or from ONNX with onnx2tf (not installed)" if kind == "onnx" else "")
            + f", not '{Path(model).name}'",
            ("run edgeship tools install onnx2tf, or " if kind == "onnx" else "")
            + "pass the torch model (.pt2/.pt file, or an nn.Module from Python), or use "
            "--backend onnxruntime/openvino",
        )
    fixed = {
        "--per-tensor": not cfg.per_channel,
        f"--calibration {cfg.calibration}": cfg.calibration != "minmax",
        "--asymmetric": cfg.symmetric is False,
        "--clip-percentile": cfg.clip_percentile is not None,
        "--max-accuracy-drop": cfg.max_accuracy_drop is not None,
    }
    used = [k for k, v in fixed.items() if v]
    if used:
        raise ConfigError(
            f"{', '.join(used)} cannot be set for --backend tflite: litert-torch's int8 is "
            "symmetric per-channel with min/max calibration and no per-layer fallback",
            "drop those options, or quantize the ONNX export with --backend onnxruntime",
        )


def _onnx2tf() -> Optional[Path]:
    from edgeship.converters.export.tools import tool_env

    return tool_env("onnx2tf")


def quantize_tflite(model: Any, output: Union[str, Path, None], cfg: QuantizeConfig, *,
                    calib: CalibData = None, data: Any = None, example_input: Any = None,
                    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
                    input_fills: Optional[dict[str, Any]] = None) -> QuantizeResult:
    """int8 (static) or fp16 TFLite from a torch model (litert-torch) or an ONNX file (onnx2tf);
    see the module docstring."""
    from edgeship.converters.export import export
    from edgeship.converters.export.source import resolve_source

    _check(model, cfg)
    source = resolve_source(model, example_input, input_shapes=input_shapes)
    if source.kind == "onnx":
        from edgeship.converters.export.source import read_onnx
        from edgeship.converters.quantize.graph import refuse_quantized

        assert source.path is not None  # an ONNX source is a file
        refuse_quantized(read_onnx(source.path), source.path.name)
    precision = "int8" if cfg.mode == "static" else "fp16"
    with collect_warnings() as notes:
        calib_set = None
        if precision == "int8":
            calib_set = calibration_feeds(calib, _bound(model, source), limit=cfg.calib_samples,
                                          seed=cfg.seed, fixed=input_shapes, fills=input_fills)
        if output is None and isinstance(model, (str, Path)):
            output = Path(model).with_name(FORMATS["tflite"].filename(f"{Path(model).stem}.{precision}"))
        if output is None:
            raise ConfigError("quantizing a torch module needs an output path",
                              "pass output='model.int8.tflite'")
        # an ONNX file goes to onnx2tf as it is (a private copy); torch through litert-torch
        artifact = export(source.path if source.kind == "onnx" else source.module, "tflite",
                          output, example_input=source.example_inputs or None,
                          input_shapes=source.input_shapes or None, input_fills=input_fills,
                          precision=precision,
                          data=_calibration(calib_set, source) if calib_set else None)
    accuracy = (_accuracy(source, artifact.path, data, _bound(model, source))
                if data is not None else None)
    files = artifact.files
    result = QuantizeResult(
        path=artifact.path, files=files, config=cfg, params=artifact.manifest.quantization or {},
        calibration=({**calib_set.describe(), "method": "TFLite converter (onnx2tf)"
                      if source.kind == "onnx" else "minmax (PT2E observers)"}
                     if calib_set else None),
        size_bytes=sum(f.stat().st_size for f in files),
        source_size_bytes=(source.path.stat().st_size if source.kind == "onnx" and source.path
                           else _fp32_bytes(source.module)),
        warnings=list(notes), accuracy=accuracy,
        manifest_path=artifact.manifest_path)
    manifest = artifact.manifest
    manifest.quantization = result.record()
    from edgeship.core.artifact import StepRecord

    manifest.provenance.steps.append(StepRecord(step="quantize", config=cfg.to_dict()))
    artifact.save()
    return result


def _calibration(calib: Any, source: Any) -> Any:
    """The calibration feeds as export's data: one array (single input), else arrays by name
    (onnx2tf calibrates each input; litert-torch's PT2E path takes single-input models)."""
    if len(calib.x) == 1:
        return calib.x[0]
    if source.kind != "onnx":
        raise ConfigError("TFLite int8 from torch here takes single-input models",
                          "quantize multi-input models with --backend onnxruntime")
    return calib.by_name()


def _fp32_bytes(module: Any) -> int:
    """The fp32 model's weight bytes: what an fp32 export would store."""
    return int(sum(p.numel() * 4 for p in module.parameters()) +
               sum(b.numel() * b.element_size() for b in module.buffers()))


def _bound(model: Any, source: Any) -> Any:
    """The source's inputs with the manifest beside a model file (its image preprocessing)."""
    from edgeship.converters.quantize.calib import model_inputs

    return model_inputs(model if isinstance(model, (str, Path)) else None, source.inputs)


def _accuracy(source: Any, path: Path, data: Any, inputs: Any) -> Optional[dict[str, Any]]:
    from edgeship.converters.evaluate import accuracy, accuracy_of
    from edgeship.converters.parity import run_batched
    from edgeship.converters.quantize.calib import labelled_data

    feeds, labels = labelled_data(data, inputs)
    arrays = [feeds[s.name] for s in source.inputs]
    _, runner, batch = source.reference()
    before = accuracy_of(run_batched(runner, arrays, batch)[0], labels).accuracy
    from edgeship.runtime import load

    # shown in the source's names and layout where the manifest maps them (onnx2tf: NHWC);
    # a file whose tensors keep the converter's names is matched by position
    session = load(path)
    named = sorted(s.name for s in session.inputs) == sorted(s.name for s in source.inputs)
    given = ({s.name: feeds[s.name] for s in source.inputs} if named else
             {s.name: a for s, a in zip(session.inputs, arrays)})
    after = accuracy(session, given, labels).accuracy
    return {"fp32": before, "quantized": after, "drop_points": round(100 * (before - after), 4),
            "samples": len(labels)}

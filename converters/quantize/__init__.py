"""Quantize a model: onnxruntime (static QDQ, dynamic, fp16, int4 MatMul), OpenVINO via NNCF
(int8, accuracy-controlled int8, int4 weights), TFLite (int8, fp16 via litert-torch).

Which mode pays off where (measured on x86 with AVX-512 VNNI, 1 thread; see config.py):
static int8 is the default and the mode that speeds up conv nets (onnxruntime QDQ u8s8 ~1.8-3x,
OpenVINO/NNCF and LiteRT full-int8 ~10x on a plain conv net); dynamic int8 only helps
MatMul-heavy models and makes convolutions slower (a loud warning says so); fp16 is for GPUs;
int4 weight-only shrinks MatMul/Linear weights.

Example:
    >>> import edgeship
    >>> r = edgeship.quantize("digits.onnx", calib="calib.npz", data="test.npz")  # doctest: +SKIP
    >>> r.path, r.accuracy["drop_points"], r.size_ratio                            # doctest: +SKIP
    (PosixPath('digits.int8.onnx'), 0.0, 0.26)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from edgeship.converters.quantize.api import QuantizeResult, default_output, quantize_file
from edgeship.converters.quantize.calib import CalibData
from edgeship.converters.quantize.config import (
    ActivationType,
    Calibration,
    Mode,
    OrtFormat,
    QuantBackend,
    QuantizeConfig,
    WeightsOnly,
)
from edgeship.converters.quantize.reports import LayerSensitivity, SensitivityReport


def quantize(
    model: Union[str, Path, Any],
    output: Union[str, Path, None] = None,
    *,
    mode: Mode = "static",
    backend: Optional[QuantBackend] = None,
    calib: CalibData = None,
    data: Any = None,
    per_channel: bool = True,
    calibration: Calibration = "minmax",
    symmetric: Optional[bool] = None,
    reduce_range: bool = False,
    clip_percentile: Optional[float] = None,
    weights_only: Optional[WeightsOnly] = None,
    group_size: int = 32,
    max_accuracy_drop: Optional[float] = None,
    sensitivity: bool = False,
    activations: ActivationType = "uint8",
    ort_format: OrtFormat = "qdq",
    calib_samples: int = 300,
    example_input: Any = None,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    input_fills: Optional[dict[str, Any]] = None,
) -> QuantizeResult:
    """Quantize ``model`` and write the result (and its manifest) to ``output``.

    Args:
        model: an .onnx file (onnxruntime, openvino), an OpenVINO .xml (openvino), or for
            ``backend="tflite"`` a torch ``nn.Module`` (with ``example_input``) or a
            TorchScript / exported-program file.
        output: where to write; default ``<model>.int8.onnx`` (``.xml``, ``.tflite``) beside it.
        mode: static (int8 with calibration, the default), dynamic (onnxruntime only; int8
            weights, per-run activation ranges) or fp16.
        backend: onnxruntime (default for .onnx), openvino (default for .xml) or tflite.
        calib: calibration samples, model-ready (``.npz`` with ``x``, array, iterable,
            ``Dataset``).  None calibrates on random data with a loud warning, recorded in the
            manifest.
        data: labelled evaluation data (``.npz`` with ``x`` and ``y``); the accuracy before and
            after goes into the result and the manifest.  Needed by ``max_accuracy_drop``.
        per_channel: per-output-channel weight scales (default) or one per tensor.
        calibration: minmax, entropy (onnxruntime only) or percentile.
        symmetric: symmetric activation ranges; None keeps the backend's default.
        reduce_range: 7-bit weights (onnxruntime), for x86 CPUs without VNNI.
        clip_percentile: clip each weight channel at this percentile of |w| first (e.g. 99.99).
        weights_only: "int4": 4-bit weights of MatMul/Linear layers, activations in fp32.
        group_size: int4 weights share one scale per this many input weights (power of two).
        max_accuracy_drop: accuracy points; keep the most sensitive layers in fp32 until the
            drop on ``data`` is within it (onnxruntime) or let NNCF's accuracy control do it.
        sensitivity: write a per-layer sensitivity report (onnxruntime) beside the output.
        activations: uint8 (default, fast on x86) or int8 activations (onnxruntime).
        ort_format: qdq (default, portable) or qoperator (onnxruntime).
        calib_samples: use at most this many calibration samples.
        example_input: for torch modules (tflite backend): an input tensor to trace with.
        input_shapes: ``{input name: shape}`` for dynamic dimensions (``--input-shape``): the
            shapes of random calibration inputs and of the TFLite trace.
        input_fills: ``{input name: runtime.inputs.InputFill}`` (``--input-value``/
            ``--input-range``): the values random calibration inputs take.
    """
    if backend is None:
        backend = _default_backend(model)
    cfg = QuantizeConfig(
        mode=mode, backend=backend, per_channel=per_channel, calibration=calibration,
        symmetric=symmetric, reduce_range=reduce_range, clip_percentile=clip_percentile,
        weights_only=weights_only, max_accuracy_drop=max_accuracy_drop, sensitivity=sensitivity,
        activations=activations, ort_format=ort_format, calib_samples=calib_samples,
        int4_group_size=group_size,
    )
    return run(model, output, cfg, calib=calib, data=data, example_input=example_input,
               input_shapes=input_shapes, input_fills=input_fills)


def run(model: Union[str, Path, Any], output: Union[str, Path, None], cfg: QuantizeConfig, *,
        calib: CalibData = None, data: Any = None, example_input: Any = None,
        input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
        input_fills: Optional[dict[str, Any]] = None) -> QuantizeResult:
    """``quantize`` with a ready config."""
    if cfg.backend == "tflite":
        from edgeship.converters.quantize.tflite import quantize_tflite

        return quantize_tflite(model, output, cfg, calib=calib, data=data,
                               example_input=example_input, input_shapes=input_shapes,
                               input_fills=input_fills)
    if not isinstance(model, (str, Path)):
        from edgeship.core.errors import ConfigError

        raise ConfigError(f"--backend {cfg.backend} quantizes model files, not a "
                          f"{type(model).__name__}",
                          "export the model to ONNX first (edgeship.export), or use "
                          "backend='tflite' for torch modules")
    return quantize_file(Path(model), Path(output) if output else None, cfg, calib=calib,
                         data=data, input_shapes=input_shapes, input_fills=input_fills)


def _default_backend(model: Any) -> QuantBackend:
    if isinstance(model, (str, Path)):
        from edgeship.runtime.formats import default_quantizer

        return default_quantizer(model)  # type: ignore[return-value]
    return "tflite"  # a torch module: LiteRT is the backend that quantizes from torch


__all__ = [
    "LayerSensitivity",
    "QuantizeConfig",
    "QuantizeResult",
    "SensitivityReport",
    "default_output",
    "quantize",
]

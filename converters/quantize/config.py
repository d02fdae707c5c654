"""The Quantize step's typed configuration and the rules for which option fits which backend.

Defaults follow what was measured on x86 CPUs (AVX-512 VNNI, onnxruntime 1.32, 1 thread), not
what each library happens to default to:

- onnxruntime static: QDQ format with uint8 activations and int8 weights (u8s8).  QDQ u8s8 ran as
  fast as QOperator u8s8 (both fuse to the same integer kernels) and stays readable by other
  runtimes; s8s8 ran 3.3x slower on a depthwise-conv net and QOperator s8s8 12x slower on the
  digits CNN, so int8 activations are a warned opt-in.
- onnxruntime dynamic: fine for MatMul/Linear-heavy models, but ConvInteger is slower than fp32
  (7x on a plain conv net), so a conv-dominated model gets a loud warning.
- per-channel weights by default: per-tensor int8 loses accuracy on convolutions whose channels
  have different ranges, and every backend here runs per-channel weights at the same speed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, get_args

from edgeship.core.errors import ConfigError, UnsupportedError

if TYPE_CHECKING:
    from edgeship.converters.quantize.reports import AccuracySearch, SensitivityReport

Mode = Literal["static", "dynamic", "fp16"]
QuantBackend = Literal["onnxruntime", "openvino", "tflite"]
Calibration = Literal["minmax", "entropy", "percentile"]
ActivationType = Literal["uint8", "int8"]
OrtFormat = Literal["qdq", "qoperator"]
WeightsOnly = Literal["int4"]

DEFAULT_CALIB_SAMPLES = 300  # NNCF's default subset: enough for stable activation ranges


@dataclass(frozen=True)
class QuantizeConfig:
    """What to quantize and how; validated on construction (bad combinations raise ConfigError).

    ``symmetric`` None means the backend's own default: asymmetric activations on onnxruntime,
    NNCF's PERFORMANCE preset (symmetric) on OpenVINO.
    """

    mode: Mode = "static"
    backend: QuantBackend = "onnxruntime"
    per_channel: bool = True
    calibration: Calibration = "minmax"
    symmetric: Optional[bool] = None
    reduce_range: bool = False
    clip_percentile: Optional[float] = None
    weights_only: Optional[WeightsOnly] = None
    max_accuracy_drop: Optional[float] = None  # accuracy points, e.g. 1.0 = one point
    sensitivity: bool = False
    activations: ActivationType = "uint8"
    ort_format: OrtFormat = "qdq"
    calib_samples: int = DEFAULT_CALIB_SAMPLES
    int4_group_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, Mode)
        _check_choice("backend", self.backend, QuantBackend)
        _check_choice("calibration", self.calibration, Calibration)
        _check_choice("activations", self.activations, ActivationType)
        _check_choice("ort_format", self.ort_format, OrtFormat)
        if self.weights_only is not None:
            _check_choice("weights_only", self.weights_only, WeightsOnly)
        if self.clip_percentile is not None and not 50.0 < self.clip_percentile < 100.0:
            raise ConfigError(
                f"--clip-percentile must be between 50 and 100 (exclusive), got "
                f"{self.clip_percentile:g}",
                "pass e.g. 99.99 to clip the 0.01 % largest weights of each channel",
            )
        if self.max_accuracy_drop is not None and not 0.0 <= self.max_accuracy_drop <= 100.0:
            raise ConfigError(
                f"--max-accuracy-drop must be 0..100 accuracy points, got {self.max_accuracy_drop:g}",
                "pass e.g. 1 for at most one point of top-1 accuracy lost",
            )
        if self.calib_samples < 1:
            raise ConfigError(f"calib_samples must be at least 1, got {self.calib_samples}",
                              "pass a positive count")
        if self.int4_group_size < 1 or self.int4_group_size & (self.int4_group_size - 1):
            raise ConfigError(f"int4 group size must be a power of two, got {self.int4_group_size}",
                              "use 32, 64 or 128")
        self._check_backend_fit()

    def _check_backend_fit(self) -> None:
        b = self.backend
        if self.weights_only:
            if b == "tflite":
                raise UnsupportedError(
                    "int4 weight-only quantization is not available for TFLite",
                    "use --backend onnxruntime (MatMulNBits) or --backend openvino (NNCF)",
                )
            if self.mode != "static" or self.max_accuracy_drop is not None or self.sensitivity:
                raise ConfigError(
                    "--weights-only int4 is its own mode: it takes no --mode dynamic/fp16, "
                    "--max-accuracy-drop or --sensitivity",
                    "drop those options, or quantize activations too with --mode static",
                )
        if self.mode == "dynamic" and b != "onnxruntime":
            raise UnsupportedError(
                f"dynamic quantization is an onnxruntime mode; {b} has no dynamic int8 path here",
                "use --mode static with calibration data, or --backend onnxruntime",
            )
        if self.mode != "static" and (self.max_accuracy_drop is not None or self.sensitivity):
            raise ConfigError(
                f"--max-accuracy-drop and --sensitivity need --mode static, not {self.mode}",
                "pass --mode static",
            )
        if self.mode == "fp16" and self.clip_percentile is not None:
            raise ConfigError("--clip-percentile applies to integer quantization, not fp16",
                              "drop --clip-percentile")
        if b != "onnxruntime":
            ort_only = {
                "--calibration entropy": self.calibration == "entropy",
                "--reduce-range": self.reduce_range,
                "--activations int8": self.activations != "uint8",
                "--ort-format qoperator": self.ort_format != "qdq",
            }
            used = [k for k, v in ort_only.items() if v]
            if used:
                raise ConfigError(f"{', '.join(used)} only apply to --backend onnxruntime",
                                  f"drop them for --backend {b}")
        if b != "onnxruntime" and self.sensitivity:
            raise UnsupportedError(
                "the per-layer sensitivity report is computed on the ONNX graph with onnxruntime",
                "run it with --backend onnxruntime on the ONNX model (for OpenVINO, "
                "--max-accuracy-drop runs NNCF's own accuracy-aware search)",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_choice(name: str, value: object, choices: Any) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"unknown {flag} '{value}'", f"use one of: {', '.join(allowed)}")


@dataclass
class Outcome:
    """What a backend run hands back to ``quantize_file``."""

    files: list[Path]  # staged files, the model first
    params: dict[str, Any]
    search: Optional[AccuracySearch] = None
    sensitivity: Optional[SensitivityReport] = None
    clip: Optional[dict[str, Any]] = None

"""OpenVINO quantization through NNCF: static int8 (optionally accuracy-controlled) and int4
weight compression.  The input is ONNX (converted with openvino.convert_model) or OpenVINO IR;
the output is IR saved with fp32 for whatever stays unquantized (``compress_to_fp16=False``).

Measured on this CPU: NNCF int8 is the fastest CPU path (about 10x fp32 on a plain conv net,
4.6x on EfficientNet-Lite0) but the least faithful (logit cosine 0.94 vs 0.987 for onnxruntime
static there), which is what ``max_accuracy_drop`` (quantize_with_accuracy_control) is for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.converters.quantize.calib import Feed, to_stderr
from edgeship.converters.quantize.config import Outcome, QuantizeConfig
from edgeship.core.data import SampleSet
from edgeship.core.errors import MissingBackendError, ModelError, UnsupportedError
from edgeship.runtime.formats import companions, is_format

_RANGE_ESTIMATORS = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE"}


def _nncf() -> tuple[Any, Any]:
    try:
        import nncf
        import openvino as ov
    except ImportError:
        raise MissingBackendError("NNCF and OpenVINO are needed for --backend openvino",
                                  "pip install 'edgeship[compress]'") from None
    import logging

    nncf.set_log_level(logging.WARNING)
    return nncf, ov


def read_model(path: Path) -> Any:
    """An ov.Model from ONNX or IR; files OpenVINO cannot read are a one-line ModelError."""
    _, ov = _nncf()
    try:
        if is_format(path, "openvino"):
            return ov.Core().read_model(str(path))
        return ov.convert_model(str(path))
    except Exception as exc:
        raise ModelError(f"OpenVINO cannot read '{path.name}': {' '.join(str(exc).split())[:160]}",
                         "re-export the model") from None


def _dataset(nncf: Any, feeds: Sequence[Feed]) -> Any:
    return nncf.Dataset(list(feeds), lambda feed: feed)


def _advanced(nncf: Any, cfg: QuantizeConfig) -> Any:
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return AdvancedQuantizationParameters(
        activations_range_estimator_params=getattr(
            RangeEstimatorParametersSet, _RANGE_ESTIMATORS[cfg.calibration]),
        weights_quantization_params=QuantizationParameters(per_channel=cfg.per_channel),
    )


def params(cfg: QuantizeConfig) -> dict[str, Any]:
    return {
        "format": "OpenVINO IR (FakeQuantize)",
        "activations": "int8",
        "weights": "int8",
        "per_channel": cfg.per_channel,
        "preset": "mixed" if cfg.symmetric is False else "performance",
        "calibration": cfg.calibration,
    }


def quantize(model: Any, calib: SampleSet, cfg: QuantizeConfig,
             validation: Optional[tuple[Feed, np.ndarray]] = None) -> tuple[Any, dict[str, Any]]:
    """NNCF int8; with ``validation`` data and ``cfg.max_accuracy_drop``, NNCF's accuracy
    control reverts the most damaging quantizers to fp32 until the drop is within budget."""
    nncf, _ = _nncf()
    preset = (nncf.QuantizationPreset.MIXED if cfg.symmetric is False
              else nncf.QuantizationPreset.PERFORMANCE)
    common = {"preset": preset, "subset_size": len(calib)}
    info = params(cfg)
    try:
        if cfg.max_accuracy_drop is None or validation is None:
            with to_stderr():
                return nncf.quantize(model, _dataset(nncf, calib.feeds), **common,
                                     advanced_parameters=_advanced(nncf, cfg)), info
        feeds, labels = validation
        items = [({k: v[i:i + 1] for k, v in feeds.items()}, int(labels[i]))
                 for i in range(len(labels))]
        with to_stderr():
            quantized = nncf.quantize_with_accuracy_control(
                model,
                _dataset(nncf, calib.feeds),
                nncf.Dataset(items, lambda item: item[0]),
                validation_fn=_top1_validation,
                max_drop=cfg.max_accuracy_drop / 100.0,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_quantization_parameters=_advanced(nncf, cfg),
                **common,
            )
    except Exception as exc:  # NNCF raises many types for models it cannot handle
        raise UnsupportedError(
            f"NNCF could not quantize this model ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]})",
            "try --backend onnxruntime",
        ) from None
    info["accuracy_control"] = {"max_drop_points": cfg.max_accuracy_drop,
                                "validation_samples": len(labels)}
    return quantized, info


def _top1_validation(compiled: Any, items: Any) -> float:
    """NNCF's validation_fn: top-1 accuracy of a compiled model over (feed, label) items."""
    correct = total = 0
    for feed, label in items:
        out = next(iter(compiled(feed).values()))
        correct += int(np.asarray(out).reshape(1, -1).argmax(1)[0] == label)
        total += 1
    return correct / total if total else 0.0


def compress_int4(model: Any, cfg: QuantizeConfig) -> tuple[Any, dict[str, Any]]:
    """4-bit weight-only compression of MatMul/Linear weights (NNCF compress_weights);
    NNCF keeps the first and last layers in int8 unless the model is all MatMuls."""
    nncf, _ = _nncf()
    mode = (nncf.CompressWeightsMode.INT4_ASYM if cfg.symmetric is False
            else nncf.CompressWeightsMode.INT4_SYM)
    try:
        with to_stderr():
            compressed = nncf.compress_weights(model, mode=mode, group_size=cfg.int4_group_size,
                                               ratio=1.0)
    except Exception as exc:
        raise UnsupportedError(f"NNCF could not compress the weights to int4: "
                               f"{' '.join(str(exc).split())[:200]}",
                               "use --weights-only with a group size that divides the layers' "
                               "input sizes, or --mode static") from None
    return compressed, {"format": "OpenVINO IR (weight compression)", "weights": "int4",
                        "activations": "fp32", "group_size": cfg.int4_group_size,
                        "mode": mode.value}


def save(model: Any, xml: Path) -> list[Path]:
    """Save IR keeping fp32 where nothing was quantized; returns [xml, bin]."""
    _, ov = _nncf()
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return [xml, *companions(xml)]


def run(src: Path, out: Path, cfg: QuantizeConfig, calib: Optional[SampleSet],
        labelled: Optional[tuple[Feed, np.ndarray]], work: Path) -> Outcome:
    """The OpenVINO side of ``quantize_file``: ONNX or IR ``src`` into IR ``out``."""
    _, ov = _nncf()
    model = read_model(src)
    if cfg.weights_only:
        result, info = compress_int4(model, cfg)
    elif cfg.mode == "fp16":
        ov.save_model(model, str(out), compress_to_fp16=True)
        return Outcome([out, *companions(out)],
                       {"format": "OpenVINO IR", "weights": "fp16", "activations": "runtime's "
                        "inference precision (fp32, or bf16/fp16 where the device picks it)"})
    else:
        assert calib is not None
        result, info = quantize(model, calib, cfg, labelled)
    return Outcome(save(result, out), info)

"""onnxruntime quantization: static QDQ, dynamic, fp16, and 4-bit weight-only MatMul.

Path in, path out; every option is an explicit field of QuantizeConfig, mapped here onto
onnxruntime's arguments (and its ``extra_options`` keys, which never leak out of this module).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from edgeship.converters.quantize.calib import to_stderr, warn
from edgeship.converters.quantize.config import QuantizeConfig
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError, MissingBackendError, ModelError, UnsupportedError

_CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
CONV_DOMINATED = 0.5  # share of MACs in convolutions above which dynamic int8 does not pay


def _quantization() -> Any:
    try:
        import onnxruntime.quantization as q
    except ImportError:
        raise MissingBackendError("onnxruntime is not installed",
                                  "pip install 'edgeship[onnx]'") from None
    # onnxruntime logs every skipped node at INFO: keep the user's terminal for what matters
    for name in ("onnxruntime.quantization", "onnxruntime.quantization.matmul_nbits_quantizer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return q


def preprocess(src: Path, dst: Path) -> Path:
    """onnxruntime's quant_pre_process (shape inference + graph optimisation), which lets the
    quantizer fold and fuse more; a model it cannot handle is quantized as it is, with a warning.

    Its symbolic shape inference writes ``sym_shape_infer_temp.onnx`` and a ``<uuid>.data``
    file into the *current directory* when it gives up (dynamic dimensions it cannot follow):
    it runs in a private cwd, and is retried without the symbolic pass, which a model with
    dynamic dimensions often does not need."""
    from edgeship.core.workdir import private_cwd

    q = _quantization()
    errors = []
    src, dst = src.resolve(), dst.resolve()
    for skip_symbolic in (False, True):
        try:
            with private_cwd():
                q.quant_pre_process(str(src), str(dst), skip_symbolic_shape=skip_symbolic)
            return dst
        except Exception as exc:  # noqa: BLE001 - the fallback is the model as it is
            errors.append(" ".join(str(exc).split())[:120] or type(exc).__name__)
    warn(f"onnxruntime's quant_pre_process failed ({errors[-1]}); quantizing the model without "
         "it (fewer fusions, possibly slower)")
    return src


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a SampleSet (re-iterable)."""

    def __init__(self, calib: SampleSet) -> None:
        self._it = iter(calib.feeds)

    def get_next(self) -> Optional[dict[str, Any]]:
        return next(self._it, None)


def static_params(cfg: QuantizeConfig) -> dict[str, Any]:
    """What a static quantization with ``cfg`` stores in the model, for the manifest."""
    return {
        "format": cfg.ort_format.upper(),
        "activations": cfg.activations,
        "weights": "int8",
        "per_channel": cfg.per_channel,
        "reduce_range": cfg.reduce_range,
        "calibration": cfg.calibration,
        "activations_symmetric": bool(cfg.symmetric),
        "weights_symmetric": True,
    }


def warn_slow_static(cfg: QuantizeConfig) -> None:
    if cfg.activations == "int8" and cfg.ort_format == "qoperator":
        warn("QOperator with int8 activations (s8s8) has no fast kernels on x86 CPUs: it ran "
             "12x SLOWER than fp32 on a small CNN. Use the default uint8 activations")
    elif cfg.activations == "int8":
        warn("int8 activations (s8s8) ran 3.3x slower than uint8 (u8s8) with onnxruntime on "
             "x86 CPUs (depthwise convolutions); keep them for ARM targets or accelerators")


def quantize_static(
    pre: Path,
    out: Path,
    calib: SampleSet,
    cfg: QuantizeConfig,
    cache: Path,
    *,
    exclude: Sequence[str] = (),
    only: Optional[Sequence[str]] = None,
) -> None:
    """Static int8 of the preprocessed model ``pre`` into ``out``.  Activation ranges are
    computed once and kept in ``cache``, so sensitivity and accuracy-aware passes, which
    quantize the same model many times with different node sets, do not recalibrate."""
    q = _quantization()
    act = q.QuantType.QUInt8 if cfg.activations == "uint8" else q.QuantType.QInt8
    fmt = q.QuantFormat.QDQ if cfg.ort_format == "qdq" else q.QuantFormat.QOperator
    try:
        with to_stderr():
            q.quantize_static(
                str(pre), str(out),
                calibration_data_reader=None if cache.is_file() else _Reader(calib),  # type: ignore[arg-type]
                quant_format=fmt,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range,
                activation_type=act,
                weight_type=q.QuantType.QInt8,
                nodes_to_quantize=list(only) if only is not None else None,
                nodes_to_exclude=list(exclude),
                calibrate_method=getattr(q.CalibrationMethod, _CALIBRATION[cfg.calibration]),
                calibration_cache_path=cache,
                extra_options={
                    "ActivationSymmetric": bool(cfg.symmetric),
                    "WeightSymmetric": True,
                },
            )
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        text = " ".join(str(exc).split())
        if "Non-zero status code returned while running" in text or "INVALID_ARGUMENT" in text:
            # calibration runs the model: inputs it rejects are the user's to fix, not a bug
            detail = text.split("Status Message:")[-1].strip()[:200]
            raise ConfigError(
                f"calibration could not run the model on {'RANDOM' if calib.random else 'the'} "
                f"inputs: {detail}",
                "pass --calib with real samples (an .npz with one array per input name)",
            ) from None
        raise UnsupportedError(f"onnxruntime could not quantize this model: {text[:200]}",
                               "try --backend openvino, or exclude the failing layer type",
                               ) from None


def quantize_dynamic(pre: Path, out: Path, cfg: QuantizeConfig, conv_share: float) -> dict[str, Any]:
    """Dynamic int8: weights stored int8, activation ranges computed per inference."""
    q = _quantization()
    if conv_share > CONV_DOMINATED:
        warn(f"this model spends {conv_share:.0%} of its MACs in convolutions. onnxruntime's "
             "dynamic quantization turns them into ConvInteger, which ran ~7x SLOWER than fp32 "
             "on a plain conv net (and gave wrong top-1 on EfficientNet-Lite0). Use "
             "--mode static --calib DATA for conv nets; dynamic pays off on MatMul/Linear-heavy "
             "models (transformers, MLPs)")
    q.quantize_dynamic(str(pre), str(out), per_channel=cfg.per_channel,
                       reduce_range=cfg.reduce_range, weight_type=q.QuantType.QInt8)
    return {"format": "dynamic", "weights": "int8", "activations": "uint8 (computed per run)",
            "per_channel": cfg.per_channel, "reduce_range": cfg.reduce_range,
            "conv_mac_share": round(conv_share, 4)}


def convert_fp16(pre: Path, out: Path) -> dict[str, Any]:
    """fp16 weights and compute, fp32 inputs and outputs (casts at the edges)."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        raise MissingBackendError("onnxruntime's float16 converter is not importable",
                                  "pip install 'edgeship[onnx]'") from None
    warn("fp16 pays off on GPUs and NPUs: on CPUs it halves the file but runs no faster than "
         "fp32 (0.99x measured with onnxruntime, 1 thread). Use int8 (--mode static) for CPUs")
    model = convert_float_to_float16(onnx.load(str(pre)), keep_io_types=True)
    onnx.save(model, str(out))
    return {"format": "fp16", "weights": "fp16", "io": "fp32"}


def quantize_int4(src: Path, out: Path, cfg: QuantizeConfig, conv_share: float) -> dict[str, Any]:
    """4-bit weight-only quantization of MatMul/Linear weights (MatMulNBits), blockwise."""
    import onnx
    from edgeship.converters.quantize.graph import gemm_to_matmul

    _quantization()
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    rewritten = gemm_to_matmul(model)
    quantizer = MatMulNBitsQuantizer(model, bits=4, block_size=cfg.int4_group_size,
                                     is_symmetric=cfg.symmetric is not False,
                                     op_types_to_quantize=("MatMul",))
    quantizer.process()
    result = quantizer.model.model
    packed = sum(1 for n in result.graph.node if n.op_type == "MatMulNBits")
    if packed == 0:
        raise UnsupportedError(
            "int4 weight-only found no MatMul/Linear layer with constant weights to compress",
            "use --mode static for int8 of convolutions",
        )
    if conv_share > CONV_DOMINATED:
        warn(f"{conv_share:.0%} of this model's MACs are convolutions, which int4 weight-only "
             "leaves in fp32: it only shrinks MatMul/Linear layers. Use --mode static for conv nets")
    onnx.save(result, str(out))
    return {"format": "MatMulNBits", "weights": "int4", "activations": "fp32",
            "group_size": cfg.int4_group_size, "weights_symmetric": cfg.symmetric is not False,
            "layers": packed, "gemm_rewritten_as_matmul": rewritten}


def check_loadable(path: Path) -> None:
    """Fail here, not on the device, if onnxruntime cannot create a session for the result."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"the quantized model does not load in onnxruntime: "
                         f"{' '.join(str(exc).split())[:200]}",
                         "report this model; try another --mode or --backend") from None


def named(src: Path, dst: Path) -> Path:
    import onnx
    from edgeship.converters.quantize.graph import name_nodes

    model = onnx.load(str(src))
    name_nodes(model)
    onnx.save(model, str(dst))
    return dst

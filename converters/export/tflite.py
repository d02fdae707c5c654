"""Export to TFLite.

torch -> TFLite with litert-torch (preferred: it installs beside torch 2.13 and keeps NCHW):
  - fp32: ``litert_torch.convert``;
  - fp16: the fp32 flatbuffer with fp16 weights (ai-edge-quantizer float casting), computed in
    fp32 by the interpreter, as TFLite's own "float16 quantization" does;
  - int8: full-integer (int8 weights, activations, inputs and outputs) with PT2E static
    quantization calibrated on representative samples from ``data``.
ONNX -> TFLite goes through onnx2tf in its own tools venv (converters/export/onnx2tf.py).

The batch size is the example input's: TFLite models here are fixed-shape.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Optional

from edgeship.converters.export.base import (
    Exported,
    ExportOptions,
    captured_output,
    image_layouts,
    require_calibration_data,
)
from edgeship.converters.export.source import Source
from edgeship.core.errors import MissingBackendError, ModelError, UnsupportedError
from edgeship.runtime.formats import FORMATS

LITERT_PIP = "litert-torch"  # see README: installed with --no-deps beside torch 2.13


def export_tflite(source: Source, directory: Path, stem: str, options: ExportOptions,
                  data: Any = None) -> Exported:
    if source.kind == "onnx":
        from edgeship.converters.export.onnx2tf import onnx_to_tflite

        return onnx_to_tflite(source, directory, stem, options, data)
    if options.precision not in ("fp32", "fp16", "int8"):
        raise UnsupportedError(f"TFLite export supports fp32, fp16 and int8, not {options.precision}",
                               "pick one of those precisions")
    litert = _import("litert_torch")
    path = directory / FORMATS["tflite"].filename(stem)
    quantization: Optional[dict[str, Any]] = None
    if options.precision == "int8":
        quantization = _convert_int8(litert, source, path, options, data)
    else:
        _convert(litert, source.module, source.example_inputs, path)
        if options.precision == "fp16":
            quantization = _fp16_weights(path)
    shapes = [tuple(e.shape) for e in source.example_inputs]
    return Exported(
        file=path.name,
        files=[path.name],
        tolerance=options.precision,
        converter=f"litert-torch {_version('litert-torch')}",
        input_layouts=image_layouts(shapes, "NCHW"),
        quantization=quantization,
        notes={"batch": "fixed to the example input's batch size"},
    )


def _convert(litert: Any, module: Any, examples: tuple[Any, ...], path: Path,
             quant_config: Any = None) -> None:
    with captured_output():
        try:
            edge = litert.convert(module, examples, quant_config=quant_config)
            edge.export(str(path))
        except Exception as exc:
            raise _convert_error(exc, _unlowerable_ops(module, examples)) from None


def _convert_int8(litert: Any, source: Source, path: Path, options: ExportOptions,
                  data: Any) -> dict[str, Any]:
    """PT2E: export, insert observers, calibrate on real samples, fold into int8, convert."""
    import torch

    require_calibration_data(options, data)
    from edgeship.converters.parity import make_samples, run_batched

    pt2e = _import("litert_torch.quantize.pt2e_quantizer")
    quant_config = _import("litert_torch.quantize.quant_config")
    quantize_pt2e = _import("torchao.quantization.pt2e.quantize_pt2e")
    calibration = make_samples(source.inputs, random=0, data=data,
                               max_real=options.calibration_samples)
    batch = int(source.example_inputs[0].shape[0])
    quantizer = pt2e.PT2EQuantizer().set_global(
        pt2e.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    with captured_output():
        try:
            graph = torch.export.export(source.module, source.example_inputs).module()
            prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)

            def observe(arrays: list[Any]) -> list[Any]:
                with torch.no_grad():
                    prepared(*(torch.from_numpy(a) for a in arrays))
                return [arrays[0][:, :1]]

            run_batched(observe, calibration.arrays, batch)
            quantized = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
        except Exception as exc:
            raise _convert_error(exc, _unlowerable_ops(source.module, source.example_inputs)
                                 ) from None
    _convert(litert, quantized, source.example_inputs, path,
             quant_config.QuantConfig(pt2e_quantizer=quantizer))
    return {
        "method": "static",
        "tool": f"litert-torch {_version('litert-torch')} PT2E",
        "weights": "int8 symmetric per-channel",
        "activations": "int8",
        "io": "int8 (scale and zero point in the model; the runtime maps float values)",
        "calibration": {"source": calibration.source, "samples": calibration.real},
    }


def _fp16_weights(path: Path) -> dict[str, Any]:
    quantizer_mod = _import("ai_edge_quantizer.quantizer")
    qtyping = _import("ai_edge_quantizer.qtyping")
    algorithms = _import("ai_edge_quantizer.algorithm_manager")
    with captured_output():
        try:
            quantizer = quantizer_mod.Quantizer(str(path))
            quantizer.add_weight_only_config(
                ".*", qtyping.TFLOperationName.ALL_SUPPORTED, 16,
                algorithm_key=algorithms.AlgorithmName.FLOAT_CASTING)
            quantizer.quantize().export_model(str(path), overwrite=True)
        except Exception as exc:
            raise _convert_error(exc, []) from None
    return {"method": "fp16 weights", "tool": f"ai-edge-quantizer {_version('ai-edge-quantizer')}",
            "weights": "float16", "activations": "float32", "io": "float32"}


def _convert_error(exc: Exception, unlowerable: list[str]) -> Exception:
    """UnsupportedError naming the ops litert-torch cannot lower, else a ModelError."""
    text = " ".join(str(exc).split())
    if text.startswith("Lowering not found:"):
        unlowerable = unlowerable or [text.removeprefix("Lowering not found:").strip()]
    if unlowerable:
        ops = ", ".join(f"'{op}'" for op in unlowerable)
        return UnsupportedError(
            f"TFLite (litert-torch) cannot express the operator(s) {ops} "
            f"({type(exc).__name__}: {text[:120]})",
            "replace that operation in the model, or export to ONNX/OpenVINO instead",
        )
    return ModelError(f"litert-torch could not convert the model: {type(exc).__name__}: {text[:240]}",
                      "check the model runs under torch.export.export with the example input")


def _unlowerable_ops(module: Any, examples: tuple[Any, ...]) -> list[str]:
    """After a failed conversion: the core-ATen ops of the model litert-torch has no lowering
    for (its errors rarely say which op it choked on)."""
    import torch

    lowerings = _import("litert_torch.backend.lowerings")
    try:
        with captured_output():
            graph = torch.export.export(module, examples).run_decompositions().graph
    except Exception:
        return []
    ops = [n.target for n in graph.nodes
           if n.op == "call_function" and isinstance(n.target, torch._ops.OpOverload)]
    return sorted({str(op) for op in ops if lowerings.lookup(op) is None})


def _import(module: str) -> Any:
    try:
        with captured_output():  # absl/torchao/TF chatter at import time
            return importlib.import_module(module)
    except ImportError as exc:
        raise MissingBackendError(
            f"TFLite export needs {LITERT_PIP} ({module} is not importable: {exc})",
            f"run: edgeship tools install converters (it installs {LITERT_PIP} with the packages "
            "its conversions use, without the pins that would downgrade pydantic)",
        ) from None


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"

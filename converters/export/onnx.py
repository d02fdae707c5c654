"""Export to ONNX: torch -> ONNX with torch.onnx's TorchScript exporter at opset 17.

Why ``dynamo=False`` (checked with torch 2.13.0 / onnxscript 0.7.2): the TorchScript exporter
writes one self-contained file at exactly the opset asked for (17 by default, which
onnxruntime, OpenVINO and onnx2tf all take), and the same model gives a byte-identical file on
every run.  The dynamo exporter defaults to opset 20, writes the weights to a separate
``.onnx.data`` file unless told otherwise, and reaches a lower opset through a version
conversion of its graph; it is offered (``dynamo=True``, weights kept inline, the opset it
really wrote recorded) for models the TorchScript tracer cannot handle.

An ``.onnx`` source is validated, copied and parity-checked as it is.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

from edgeship.converters.export.base import Exported, ExportOptions, captured_output, image_layouts
from edgeship.converters.export.source import Source, op_name
from edgeship.core.errors import ModelError, UnsupportedError
from edgeship.runtime.formats import FORMATS


def export_onnx(source: Source, directory: Path, stem: str, options: ExportOptions,
                data: Any = None) -> Exported:
    if options.precision != "fp32":
        raise UnsupportedError(
            f"export to ONNX writes fp32 models, not {options.precision}",
            "export fp32, then run edgeship quantize on the .onnx file",
        )
    path = directory / FORMATS["onnx"].filename(stem)
    if source.kind == "onnx":
        assert source.path is not None
        shutil.copyfile(source.path, path)
        converter = "copy (already ONNX)"
    else:
        converter = torch_to_onnx(source, path, options)
    shapes = [s.shape for s in source.inputs]
    return Exported(
        file=path.name,
        files=[path.name],
        tolerance="exact",
        converter=converter,
        input_layouts=image_layouts(shapes, "NCHW"),
        output_layouts=[],
    )


def torch_to_onnx(source: Source, path: Path, options: ExportOptions) -> str:
    """Write ``source`` (kind torch) to ``path``; returns a description of the converter used."""
    import torch

    names = [s.name for s in source.inputs]
    axes = ({n: {0: "batch"} for n in [*names, *source.output_names]}
            if options.dynamic_batch and source.fixed_batch is None else None)
    with captured_output(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            if options.dynamo:
                program = torch.onnx.export(
                    source.module, source.example_inputs, dynamo=True, opset_version=options.opset,
                    input_names=names, output_names=source.output_names,
                    dynamic_shapes=(_dynamo_shapes(source)
                                    if options.dynamic_batch and source.fixed_batch is None else None),
                )
                assert program is not None  # dynamo=True always returns the ONNXProgram
                program.save(str(path), external_data=False)
            else:
                torch.onnx.export(
                    source.module, source.example_inputs, str(path), dynamo=False,
                    opset_version=options.opset, input_names=names,
                    output_names=source.output_names, dynamic_axes=axes, do_constant_folding=True,
                )
        except Exception as exc:
            raise _export_error(exc, options) from None
    if options.dynamo:
        return f"torch.onnx {torch.__version__} (dynamo exporter, opset {_opset_of(path)})"
    return f"torch.onnx {torch.__version__} (TorchScript exporter, opset {options.opset})"


def _dynamo_shapes(source: Source) -> tuple[dict[int, Any], ...]:
    import torch

    batch = torch.export.Dim("batch")
    return tuple({0: batch} for _ in source.example_inputs)


def _opset_of(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _export_error(exc: Exception, options: ExportOptions) -> Exception:
    text = " ".join(str(exc).split())
    if type(exc).__name__ == "UnsupportedOperatorError" or "is not supported" in text:
        op = op_name(text) or "an operator"
        return UnsupportedError(
            f"ONNX opset {options.opset} cannot express the operator '{op}' (torch.onnx: "
            f"{text[:160]})",
            "replace that operation in the model, or try --opset 18+ / the dynamo exporter",
        )
    return ModelError(f"torch.onnx could not export the model: {type(exc).__name__}: {text[:240]}",
                      "check the model runs on the example input; try the dynamo exporter")

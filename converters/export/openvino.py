"""Export to OpenVINO IR (.xml + .bin): ONNX -> ``openvino.convert_model`` -> ``save_model``.

A torch source goes through ONNX first (converters/export/onnx.py), so every OpenVINO export is
the graph the ONNX export would be, and the parity check compares it with the torch model itself.
Weights stay fp32 unless fp16 is asked for: ``save_model`` compresses to fp16 by default, which
would silently change the model.  int8 IR is quantization's job (``edgeship quantize``, NNCF).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeship.converters.export.base import Exported, ExportOptions, captured_output, image_layouts
from edgeship.converters.export.onnx import torch_to_onnx
from edgeship.converters.export.source import Source
from edgeship.core.errors import ModelError, UnsupportedError
from edgeship.runtime.backends import import_backend
from edgeship.runtime.formats import FORMATS, companions


def export_openvino(source: Source, directory: Path, stem: str, options: ExportOptions,
                    data: Any = None) -> Exported:
    if options.precision not in ("fp32", "fp16"):
        raise UnsupportedError(
            f"export to OpenVINO IR writes fp32 or fp16 weights, not {options.precision}",
            "export fp32, then run edgeship quantize with the openvino backend (NNCF)",
        )
    ov = _import_openvino()
    xml = directory / FORMATS["openvino"].filename(stem)
    if source.kind == "onnx":
        assert source.path is not None
        onnx_path, via = source.path, "ONNX file"
    else:
        onnx_path = directory / FORMATS["onnx"].filename(f".{stem}.via")
        via = torch_to_onnx(source, onnx_path, options)
    try:
        with captured_output(), _no_telemetry():
            try:
                model = ov.convert_model(str(onnx_path), **_shapes(source))
            except Exception as exc:
                raise _convert_error(exc, onnx_path, source) from None
            if model.has_rt_info(["conversion_parameters", "input_model"]):
                # the converter records where it read the file: a path on this machine (a temp
                # copy, a Ray worker's folder) that would make the same model's IR differ
                model.set_rt_info(onnx_path.name, ["conversion_parameters", "input_model"])
            ov.save_model(model, str(xml), compress_to_fp16=options.precision == "fp16")
    finally:
        if onnx_path != source.path:
            onnx_path.unlink(missing_ok=True)
    shapes = [s.shape for s in source.inputs]
    return Exported(
        file=xml.name,
        files=[xml.name, *(c.name for c in companions(xml))],
        tolerance="fp32" if options.precision == "fp32" else "fp16",
        converter=f"openvino {ov.get_version()} convert_model from {via}",
        input_layouts=image_layouts(shapes, "NCHW"),
        notes={"weights": options.precision},
    )


def _import_openvino() -> Any:
    """openvino, imported without its telemetry when edgeship imports it first.

    ``openvino.convert_model`` reports usage to Google Analytics from a forked process unless
    the user opted out (and NNCF does the same): no network at run time, and a fork next to
    JAX's threads (litert-torch) can deadlock.  Both fall back to a no-op when the
    ``openvino_telemetry`` package cannot be imported, which ``import_backend`` arranges (the
    backends table lists it as blocked)."""
    return import_backend("openvino")


@contextlib.contextmanager
def _no_telemetry() -> Iterator[None]:
    """For a process that imported openvino (with telemetry) before edgeship: swap the
    converter's telemetry for OpenVINO's own stub while ``convert_model`` runs."""
    if sys.modules.get("openvino_telemetry") is None:
        yield
        return
    import openvino.tools.ovc.convert_impl as impl
    import openvino.tools.ovc.telemetry_stub as stub
    import openvino.tools.ovc.telemetry_utils as utils

    saved = impl.tm, utils.tm  # every telemetry call of convert_model goes through these two
    impl.tm = utils.tm = stub
    try:
        yield
    finally:
        impl.tm, utils.tm = saved


def _shapes(source: Source) -> dict[str, Any]:
    """``--input-shape`` as convert_model's ``input``: only the inputs the user fixed."""
    if not source.input_shapes:
        return {}
    return {"input": [(name, list(shape)) for name, shape in source.input_shapes.items()]}


# What OpenVINO says when a dimension it needs is unknown at conversion time
_DYNAMIC = re.compile(r"dynamic|is_static|get_shape|Dimension|rank|partial shape", re.I)


def _convert_error(exc: Exception, onnx_path: Path, source: Source) -> Exception:
    """One line with the real cause: the operations OpenVINO has no rule for, or the node that
    failed and why (a dynamic dimension comes with the --input-shape that fixes it)."""
    from edgeship.converters.onnx_shapes import input_shape_hint

    text = str(exc)
    flat = " ".join(text.split())
    match = re.search(r"No conversion rule found for operations?:\s*(\S.*?)(?: --|\. |$)", flat)
    if match:
        return UnsupportedError(
            f"OpenVINO has no conversion rule for the operation(s) {match.group(1).strip(' .')} "
            f"of '{onnx_path.name}'",
            "run the ONNX model with onnxruntime instead (edgeship bench --backend onnxruntime)",
        )
    node = re.search(r"(?:Conversion failed for|Error during conversion of) (\S+?)[-\s]node "
                     r"with name (\S+)", flat)
    cause = _cause(text)
    where = f" at {node.group(1)} node '{node.group(2).strip(':')}'" if node else ""
    hint = input_shape_hint(source.inputs)
    if hint and _DYNAMIC.search(flat):
        return UnsupportedError(
            f"OpenVINO cannot convert '{onnx_path.name}'{where} with its dynamic input "
            f"dimensions: {cause}", f"fix them: {hint}")
    if node or "OpConversionFailure" in type(exc).__name__:
        return UnsupportedError(f"OpenVINO cannot convert '{onnx_path.name}'{where}: {cause}",
                                "run the ONNX model with onnxruntime instead, or report the model")
    return ModelError(f"OpenVINO cannot convert '{onnx_path.name}': {cause}",
                      "check the model is a valid ONNX file (re-export it)")


def _cause(text: str) -> str:
    """The most specific line of OpenVINO's multi-line message: not its source locations, not
    the generic advice it appends."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines
              if not re.match(r"^(Exception from \S+|Check '.*' failed at \S+|\[ *(ERROR|INFO)"
                              r" *\]|Summary:|-- |Please|Traceback)", line)
              and "conversion rule" not in line and "FrameworkNode" not in line]
    best = next((line for line in reversed(useful) if not line.startswith("OpConversionFailure")),
                None) or (lines[0] if lines else "no message")
    return " ".join(best.split())[:240]

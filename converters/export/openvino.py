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
from edgeship.errors import ModelError, UnsupportedError
from edgeship.runtime.backends import import_backend
from edgeship.runtime.session import first_line


def export_openvino(source: Source, directory: Path, stem: str, options: ExportOptions,
                    data: Any = None) -> Exported:
    if options.precision not in ("fp32", "fp16"):
        raise UnsupportedError(
            f"export to OpenVINO IR writes fp32 or fp16 weights, not {options.precision}",
            "export fp32, then run edgeship quantize with the openvino backend (NNCF)",
        )
    ov = _import_openvino()
    xml = directory / f"{stem}.xml"
    if source.kind == "onnx":
        assert source.path is not None
        onnx_path, via = source.path, "ONNX file"
    else:
        onnx_path = directory / f".{stem}.via.onnx"
        via = torch_to_onnx(source, onnx_path, options)
    try:
        with captured_output(), _no_telemetry():
            try:
                model = ov.convert_model(str(onnx_path))
            except Exception as exc:
                raise _convert_error(exc, onnx_path) from None
            ov.save_model(model, str(xml), compress_to_fp16=options.precision == "fp16")
    finally:
        if onnx_path != source.path:
            onnx_path.unlink(missing_ok=True)
    shapes = [s.shape for s in source.inputs]
    return Exported(
        file=xml.name,
        files=[xml.name, xml.with_suffix(".bin").name],
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


def _convert_error(exc: Exception, onnx_path: Path) -> Exception:
    text = " ".join(str(exc).split())
    # OpenVINO lists what it cannot convert as "No conversion rule found for operations: A, B"
    # or names the op in a "... of type <Op> ..." / "[ONNX Frontend] ... <Op>" message.
    match = re.search(r"No conversion rule found for operations?:\s*(\S.*?)(?: --|$)", text)
    if match or "OpConversionFailure" in type(exc).__name__ or "conversion rule" in text:
        ops = match.group(1).strip(" .") if match else first_line(exc)
        return UnsupportedError(
            f"OpenVINO cannot express the operation(s) {ops} of '{onnx_path.name}'",
            "replace those operations in the model, or export to ONNX and run it with onnxruntime",
        )
    return ModelError(f"OpenVINO cannot convert '{onnx_path.name}': {text[:240]}",
                      "check the model is a valid ONNX file (re-export it)")

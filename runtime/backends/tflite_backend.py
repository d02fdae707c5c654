"""TFLite backend: ai-edge-litert, else tflite-runtime, else tensorflow.lite."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.runtime.backends import import_backend
from edgeship.runtime.errors import ConfigError, ModelError, UnsupportedError
from edgeship.runtime.session import (
    BackendInfo,
    Session,
    TensorSpec,
    first_line,
    native_stderr_captured,
)


def _spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(int(d) if d >= 0 else None for d in signature)
    storage = np.dtype(detail["dtype"]).name
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if storage in ("int8", "uint8", "int16") and scale:
        # Quantized I/O: callers pass and get real values, mapped with scale and zero point.
        return TensorSpec(detail["name"], shape, "float32", (float(scale), int(zero_point)), storage)
    return TensorSpec(detail["name"], shape, storage)


def _quantize(arr: np.ndarray, spec: TensorSpec) -> np.ndarray:
    assert spec.quantization and spec.storage_dtype
    scale, zero_point = spec.quantization
    info = np.iinfo(np.dtype(spec.storage_dtype))
    q = np.round(arr / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(spec.storage_dtype)


class TFLiteSession(Session):
    """A .tflite model on the first TFLite interpreter found."""

    def __init__(
        self,
        path: Path,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        precision: Optional[str] = None,
        input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    ) -> None:
        module = import_backend("tflite")
        if device not in (None, "CPU", "cpu"):
            raise UnsupportedError(
                f"TFLite delegate '{device}' is not supported by edgeship yet",
                "run on the CPU (the default) or use the openvino/onnxruntime backends",
            )
        if precision not in (None, "fp32"):
            raise UnsupportedError(
                "a TFLite model runs in the precision it was converted to",
                "convert it to fp16/int8 with edgeship quantize instead",
            )
        self.path = Path(path)
        interpreter_cls = module.lite.Interpreter if module.__name__ == "tensorflow" else (
            module.Interpreter
        )
        try:
            with native_stderr_captured():
                self._interp = interpreter_cls(model_path=str(self.path), num_threads=threads)
        except Exception as exc:
            raise ModelError(
                f"the TFLite interpreter cannot load '{self.path.name}': {first_line(exc)}",
                "check the file is a complete .tflite flatbuffer (re-export it if truncated)",
            ) from None
        self._allocated = False
        self._allocate(input_shapes or {})
        in_details = self._interp.get_input_details()
        out_details = self._interp.get_output_details()
        self.inputs = [_spec(d) for d in in_details]
        self.outputs = [_spec(d) for d in out_details]
        self._in_index = {d["name"]: d["index"] for d in in_details}
        self._out_index = [d["index"] for d in out_details]
        top = module.__name__.split(".")[0]
        version = getattr(module, "__version__", None) or _dist_version(top)
        self.info = BackendInfo(
            backend="tflite",
            module=top,
            version=version,
            device="CPU",
            requested_device=device,
            precision=None,
            threads=threads,
            details={"quantized_io": any(s.quantization for s in self.inputs + self.outputs)},
        )

    def _allocate(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Resize the inputs the user sized and allocate; a model whose dynamic inputs cannot be
        allocated at their default size (often 1) waits for the first feeds' shapes."""
        from edgeship.runtime.inputs import check_input_names, resolve_shapes

        details = self._interp.get_input_details()
        specs = [_spec(d) for d in details]
        check_input_names(specs, shapes, "--input-shape")
        resolve_shapes([s for s in specs if s.name in shapes], shapes)  # each must fit
        for d in details:
            if d["name"] in shapes:
                self._interp.resize_tensor_input(d["index"], list(shapes[d["name"]]))
        try:
            with native_stderr_captured():
                self._interp.allocate_tensors()
            self._allocated = True
        except Exception as exc:
            unsized = [s.name for s in specs if s.is_dynamic and s.name not in shapes]
            if unsized:
                return  # allocated on the first run, at its inputs' shapes
            raise self._allocation_error(exc, shapes) from None

    def _allocation_error(self, exc: BaseException, shapes: dict[str, tuple[int, ...]]) -> Exception:
        at = ", ".join(f"{k}={','.join(map(str, v))}" for k, v in shapes.items())
        if at:
            return ConfigError(
                f"the TFLite interpreter cannot prepare '{self.path.name}' at input shape {at}: "
                f"{first_line(exc)}", "give other sizes for the dynamic dimensions (--input-shape)")
        return UnsupportedError(
            f"the TFLite interpreter cannot prepare '{self.path.name}': {first_line(exc)}",
            "this interpreter cannot run the model's operators; try another TFLite runtime",
        )

    def _fit_shapes(self, feeds: dict[str, np.ndarray]) -> None:
        """Resize dynamic inputs to the feeds' shapes (onnxruntime takes any size; so do we)."""
        changed = {}
        for d in self._interp.get_input_details():
            shape = tuple(feeds[d["name"]].shape)
            if not self._allocated or tuple(d["shape"]) != shape:
                changed[d["name"]] = shape
        if not changed:
            return
        for name, shape in changed.items():
            self._interp.resize_tensor_input(self._in_index[name], list(shape))
        try:
            with native_stderr_captured():
                self._interp.allocate_tensors()
        except Exception as exc:
            self._allocated = False
            raise self._allocation_error(exc, changed) from None
        self._allocated = True

    def _set_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        self._fit_shapes(feeds)
        for spec in self.inputs:
            arr = feeds[spec.name]
            if spec.quantization:
                arr = _quantize(arr, spec)
            self._interp.set_tensor(self._in_index[spec.name], arr)

    def tensor_dtypes(self) -> Optional[dict[str, int]]:
        counts: dict[str, int] = {}
        for t in self._interp.get_tensor_details():
            name = np.dtype(t["dtype"]).name
            size = int(np.prod(t["shape"])) if len(t["shape"]) else 1
            counts[name] = counts.get(name, 0) + size
        return counts

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._set_inputs(feeds)
        self._interp.invoke()
        out = {}
        for spec, index in zip(self.outputs, self._out_index):
            value = self._interp.get_tensor(index)
            if spec.quantization:
                scale, zero_point = spec.quantization
                value = (value.astype(np.float32) - zero_point) * np.float32(scale)
            out[spec.name] = np.array(value)
        return out

    def prepare(self, feeds: Any) -> Any:
        self._set_inputs(self.check_feeds(feeds))
        return self._interp.invoke


def _dist_version(top: str) -> str:
    from importlib import metadata

    for dist in (top.replace("_", "-"), top):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"

"""OpenVINO backend: IR (.xml/.bin) or ONNX on CPU, GPU or NPU; reports what actually ran."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.runtime.backends import import_backend
from edgeship.runtime.errors import ConfigError, ModelError, UnsupportedError
from edgeship.runtime.formats import runtime_hints
from edgeship.runtime.results import NodeCoverage
from edgeship.runtime.session import (
    BackendInfo,
    Session,
    TensorSpec,
    first_line,
    native_stderr_captured,
)

# edgeship precision names -> OpenVINO INFERENCE_PRECISION_HINT values
_PRECISION_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}


def _precision_name(hint: Any) -> str:
    """OpenVINO's element type (f32/bf16/f16) as an edgeship precision name (fp32/bf16/fp16)."""
    name = hint.to_string() if hasattr(hint, "to_string") else str(hint)
    return {v: k for k, v in _PRECISION_HINTS.items()}.get(name, name)


def _spec(port: Any) -> TensorSpec:
    pshape = port.get_partial_shape()
    shape = tuple(d.get_length() if d.is_static else None for d in pshape)
    try:
        name = port.get_any_name()
    except RuntimeError:  # unnamed port
        name = f"{port.get_node().get_friendly_name()}"
    dtype = np.dtype(port.get_element_type().to_dtype()).name
    return TensorSpec(name, shape, dtype)


class OpenVINOSession(Session):
    """A model on OpenVINO.

    ``device`` is an OpenVINO device (CPU, GPU, NPU, GPU.1, AUTO...); one that is not present
    raises.  ``precision`` (fp32/fp16/bf16) sets INFERENCE_PRECISION_HINT; by default OpenVINO
    picks (bf16 on CPUs with AMX), and ``info.precision`` always says what it picked.
    """

    def __init__(
        self,
        path: Path,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        precision: Optional[str] = None,
        input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    ) -> None:
        ov = import_backend("openvino")
        self.path = Path(path)
        device = device or "CPU"
        core = ov.Core()
        present = core.available_devices
        base = device.split(":")[0].split(".")[0]
        if base not in ("AUTO", "HETERO", "MULTI") and not any(
            d == device or d.split(".")[0] == device for d in present
        ):
            raise UnsupportedError(
                f"OpenVINO device '{device}' is not present here (available: {present})",
                "install its driver or pick an available device",
            )
        try:
            with native_stderr_captured():
                model = core.read_model(str(self.path))
        except Exception as exc:
            raise ModelError(
                f"OpenVINO cannot read '{self.path.name}': {first_line(exc)}",
                "check the .xml and its .bin are complete and belong together",
            ) from None
        if input_shapes:
            from edgeship.runtime.inputs import check_input_names, resolve_shapes

            specs = [_spec(p) for p in model.inputs]
            check_input_names(specs, input_shapes, "--input-shape")
            resolve_shapes([s for s in specs if s.name in input_shapes], input_shapes)  # must fit
            try:
                model.reshape({k: list(v) for k, v in input_shapes.items()})
            except Exception as exc:
                raise ConfigError(
                    f"OpenVINO cannot reshape '{self.path.name}' to the --input-shape given: "
                    f"{first_line(exc)}", "give sizes the model's layers accept",
                ) from None
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if precision:
            if precision not in runtime_hints("openvino"):  # the formats table's list
                raise ConfigError(
                    f"unknown OpenVINO precision '{precision}'",
                    f"use one of {list(runtime_hints('openvino'))}",
                )
            config["INFERENCE_PRECISION_HINT"] = _PRECISION_HINTS[precision]
        try:
            with native_stderr_captured():
                self._compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise UnsupportedError(
                f"OpenVINO cannot compile '{self.path.name}' for {device}: {first_line(exc)}",
                "try another device or backend",
            ) from None
        self._request = self._compiled.create_infer_request()
        self.inputs = [_spec(p) for p in self._compiled.inputs]
        self.outputs = [_spec(p) for p in self._compiled.outputs]
        executed = list(self._compiled.get_property("EXECUTION_DEVICES"))
        self.info = BackendInfo(
            backend="openvino",
            module="openvino",
            version=ov.get_version(),
            device=",".join(executed),
            requested_device=device,
            precision=_precision_name(self._compiled.get_property("INFERENCE_PRECISION_HINT")),
            threads=threads,
            details={
                "num_streams": int(self._compiled.get_property("NUM_STREAMS")),
                "inference_num_threads": int(
                    self._compiled.get_property("INFERENCE_NUM_THREADS")
                )
                if "CPU" in executed
                else None,
            },
        )
        self._ov = ov

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._request.infer(feeds)
        return {spec.name: np.array(result[i]) for i, spec in enumerate(self.outputs)}

    def prepare(self, feeds: Any) -> Any:
        for name, arr in self.check_feeds(feeds).items():
            self._request.set_tensor(name, self._ov.Tensor(arr))
        return self._request.infer

    def node_coverage(self, feeds: Any = None) -> Optional[NodeCoverage]:
        """Runtime precision of each executed layer, from the compiled (runtime) model (the
        same for any inputs: ``feeds`` is not needed)."""
        precisions: Counter[str] = Counter()
        for op in self._compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            if "layerType" in info and str(info["layerType"]) not in ("Input", "Output"):
                precisions[str(info["runtimePrecision"]) if "runtimePrecision" in info else "?"] += 1
        return NodeCoverage(nodes=sum(precisions.values()),
                            by_device={self.info.device: sum(precisions.values())},
                            share_on_primary=1.0 if precisions else None,
                            runtime_precisions=dict(precisions))

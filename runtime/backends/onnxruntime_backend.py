"""onnxruntime backend: explicit execution providers, never a silent CPU fallback."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.runtime.backends import import_backend
from edgeship.runtime.errors import ModelError, UnsupportedError
from edgeship.runtime.results import NodeCoverage
from edgeship.runtime.session import (
    BackendInfo,
    Session,
    TensorSpec,
    first_line,
    native_stderr_captured,
)

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise UnsupportedError(
            f"tensor '{node.name}' has type {node.type}, which edgeship cannot feed",
            "export the model with float, integer or bool inputs",
        )
    shape = tuple(d if isinstance(d, int) else (d or None) for d in node.shape)
    return TensorSpec(node.name, shape, dtype)


class OnnxRuntimeSession(Session):
    """An ONNX model on onnxruntime.

    ``device`` is an execution provider name (default CPUExecutionProvider) or a comma list in
    order of preference.  A provider that is not available raises instead of running on CPU.
    """

    def __init__(
        self,
        path: Path,
        threads: Optional[int] = None,
        device: Optional[str] = None,
        precision: Optional[str] = None,
        input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    ) -> None:
        ort = import_backend("onnxruntime")
        if precision not in (None, "fp32"):
            raise UnsupportedError(
                f"onnxruntime runs a model in the precision it was exported in, not '{precision}'",
                "quantize or convert the model instead (edgeship quantize)",
            )
        self.path = Path(path)
        self._ort = ort
        self._threads = threads
        self._providers = [p.strip() for p in (device or "CPUExecutionProvider").split(",")]
        available = ort.get_available_providers()
        missing = [p for p in self._providers if p not in available]
        if missing:
            raise UnsupportedError(
                f"onnxruntime execution provider(s) {missing} not available here "
                f"(available: {available})",
                "install the onnxruntime build with that provider, or choose one that is available",
            )
        self._input_shapes = dict(input_shapes or {})
        self._sess = self._create()
        active = self._sess.get_providers()
        self.inputs = [_spec(i) for i in self._sess.get_inputs()]
        self.outputs = [_spec(o) for o in self._sess.get_outputs()]
        if self._input_shapes:  # onnxruntime takes any size at run time: check them here
            from edgeship.runtime.inputs import check_input_names, resolve_shapes

            check_input_names(self.inputs, self._input_shapes, "--input-shape")
            resolve_shapes([i for i in self.inputs if i.name in self._input_shapes],
                           self._input_shapes)
        self._output_names = [o.name for o in self.outputs]
        self.info = BackendInfo(
            backend="onnxruntime",
            module="onnxruntime",
            version=ort.__version__,
            device=active[0],
            requested_device=",".join(self._providers),
            precision=None,
            threads=threads,
            details={"providers": active},
        )

    def _options(self) -> Any:
        so = self._ort.SessionOptions()
        if self._threads:
            so.intra_op_num_threads = self._threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 4  # errors come back as exceptions; its own log would repeat them
        if self._providers != ["CPUExecutionProvider"]:
            # Nodes the chosen accelerator cannot run must fail loudly, not run on the CPU.
            so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        return so

    def _create(self, profile_dir: Optional[str] = None) -> Any:
        so = self._options()
        if profile_dir:
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(profile_dir, "p")
        try:
            with native_stderr_captured():
                return self._ort.InferenceSession(str(self.path), so, providers=self._providers)
        except Exception as exc:
            text = first_line(exc)
            if "NOT_IMPLEMENTED" in text or "not implemented" in text.lower():
                raise UnsupportedError(
                    f"onnxruntime cannot run '{self.path.name}': {text}",
                    "use another backend or export with a supported opset",
                ) from None
            raise ModelError(
                f"onnxruntime cannot load '{self.path.name}': {text}",
                "check the file is a complete, valid ONNX model (re-export it if truncated)",
            ) from None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._sess.run(self._output_names, feeds)
        return dict(zip(self._output_names, values))

    def prepare(self, feeds: Any) -> Any:
        checked = self.check_feeds(feeds)
        run, names = self._sess.run, self._output_names
        return lambda: run(names, checked)

    def node_coverage(self, feeds: Optional[Mapping[str, np.ndarray]] = None) -> Optional[NodeCoverage]:
        """Nodes per execution provider, read from one profiled run of a second session on
        ``feeds`` (the measured inputs; else inputs made at the session's input shapes)."""
        from edgeship.runtime.inputs import random_inputs

        if feeds is None:
            feeds = random_inputs(self.inputs, seed=0, fixed=self._input_shapes)
        checked = self.check_feeds(feeds)
        # The profile lands in a private folder that goes, whatever happens (on devices too).
        with tempfile.TemporaryDirectory(prefix="edgeship-prof-") as folder:
            sess = self._create(profile_dir=folder)
            try:
                sess.run(None, checked)
            finally:
                profile = Path(sess.end_profiling())
            events = json.loads(profile.read_text())
        per_node: dict[str, str] = {}
        for ev in events:
            args = ev.get("args", {})
            if ev.get("cat") == "Node" and "provider" in args:
                per_node[args.get("node_name") or ev["name"]] = args["provider"]
        counts = Counter(per_node.values())
        total = sum(counts.values())
        return NodeCoverage(nodes=total, by_device=dict(counts),
                            share_on_primary=(counts.get(self.info.device, 0) / total) if total else None)

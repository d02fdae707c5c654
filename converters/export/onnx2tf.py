"""ONNX -> TFLite with onnx2tf, run from its own virtual environment.

onnx2tf pins old numpy/onnx/onnxruntime/tensorflow that would break edgeship's environment, so
it lives in a venv that only ``edgeship tools install onnx2tf`` creates (under the user cache
dir, ``~/.cache/edgeship/tools/onnx2tf``); a conversion never installs anything.

Two offline traps are closed here: onnx2tf calls ``onnxsim`` by name (the venv's bin/ goes
first on PATH), and for image inputs it fetches a sample-image file from GitHub unless one is
in its working directory; edgeship writes that file itself (from ``data`` when given, else
seeded random inputs) and points every HTTP proxy variable at a closed port, so an attempt to
download fails instead of reaching the network.  int8 is calibrated on ``data`` only.

onnx2tf writes NHWC: 4-D inputs and outputs change layout, and the manifest and the parity
check both say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from edgeship.converters.export.base import (
    Exported,
    ExportOptions,
    image_layouts,
    require_calibration_data,
)
from edgeship.converters.export.source import Source
from edgeship.converters.export.tools import tool_env, tool_version
from edgeship.converters.parity import NCHW_TO_NHWC, NHWC_TO_NCHW, make_samples
from edgeship.errors import MissingBackendError, ModelError, UnsupportedError

SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # what onnx2tf looks for
OUTPUT_SUFFIX = {"fp32": "_float32.tflite", "fp16": "_float16.tflite",
                 "int8": "_full_integer_quant.tflite"}
NO_NETWORK = {k: "http://127.0.0.1:9" for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                                "https_proxy", "ALL_PROXY", "all_proxy")}


def onnx_to_tflite(source: Source, directory: Path, stem: str, options: ExportOptions,
                   data: Any = None) -> Exported:
    env = tool_env("onnx2tf")
    if env is None:
        raise MissingBackendError(
            "ONNX -> TFLite needs onnx2tf, which edgeship runs from its own environment, not "
            "installed yet",
            "run: edgeship tools install onnx2tf (once), or export from the torch model instead "
            "(litert-torch)",
        )
    require_calibration_data(options, data)
    assert source.path is not None
    work = directory / ".onnx2tf"
    work.mkdir()
    argv = [str(env / "bin" / "onnx2tf"), "-i", str(source.path.resolve()), "-o", str(work / "out"),
            "-n"]
    if any(not isinstance(s.shape[0], int) for s in source.inputs):
        argv += ["-b", "1"]  # a fixed batch, as the litert-torch path writes
    samples = _samples(source, data, options)
    _write_sample_file(work, source, samples)
    if options.precision == "int8":
        argv += ["-oiqt", "-qt", "per-channel", "-iqd", "int8", "-oqd", "int8"]
        for i, (spec, arr) in enumerate(zip(source.inputs, samples)):
            path = work / f"calib_{i}.npy"
            np.save(path, _to_nhwc(arr).astype(np.float32))
            argv += ["-cind", spec.name, str(path), "0.0", "1.0"]  # data is model-ready already
    elif options.precision == "fp16":
        pass  # onnx2tf writes the float16 flatbuffer next to the float32 one anyway
    run = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False,
                         env=_env(env), stdin=subprocess.DEVNULL, timeout=3600)
    produced = work / "out" / (source.path.stem + OUTPUT_SUFFIX[options.precision])
    if run.returncode != 0 or not produced.is_file():
        raise _error(run.stdout + run.stderr, source.path.name)
    path = directory / f"{stem}.tflite"
    shutil.copyfile(produced, path)
    shutil.rmtree(work, ignore_errors=True)
    in_shapes = [s.shape for s in source.inputs]
    out_ranks = _output_ranks(path)
    version = tool_version(env)
    return Exported(
        file=path.name,
        files=[path.name],
        tolerance=options.precision,
        converter=f"onnx2tf {version} (own venv {env})",
        input_layouts=image_layouts(in_shapes, "NHWC"),
        output_layouts=[("NHWC" if r == 4 else None) for r in out_ranks],
        input_perms=[NCHW_TO_NHWC if len(s) == 4 else None for s in in_shapes],
        output_perms=[NHWC_TO_NCHW if r == 4 else None for r in out_ranks],
        quantization=_quantization(options, samples, data) if options.precision != "fp32" else None,
        notes={"layout": "NHWC (onnx2tf transposes 4-D tensors)"},
    )


def _samples(source: Source, data: Any, options: ExportOptions) -> list[np.ndarray]:
    """Model-ready samples (reference layout) for calibration and onnx2tf's own check."""
    if data is not None:
        return make_samples(source.inputs, random=0, data=data,
                            max_real=options.calibration_samples).arrays
    return make_samples(source.inputs, random=20, seed=1).arrays


def _write_sample_file(work: Path, source: Source, samples: list[np.ndarray]) -> None:
    """The file onnx2tf would otherwise download, for models whose inputs are all RGB images."""
    if all(len(s.shape) == 4 and s.shape[1] == 3 for s in source.inputs):
        nhwc = _to_nhwc(samples[0])
        np.save(work / SAMPLE_FILE, np.resize(nhwc, (20, *nhwc.shape[1:])).astype(np.float32))


def _to_nhwc(arr: np.ndarray) -> np.ndarray:
    return arr.transpose(NCHW_TO_NHWC) if arr.ndim == 4 else arr


def _env(env: Path) -> dict[str, str]:
    return {**os.environ, **NO_NETWORK, "NO_PROXY": "", "no_proxy": "",
            "PATH": f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONNOUSERSITE": "1"}


def _output_ranks(path: Path) -> list[int]:
    from edgeship.runtime import load

    return [len(s.shape) for s in load(path).outputs]


def _quantization(options: ExportOptions, samples: list[np.ndarray], data: Any) -> dict[str, Any]:
    if options.precision == "fp16":
        return {"method": "fp16 weights", "tool": "onnx2tf", "weights": "float16",
                "activations": "float32", "io": "float32"}
    return {"method": "static", "tool": "onnx2tf (TFLite converter)",
            "weights": "int8 per-channel", "activations": "int8", "io": "int8",
            "calibration": {"source": str(data), "samples": int(len(samples[0]))}}


def _error(output: str, name: str) -> Exception:
    """onnx2tf names the ONNX op it could not convert as 'onnx_op_type: X'."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", output)  # drop colour codes
    ops = re.findall(r"onnx_op_type:\s*([\w.]+)", text)
    errors = [line.strip() for line in text.splitlines() if "ERROR" in line or "Error" in line]
    if ops:
        return UnsupportedError(
            f"onnx2tf cannot convert the ONNX operator '{ops[-1]}' of '{name}'"
            + (f" ({errors[-1][:160]})" if errors else ""),
            "replace that operation, or export the torch model with litert-torch instead",
        )
    return ModelError(f"onnx2tf failed on '{name}': {(errors or text.splitlines() or ['?'])[-1][:240]}",
                      "check the ONNX model runs with onnxruntime; onnx2tf's full log is printed "
                      "by running it by hand from ~/.cache/edgeship/tools/onnx2tf/bin")

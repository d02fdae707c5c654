"""ONNX -> TFLite with onnx2tf, run from its own virtual environment.

onnx2tf pins old numpy/onnx/onnxruntime/tensorflow that would break edgeship's environment, so
it lives in a venv that only ``edgeship tools install onnx2tf`` creates (under the user cache
dir, ``~/.cache/edgeship/tools/onnx2tf``); a conversion never installs anything.

Two offline traps are closed here: onnx2tf calls ``onnxsim`` by name (the venv's bin/ goes
first on PATH), and for image inputs it fetches a sample-image file from GitHub unless one is
in its working directory; edgeship writes that file itself (from ``data`` when given, else
seeded random inputs) and points every HTTP proxy variable at a closed port, so an attempt to
download fails instead of reaching the network.

One onnx2tf run per ONNX file: it writes the TensorFlow model (a saved_model) and its float32
and float16 TFLite; full int8 is TensorFlow's TFLite converter on that saved_model, calibrated
on ``data`` only, with the settings onnx2tf's own ``-oiqt`` uses (int8 weights per channel,
int8 activations, inputs and outputs).  ``-oiqt`` would write four calibrated variants to keep
one (EfficientNet-Lite0: 91 s against 50 s + 8 s here).  Inside ``shared_runs`` the run is kept
and shared by every export of the same file (compress's fp32, fp16 and int8 TFLite candidates).

onnx2tf writes NHWC: 4-D inputs and outputs change layout.  ``input_perms``/``output_perms``
say how; the manifest records them per tensor (``source_perm``), so ``edgeship.runtime.load``
(and export's parity check, through the same mapping) shows the source's names and NCHW layout
and one feed dict runs the ONNX and the TFLite export alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.converters.export.base import (
    Exported,
    ExportOptions,
    require_calibration_data,
)
from edgeship.converters.export.source import Source
from edgeship.converters.export.tools import tool_env, tool_version
from edgeship.converters.parity import NCHW_TO_NHWC, NHWC_TO_NCHW, Perm, make_samples
from edgeship.core.errors import MissingBackendError, UnsupportedError
from edgeship.runtime.formats import FORMATS

SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"  # what onnx2tf looks for
STATIC = FORMATS["onnx"].filename("model")  # the static copy onnx2tf converts
# what one onnx2tf run writes, per precision (int8 is converted from its saved_model here)
OUTPUT = {p: FORMATS["tflite"].filename(f"model{tag}") for p, tag in
          {"fp32": "_float32", "fp16": "_float16"}.items()}
INT8 = FORMATS["tflite"].filename("model_full_integer_quant")
_RUNS: ContextVar[Optional[Path]] = ContextVar("edgeship_onnx2tf_runs", default=None)
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
    # Everything onnx2tf touches lives here, absolute (it runs with this as its cwd), and goes:
    # it rewrites its input in place (onnxsim), so it only ever sees a private copy.
    work = (directory / ".onnx2tf").resolve()
    work.mkdir()
    try:
        return _convert(env, source, directory.resolve(), stem, options, data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def shared_runs(directory: Path) -> Iterator[None]:
    """Within the block, onnx2tf converts each ONNX file (with its fixed input shapes) once:
    later exports of it, at any precision, start from what that run wrote, kept under
    ``directory`` (the caller's scratch space, which it removes)."""
    token = _RUNS.set(directory.resolve())  # onnx2tf runs with its own working directory
    try:
        yield
    finally:
        _RUNS.reset(token)


def _convert(env: Path, source: Source, directory: Path, stem: str, options: ExportOptions,
             data: Any, work: Path) -> Exported:
    samples = _samples(source, data, options)
    version = tool_version(env)
    run = _onnx2tf_run(env, version, source, samples, work)
    produced = (_full_int8(env, run, source, samples, work) if options.precision == "int8"
                else run / OUTPUT[options.precision])
    path = directory / FORMATS["tflite"].filename(stem)
    renamed = _rename_tensors(env, produced, path, source, work)
    in_ranks = [len(s.shape) for s in source.inputs]
    out_perms = _output_perms(path, run / STATIC, source.output_names if renamed else None)
    return Exported(
        file=path.name,
        files=[path.name],
        tolerance=options.precision,
        converter=f"onnx2tf {version} (own venv {env})",
        input_layouts=[("NHWC" if r == 4 else None) for r in in_ranks],
        output_layouts=[("NHWC" if p == NHWC_TO_NCHW else None) for p in out_perms],
        input_perms=[NCHW_TO_NHWC if r == 4 else None for r in in_ranks],
        output_perms=out_perms,
        positional_names=False,  # onnx2tf sorts tensors: names pair them (renamed above) or nothing
        quantization=_quantization(options, samples, data) if options.precision != "fp32" else None,
        notes={"layout": "NHWC (onnx2tf transposes 4-D tensors)",
               "tensor_names": "the ONNX model's" if renamed else "onnx2tf's own"},
    )


def _onnx2tf_run(env: Path, version: str, source: Source, samples: list[np.ndarray],
                 work: Path) -> Path:
    """The directory of onnx2tf's run on the source: its saved_model, float32 and float16
    TFLite and the static ONNX copy it converted; the shared one when ``shared_runs`` has it."""
    from edgeship.converters.onnx_shapes import static_copy

    assert source.path is not None
    store = _RUNS.get()
    key = hashlib.sha256(json.dumps(
        [source.sha256, sorted((k, list(v)) for k, v in (source.input_shapes or {}).items()),
         version]).encode()).hexdigest()[:32]
    if store is not None and (store / key).is_dir():
        return store / key
    model = static_copy(source.path, work / STATIC, source.input_shapes, scope_names=True)
    (work / "tmp").mkdir(exist_ok=True)
    _write_sample_file(work, source, samples)
    out = work / "out"
    argv = [str(env / "bin" / "onnx2tf"), "-i", str(model), "-o", str(out), "-n",
            "-osd"]  # signature defs carry the ONNX tensor names (renamed onto the tensors below)
    run = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False,
                         env=_env(env, work / "tmp"), stdin=subprocess.DEVNULL, timeout=3600)
    if run.returncode != 0 or not (out / OUTPUT["fp32"]).is_file():
        raise _error(run.stdout + run.stderr, source.path.name)
    model.replace(out / STATIC)  # onnx2tf simplified it in place: the graph it converted
    if store is None:
        return out
    store.mkdir(parents=True, exist_ok=True)
    claimed = store / f".{key}.{os.getpid()}"
    shutil.move(str(out), str(claimed))
    try:
        claimed.rename(store / key)  # atomic: a concurrent build of the same file keeps its own
    except OSError:
        shutil.rmtree(claimed, ignore_errors=True)
    return store / key


# Run in onnx2tf's venv: what onnx2tf's -oiqt does for its full-integer file, once.
_INT8 = """
import json, sys
import numpy as np
import tensorflow as tf
saved, dst, feeds, keys, per_sample = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
spec = tf.saved_model.load(saved).signatures["serving_default"].structured_input_signature[1]
arrays = {}
for key, tensor in spec.items():
    name = keys.get(key) or (next(iter(feeds)) if len(spec) == len(feeds) == 1 else None)
    if name is None:
        sys.exit(f"ERROR: no calibration data for the TensorFlow model's input '{key}'")
    arrays[key] = np.load(feeds[name]).astype(tensor.dtype.as_numpy_dtype)
count = min(len(a) for a in arrays.values())

def representative():
    for i in range(count):
        yield {k: a[i] if per_sample else a[i:i + 1] for k, a in arrays.items()}

converter = tf.lite.TFLiteConverter.from_saved_model(saved)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                       tf.lite.OpsSet.SELECT_TF_OPS]
converter.representative_dataset = representative
converter.inference_input_type = tf.int8
converter.inference_output_type = tf.int8
with open(dst, "wb") as f:
    f.write(converter.convert())
"""


def _full_int8(env: Path, run: Path, source: Source, samples: list[np.ndarray],
               work: Path) -> Path:
    """Full-integer TFLite from the run's saved_model, calibrated on ``samples``."""
    from edgeship.converters.parity import batchable
    from edgeship.runtime.inputs import resolve_shapes

    assert source.path is not None
    feeds = {}
    for i, (spec, arr) in enumerate(zip(source.inputs, samples)):
        feeds[spec.name] = str(work / f"calib_{i}.npy")
        np.save(feeds[spec.name], _to_nhwc(arr))  # the saved_model's layout
    per_sample = not batchable(source.inputs, resolve_shapes(source.inputs, source.input_shapes
                                                             or None))
    produced = work / INT8
    (work / "tmp").mkdir(exist_ok=True)
    done = subprocess.run(
        [str(env / "bin" / "python"), "-c", _INT8, str(run), str(produced), json.dumps(feeds),
         json.dumps(_signature_keys([s.name for s in source.inputs])), json.dumps(per_sample)],
        cwd=work, capture_output=True, text=True, check=False, env=_env(env, work / "tmp"),
        stdin=subprocess.DEVNULL, timeout=3600)
    if done.returncode != 0 or not produced.is_file():
        raise _error(done.stdout + done.stderr, source.path.name,
                     "TensorFlow's TFLite converter could not quantize")
    return produced


def _signature_keys(names: list[str]) -> dict[str, str]:
    """onnx2tf's signature keys for ONNX tensor names (characters TF rejects become '_')."""
    return ({re.sub(r"[^A-Za-z0-9_]", "_", n): n for n in names}
            | {re.sub(r"[^A-Za-z0-9_.\-]", "_", n): n for n in names} | {n: n for n in names})


# Run in onnx2tf's venv (TensorFlow's flatbuffer tools): the signature def maps each ONNX input
# and output name to a tensor; give those tensors the ONNX names, so the TFLite model takes the
# same feed dict as its source and outputs come back under the same names.
_RENAME = """
import json, sys
from tensorflow.lite.tools import flatbuffer_utils as fb
src, dst, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = fb.read_model(src)
graph = model.subgraphs[0]
done = 0
for sig in model.signatureDefs or []:
    for item in list(sig.inputs or []) + list(sig.outputs or []):
        key = item.name.decode() if isinstance(item.name, bytes) else item.name
        name = names.get(key)
        if name is not None and item.tensorIndex is not None:
            graph.tensors[item.tensorIndex].name = name.encode()
            done += 1
single = json.loads(sys.argv[4])  # [input, output] of a one-in, one-out source, else null
if done < len(set(names.values())) and single and len(graph.inputs) == 1 \
        and len(graph.outputs) == 1:
    # one tensor each way: position is unambiguous when the signature keys are onnx2tf's own
    graph.tensors[graph.inputs[0]].name = single[0].encode()
    graph.tensors[graph.outputs[0]].name = single[1].encode()
    done = len(set(names.values()))
fb.write_model(model, dst)
print(done)
"""


def _rename_tensors(env: Path, produced: Path, path: Path, source: Source, work: Path) -> bool:
    """Copy ``produced`` to ``path`` with the source's tensor names; False when onnx2tf's
    signature did not name them all (the file is then copied as onnx2tf wrote it)."""
    wanted = [s.name for s in source.inputs] + list(source.output_names)
    keys = _signature_keys(wanted)
    single = ([source.inputs[0].name, source.output_names[0]]
              if len(source.inputs) == 1 and len(source.output_names) == 1 else None)
    done = subprocess.run([str(env / "bin" / "python"), "-c", _RENAME, str(produced), str(path),
                           json.dumps(keys), json.dumps(single)], cwd=work, capture_output=True, text=True,
                          check=False, env=_env(env, work / "tmp"), stdin=subprocess.DEVNULL,
                          timeout=600)
    count = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if not count or int(count[0]) != len(wanted):
        shutil.copyfile(produced, path)
        return False
    return True


def _samples(source: Source, data: Any, options: ExportOptions) -> list[np.ndarray]:
    """Model-ready samples (reference layout) for calibration and onnx2tf's own check."""
    if data is not None:
        return make_samples(source.inputs, random=0, data=data,
                            max_real=options.calibration_samples).arrays
    return make_samples(source.inputs, random=20, seed=1, fixed=source.input_shapes or None,
                        fills=source.input_fills or None).arrays


def _write_sample_file(work: Path, source: Source, samples: list[np.ndarray]) -> None:
    """The file onnx2tf would otherwise download, for models whose inputs are all RGB images."""
    if all(len(s.shape) == 4 and s.shape[1] == 3 for s in source.inputs):
        nhwc = _to_nhwc(samples[0])
        np.save(work / SAMPLE_FILE, np.resize(nhwc, (20, *nhwc.shape[1:])).astype(np.float32))


def _to_nhwc(arr: np.ndarray) -> np.ndarray:
    return arr.transpose(NCHW_TO_NHWC) if arr.ndim == 4 else arr


def _env(env: Path, tmp: Path) -> dict[str, str]:
    # TMPDIR inside the private work dir: TensorFlow's scratch files go when it goes
    return {**os.environ, **NO_NETWORK, "NO_PROXY": "", "no_proxy": "", "TMPDIR": str(tmp),
            "PATH": f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONNOUSERSITE": "1"}


def _output_perms(path: Path, model: Path, names: Optional[list[str]]) -> list[Perm]:
    """For each output (the source's order when the names match, else the file's): the
    transpose that turns the TFLite output into the ONNX one.  onnx2tf usually writes 4-D
    outputs NHWC, but not always (audio front ends come out in other orders): the perm is read
    off the shapes of the static ONNX copy, not assumed."""
    import itertools

    import onnx
    from edgeship.runtime import load

    graph = onnx.load(str(model), load_external_data=False).graph
    want = {o.name: tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in graph.output}
    outputs = load(path, layout="model").outputs  # the file's own tensors
    if names is not None:
        by_name = {s.name: s for s in outputs}
        outputs = [by_name[n] for n in names]
        targets = [want.get(n) for n in names]
    else:
        targets = [want.get(o.name) for o in graph.output]
    perms: list[Perm] = []
    for spec, target in zip(outputs, [*targets, *[None] * len(outputs)]):
        got = tuple(spec.shape)
        if target is None or got == target or len(got) != len(target) or 0 in target:
            perms.append(NHWC_TO_NCHW if target is None and len(got) == 4 else None)
            continue
        if len(got) == 4 and tuple(got[i] for i in NHWC_TO_NCHW) == target:
            perms.append(NHWC_TO_NCHW)
            continue
        # size-1 axes carry no order, so any perm that places the other sizes right is the one
        perms.append(next((p for p in itertools.permutations(range(len(got)))
                           if tuple(got[i] for i in p) == target), None))
    return perms


def _quantization(options: ExportOptions, samples: list[np.ndarray], data: Any) -> dict[str, Any]:
    if options.precision == "fp16":
        return {"method": "fp16 weights", "tool": "onnx2tf", "weights": "float16",
                "activations": "float32", "io": "float32"}
    return {"method": "static", "tool": "TFLite converter on onnx2tf's TensorFlow model",
            "weights": "int8 per-channel", "activations": "int8", "io": "int8",
            "calibration": {"source": str(data), "samples": int(len(samples[0]))}}


_ADVICE = ("The trace log is below", "Read this and deal with it", "Alternatively,",
           "If the input OP", "Also, for models", "input_onnx_file_path")


def _error(output: str, name: str, failed: str = "onnx2tf could not convert") -> Exception:
    """The converter's own error: the exception it raised (with the line that explains a Keras
    layer failure), and the ONNX node it was converting; never a TensorFlow log line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", output)  # drop colour codes
    lines = [line.strip() for line in text.splitlines()]
    node = [n.removeprefix("wa/") for n in re.findall(r"onnx_op_name:\s*(\S+)", text)]
    op = re.findall(r"onnx_op_type:\s*([\w.]+)", text)
    where = (f" at {op[-1] + ' ' if op else ''}node '{node[-1]}'" if node else
             f" at an ONNX {op[-1]}" if op else "")
    exc_at = [i for i, line in enumerate(lines)
              if re.match(r"^[\w.]*(Error|Exception)(: |$)", line)]
    if exc_at:
        i = exc_at[-1]
        detail = lines[i]
        if "Exception encountered when calling layer" in detail:  # Keras: the cause follows
            detail = next((f"{detail.split(':')[0]}: {line}" for line in lines[i + 1:i + 6]
                           if line), detail)
    else:
        errors = [line.removeprefix("ERROR:").strip() for line in lines
                  if line.startswith("ERROR:") and not any(a in line for a in _ADVICE)]
        detail = errors[-1] if errors else "no error message (exit without a result)"
    detail = re.sub(r"for '\{\{node [^']*'", "", detail)  # TF's graph-node dump
    return UnsupportedError(
        f"{failed} '{name}'{where}: {' '.join(detail.split())[:300]}",
        "export the torch model with litert-torch instead, or to ONNX/OpenVINO; fix dynamic "
        "dimensions with --input-shape",
    )

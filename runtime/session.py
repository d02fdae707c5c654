"""The backend-neutral session every model runs through: ``Session.run(dict) -> dict``."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
from edgeship.runtime.errors import ConfigError, EdgeshipError, ModelError
from edgeship.runtime.results import BackendInfo as BackendInfo  # its home before results.py
from edgeship.runtime.results import NodeCoverage

if TYPE_CHECKING:
    from edgeship.runtime.iomap import IOMap

Dim = Optional[Union[int, str]]  # None or a symbolic name for a dynamic dimension


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, shape (dynamic dims are None or a name), numpy dtype.

    ``dtype`` is what callers pass and get back.  A quantized TFLite tensor is still presented
    as float32; ``quantization`` holds the (scale, zero_point) the session maps it with.
    """

    name: str
    shape: tuple[Dim, ...]
    dtype: str
    quantization: Optional[tuple[float, int]] = None
    storage_dtype: Optional[str] = None  # the dtype inside the model when it differs

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Session:
    """A loaded model.  Subclasses implement one backend each.

    Example:
        >>> from edgeship.runtime import load
        >>> sess = load("model.onnx")                              # doctest: +SKIP
        >>> out = sess.run({sess.inputs[0].name: x})               # doctest: +SKIP
    """

    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    info: BackendInfo
    manifest: Optional[dict[str, Any]] = None  # X.ext.manifest.json beside the model, if any
    # set when the tensors shown are the source's, mapped from the model file's (iomap.py)
    io_map: Optional[IOMap] = None

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; returns a new dict of output name -> array.

        A backend's own error (an index out of range, an unsupported sample rate) is raised as
        a ``ModelError`` carrying the backend's message.
        """
        checked = self.check_feeds(feeds)
        try:
            return self._run(checked)
        except MemoryError:
            raise
        except Exception as exc:
            raise inference_failed(exc, self.path.name, self.inputs, [], self.info.backend) from None

    def preprocess(self, images: Any) -> np.ndarray:
        """Raw image(s) (arrays or file paths) -> the model-ready batch, as the manifest says."""
        from edgeship.runtime.preprocess import preprocessing_for_session

        return preprocessing_for_session(self).batch(images)

    def run_raw(self, images: Any) -> dict[str, np.ndarray]:
        """Preprocess raw image(s) exactly as at evaluation time, then run the model."""
        return self.run({self.inputs[0].name: self.preprocess(images)})

    def prepare(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        """Bind inputs once and return a zero-argument call that only runs inference.

        The measurement agent times this call, as native tools (benchmark_app,
        onnxruntime_perf_test) do, so the harness adds no copying of its own per run.
        """
        checked = self.check_feeds(feeds)
        return lambda: self._run(checked)

    def node_coverage(self, feeds: Optional[Mapping[str, np.ndarray]] = None) -> Optional[NodeCoverage]:
        """Which device/provider ran how many nodes (for one run on ``feeds``, the measured
        inputs); None where the backend cannot tell."""
        return None

    def tensor_dtypes(self) -> Optional[dict[str, int]]:
        """Elements per dtype over the model's tensors, where the backend lists them (TFLite)."""
        return None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def check_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate names, dtypes and fixed dimensions; returns contiguous arrays."""
        expected = {spec.name: spec for spec in self.inputs}
        missing = [n for n in expected if n not in feeds]
        unknown = [n for n in feeds if n not in expected]
        if missing or unknown:
            raise ConfigError(
                f"inputs do not match the model: missing {missing}, unknown {unknown}",
                f"pass exactly these inputs: {list(expected)}",
            )
        checked = {}
        for name, spec in expected.items():
            arr = np.asarray(feeds[name])
            want = np.dtype(spec.dtype)
            if arr.dtype != want:
                if not np.can_cast(arr.dtype, want, casting="same_kind"):
                    raise ConfigError(
                        f"input '{name}' has dtype {arr.dtype}, the model takes {want}",
                        f"convert it with .astype('{want}')",
                    )
                arr = arr.astype(want)
            if not shape_fits(spec.shape, arr.shape):
                raise ConfigError(
                    f"input '{name}' has shape {tuple(arr.shape)}, the model takes "
                    f"{format_shape(spec.shape)}",
                    "reshape the data to match (dynamic dimensions are shown as '?')",
                )
            # (np.ascontiguousarray would turn a rank-0 sample rate into shape (1,))
            checked[name] = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
        return checked


def shape_fits(model_shape: tuple[Dim, ...], shape: tuple[int, ...]) -> bool:
    """Same rank, and every fixed dimension of the model's shape equal; dynamic ones take any."""
    return len(shape) == len(model_shape) and all(
        not (isinstance(d, int) and d >= 0) or d == s for d, s in zip(model_shape, shape)
    )


def format_shape(shape: tuple[Dim, ...]) -> str:
    return "(" + ", ".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in shape) + ")"


_ORT_WRAPPER = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_ORT_NODE = re.compile(r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)' "
                       r"Status Message: ")


def backend_message(exc: BaseException) -> str:
    """A backend's error on one line, without wrappers: onnxruntime nests a failing node's
    message in one "Non-zero status ... If node" layer per subgraph; keep the innermost."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = _ORT_WRAPPER.sub("", text)
    nodes = _ORT_NODE.findall(text)
    if nodes:
        op, name = nodes[-1]
        text = f"{op} node '{name}': {_ORT_NODE.split(text)[-1]}"
    if len(text) > 400:  # backends put the useful part (shapes, the op) at the end
        text = f"{text[:120]} ... {text[-260:]}"
    return text


def inference_failed(exc: BaseException, model: str, specs: list[TensorSpec],
                     made_up: list[str], backend: Optional[str] = None) -> EdgeshipError:
    """The error for a backend that rejected the inputs, naming the flags that give real ones.

    ``made_up`` are the inputs that got default random data; an index out of range is blamed
    on the integer ones among them (token ids beyond the vocabulary, a sample rate of 42).
    """
    if isinstance(exc, EdgeshipError):
        return exc
    text = backend_message(exc)
    kinds = {s.name: np.dtype(s.dtype).kind for s in specs}
    ints = [n for n in made_up if kinds.get(n) in ("i", "u", "b")]
    suspects = ints if ints and re.search(r"out of|bound|range|index|idx|invalid|unsupported",
                                          text, re.IGNORECASE) else (ints or made_up)
    if suspects:
        example = _example_fill(suspects[0], kinds.get(suspects[0], "f"))
        fix = (f"random data cannot drive {', '.join(repr(n) for n in suspects)}: give real "
               f"values with --input-value NAME=V or --input-range NAME=LOW:HIGH (e.g. {example}), "
               "or samples with --data FILE.npz (one array per input name)")
    else:
        fix = "check the input values and shapes (--data, --input-value, --input-shape)"
    return ModelError(f"{backend or 'the backend'} failed running '{model}': {text}", fix)


def _example_fill(name: str, kind: str) -> str:
    if kind in "iub":
        return f"--input-range {name}=0:1" if kind == "b" else f"--input-value {name}=0"
    return f"--input-range {name}=-1:1"


_NOISE = re.compile(r"^(Exception from \S+:\d+:?|Check '.*' failed at \S+)$")


def first_line(exc: BaseException) -> str:
    """The first meaningful line of a backend's (often multi-line) exception text.

    OpenVINO prefixes its messages with source locations ("Exception from src/...:84:"); those
    say nothing to a user, so they are skipped.
    """
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not _NOISE.match(line):
            return line[:300]
    return type(exc).__name__


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Send what C++ libraries write to fd 2 into a buffer while loading a model.

    Backends log from native code (OpenVINO probing frontends, LiteRT's delegate notices), which
    would break the CLI's one-line errors.  The yielded list receives the captured lines.
    """
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as buf:
        sys.stderr.flush()
        os.dup2(buf.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            lines.extend(ln for ln in buf.read().decode(errors="replace").splitlines() if ln.strip())

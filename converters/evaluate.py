"""Evaluation helpers every compression step uses: accuracy, agreement, cost, size.

- ``predict`` runs any model file edgeship loads (ONNX, OpenVINO IR, TFLite) over a whole array
  in batches, looping sample by sample when the model's batch dimension is fixed.
- ``accuracy`` and ``agreement`` turn predictions into figures: top-1 accuracy on labelled data,
  and top-1 agreement / cosine / max abs diff against the original model's outputs.
- ``count_onnx`` counts parameters and multiply-accumulates from the ONNX graph itself (after
  shape inference), so every format derived from that graph is costed the same way.
- ``model_size`` is what ships: every file of the model, raw and deflate-compressed (the second
  is where unstructured sparsity pays off).

Example:
    >>> from edgeship.converters.evaluate import accuracy, count_onnx
    >>> accuracy("digits.onnx", x_test, y_test).accuracy          # doctest: +SKIP
    0.975
    >>> count_onnx("digits.onnx").macs                            # doctest: +SKIP
    23680
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from edgeship.converters.parity import Agreement, agreement_of
from edgeship.core.data import SampleSet
from edgeship.core.errors import ConfigError, ModelError
from edgeship.runtime.formats import FORMATS, files_of, is_format

ModelLike = Union[str, Path, Any]  # a model path, or an already-loaded edgeship Session
Inputs = Union[np.ndarray, Mapping[str, np.ndarray]]


DataLike = Union[str, Path, np.ndarray, tuple, SampleSet, Any]  # type: ignore[type-arg]


def load_labelled(data: DataLike) -> SampleSet:
    """Samples and labels as arrays, from anything ``edgeship.Dataset`` reads (an ``.npz`` with
    ``x`` and optional ``y``, an image folder, a Dataset), an array, or a pair (x, y).

    Example:
        >>> load_labelled("digits_test.npz").array.shape        # doctest: +SKIP
        (360, 1, 8, 8)
    """
    if isinstance(data, SampleSet):
        _ = data.array  # one input only: raises for multi-input samples
        return data
    source = "arrays"
    if isinstance(data, tuple):
        x, y = data[0], (data[1] if len(data) > 1 else None)
    elif isinstance(data, np.ndarray):
        x, y = data, None
    else:
        from edgeship.core.data import Dataset

        dataset = data if isinstance(data, Dataset) else Dataset(data)
        feeds, y = dataset.arrays()
        if len(feeds) != 1:
            raise ConfigError(f"'{dataset.source}' holds {len(feeds)} input arrays {sorted(feeds)}",
                              "pruning and distillation take single-input data: store it as x")
        x = next(iter(feeds.values()))
        source = str(dataset.source)
    x = np.asarray(x)
    if x.dtype.kind == "f":
        x = x.astype(np.float32, copy=False)
    if len(x) == 0:
        raise ConfigError("the data has no samples", "pass at least one sample")
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if y.dtype.kind not in "iu" or len(y) != len(x):
            raise ConfigError(
                f"labels must be {len(x)} integers, one per sample; got {len(y)} of {y.dtype}",
                "save class indices as y",
            )
        y = y.astype(np.int64)
    return SampleSet([x], y, source)


@dataclass(frozen=True)
class Accuracy:
    """Top-1 accuracy on labelled data."""

    accuracy: float
    correct: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.accuracy


@dataclass(frozen=True)
class GraphCost:
    """Parameters and multiply-accumulates of one ONNX graph, for one sample (batch 1).

    ``params`` counts the elements of every stored weight tensor (initializers and Constant
    nodes) except integer index/shape tensors (int64, bool); ``nonzero_params`` the non-zero ones.
    ``uncounted`` names the compute nodes whose cost is not in ``macs`` (unknown shapes or an
    op this counter does not model), so a low figure is never silently low.
    """

    params: int
    nonzero_params: int
    macs: Optional[int]  # None: unknown, an input dimension it depends on was not given
    macs_by_op: dict[str, int] = field(default_factory=dict)
    uncounted: list[str] = field(default_factory=list)

    @property
    def flops(self) -> Optional[int]:
        return None if self.macs is None else 2 * self.macs

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_params / self.params if self.params else 0.0


@dataclass(frozen=True)
class ModelSize:
    """Bytes on disk over all of a model's files, and after deflate (zip) compression."""

    bytes: int
    compressed_bytes: int


@dataclass(frozen=True)
class ModelStats:
    """The figures a compression report shows for one model file."""

    path: str
    params: Optional[int]  # counted from the graph: None for formats other than ONNX
    nonzero_params: Optional[int]
    macs: Optional[int]
    size_bytes: int
    compressed_bytes: int
    accuracy: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# predictions


def _session(model: ModelLike, backend: Optional[str], threads: Optional[int]) -> Any:
    from edgeship.runtime import Session, load

    if isinstance(model, Session):
        return model
    return load(Path(model), backend=backend, threads=threads)


def _as_feeds(session: Any, x: Inputs) -> dict[str, np.ndarray]:
    if isinstance(x, Mapping):
        feeds = {name: np.asarray(v) for name, v in x.items()}
    else:
        if len(session.inputs) != 1:
            raise ConfigError(
                f"the model takes {len(session.inputs)} inputs, got one array",
                f"pass a dict with arrays for {[s.name for s in session.inputs]}",
            )
        feeds = {session.inputs[0].name: np.asarray(x)}
    counts = {len(v) for v in feeds.values()}
    if len(counts) != 1:
        raise ConfigError("the input arrays have different sample counts", "pass aligned arrays")
    return feeds


def _fixed_batch(session: Any) -> Optional[int]:
    """The model's batch size when its first dimension is fixed, else None (dynamic)."""
    sizes = {s.shape[0] for s in session.inputs if s.shape and isinstance(s.shape[0], int)
             and s.shape[0] > 0}
    return sizes.pop() if len(sizes) == 1 else None


def predict(
    model: ModelLike,
    x: Inputs,
    *,
    output: Optional[str] = None,
    batch_size: int = 64,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Run ``model`` on every sample of ``x`` and return one output, stacked over samples.

    A model with a fixed batch dimension (often 1 for TFLite and edge exports) is run chunk by
    chunk of that size; a short last chunk is padded with zeros and the padding dropped.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}", "pass a positive size")
    session = _session(model, backend, threads)
    feeds = _as_feeds(session, x)
    names = [s.name for s in session.outputs]
    name = output or names[0]
    if name not in names:
        raise ConfigError(f"the model has no output '{name}'", f"use one of {names}")
    total = len(next(iter(feeds.values())))
    if total == 0:
        raise ConfigError("no samples to evaluate", "pass at least one sample")
    fixed = _fixed_batch(session)
    step = fixed or batch_size
    chunks = []
    for start in range(0, total, step):
        batch = {k: v[start : start + step] for k, v in feeds.items()}
        n = len(next(iter(batch.values())))
        if fixed and n < fixed:
            batch = {k: np.concatenate([v, np.zeros((fixed - n, *v.shape[1:]), v.dtype)])
                     for k, v in batch.items()}
        chunks.append(session.run(batch)[name][:n])
    return np.concatenate(chunks)


def top1(outputs: np.ndarray) -> np.ndarray:
    """Predicted class per sample: argmax over the last axis of (N, ..., classes) outputs."""
    return outputs.reshape(len(outputs), -1).argmax(1) if outputs.ndim != 2 else outputs.argmax(1)


def accuracy_of(outputs: np.ndarray, labels: np.ndarray) -> Accuracy:
    """Top-1 accuracy of already-computed outputs against integer labels."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(outputs):
        raise ConfigError(
            f"{len(labels)} labels for {len(outputs)} samples", "pass one label per sample"
        )
    correct = int((top1(outputs) == labels).sum())
    return Accuracy(correct / len(labels), correct, len(labels))


def accuracy(model: ModelLike, x: Inputs, y: np.ndarray, **kwargs: Any) -> Accuracy:
    """Top-1 accuracy of ``model`` on labelled data; ``kwargs`` go to :func:`predict`."""
    return accuracy_of(predict(model, x, **kwargs), y)


def agreement(original: ModelLike, candidate: ModelLike, x: Inputs, **kwargs: Any) -> Agreement:
    """Top-1 agreement, cosine and max abs diff of ``candidate`` against ``original``."""
    return agreement_of(predict(original, x, **kwargs), predict(candidate, x, **kwargs))


# ---------------------------------------------------------------------------------------------
# cost from the ONNX graph

# op -> (index of the data input, index of the weight input)
_CONV_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "Gemm": (0, 1)}
# compute-heavy ops this counter does not model: reported in GraphCost.uncounted
_UNMODELLED = {"Einsum", "LSTM", "GRU", "RNN", "Attention", "MultiHeadAttention",
               "If", "Loop", "Scan"}  # control flow: the subgraphs inside are not counted
_INDEX_DTYPES = {7, 9}  # TensorProto.INT64, BOOL: shapes, axes, masks, not weights


def _load_onnx(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise ModelError(f"model file '{path}' does not exist", "check the path")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError... for bad files
        raise ModelError(
            f"'{path.name}' is not a readable ONNX model ({type(exc).__name__})",
            "re-export the model",
        ) from None


def _fix_input_dims(graph: Any, input_shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Give every dynamic input dimension a size: the user's, or 1 for the batch axis.
    Returns the dynamic dimensions nobody sized (their MACs are unknown)."""
    unsized = []
    weights = {t.name for t in graph.initializer}
    bound = {d.dim_param: int(size) for inp in graph.input if inp.name in input_shapes
             for d, size in zip(inp.type.tensor_type.shape.dim, input_shapes[inp.name])
             if d.dim_param and d.dim_param != "?"}  # 'sequence' sized once sizes every input
    for inp in graph.input:
        if inp.name in weights:
            continue
        dims = inp.type.tensor_type.shape.dim
        fixed = input_shapes.get(inp.name)
        if fixed is not None and len(fixed) != len(dims):
            raise ConfigError(
                f"input shape for '{inp.name}' has {len(fixed)} dimensions, the model "
                f"{len(dims)}", "give every dimension",
            )
        for i, dim in enumerate(dims):
            if fixed is not None:
                dim.dim_value = int(fixed[i])
            elif dim.dim_param in bound:
                dim.dim_value = bound[dim.dim_param]
            elif not dim.HasField("dim_value") or dim.dim_value <= 0:
                if i != 0:
                    unsized.append(f"input '{inp.name}' dimension {i} (give it with --input-shape)")
                    continue
                dim.dim_value = 1
    return unsized


def _weights(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    tensors = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    return {
        name: numpy_helper.to_array(t) for name, t in tensors.items()
        if t.data_type not in _INDEX_DTYPES
    }


def _shapes(model: Any) -> dict[str, tuple[int, ...]]:
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model, data_prop=True)
    g = inferred.graph
    shapes: dict[str, tuple[int, ...]] = {
        t.name: tuple(int(d) for d in t.dims) for t in g.initializer
    }
    for vi in [*g.input, *g.value_info, *g.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        if all(d >= 0 for d in dims):
            shapes[vi.name] = dims
    return shapes


def _node_macs(node: Any, shapes: Mapping[str, tuple[int, ...]]) -> Optional[int]:
    """MACs of one node, or None when a shape it needs is unknown."""

    def shape(index: int) -> Optional[tuple[int, ...]]:
        return shapes.get(node.input[index]) if index < len(node.input) else None

    out = shapes.get(node.output[0])
    op = node.op_type
    if op in _CONV_OPS:
        w = shape(_CONV_OPS[op][1])
        return None if out is None or w is None else int(np.prod(out)) * int(np.prod(w[1:]))
    if op == "ConvTranspose":  # every input element is scattered through Cout/g x kernel
        x, w = shape(0), shape(1)
        return None if x is None or w is None else int(np.prod(x)) * int(np.prod(w[1:]))
    if op in _MATMUL_OPS:
        a = shape(_MATMUL_OPS[op][0])
        if out is None or a is None:
            return None
        trans_a = op == "Gemm" and any(at.name == "transA" and at.i for at in node.attribute)
        k = a[0] if trans_a or len(a) == 1 else a[-1]
        return int(np.prod(out)) * int(k)
    return 0


def _count_macs(proto: Any) -> tuple[dict[str, int], list[str]]:
    shapes = _shapes(proto)
    macs_by_op: dict[str, int] = {}
    uncounted = []
    for node in proto.graph.node:
        if node.op_type in _UNMODELLED:
            uncounted.append(f"{node.name or node.output[0]} ({node.op_type})")
            continue
        macs = _node_macs(node, shapes)
        if macs is None:
            uncounted.append(f"{node.name or node.output[0]} ({node.op_type}: shape unknown)")
        elif macs:
            macs_by_op[node.op_type] = macs_by_op.get(node.op_type, 0) + macs
    return macs_by_op, uncounted


def _constant_folded(proto: Any) -> Any:
    """The graph after onnxruntime's basic optimisations (constant folding; Conv+BN folds keep
    each Conv's MACs)."""
    import tempfile

    import onnx
    from edgeship.runtime.backends import import_backend

    ort = import_backend("onnxruntime")
    with tempfile.TemporaryDirectory(prefix="edgeship-fold-") as tmp:
        source, folded = (Path(tmp) / FORMATS["onnx"].filename(n) for n in ("in", "folded"))
        onnx.save(proto, str(source))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        return onnx.load(str(folded))


def count_onnx(
    model: Union[str, Path], input_shapes: Optional[Mapping[str, tuple[int, ...]]] = None
) -> GraphCost:
    """Parameters and MACs of an ONNX model for one sample (dynamic batch set to 1).

    Counts Conv, ConvTranspose, Gemm and MatMul (and their integer/QLinear forms); element-wise
    ops, pooling and activations are cheap next to them and not counted.
    """
    path = Path(model)
    proto = _load_onnx(path)
    unsized = _fix_input_dims(proto.graph, input_shapes or {})
    weights = _weights(proto.graph)
    if unsized:  # a cost that needs a shape nobody gave is unknown, never a guess or an error
        return GraphCost(params=sum(int(w.size) for w in weights.values()),
                         nonzero_params=sum(int(np.count_nonzero(w)) for w in weights.values()),
                         macs=None, uncounted=unsized)
    macs_by_op, uncounted = _count_macs(proto)
    if any("shape unknown" in u for u in uncounted):
        # ONNX shape inference cannot see through shapes computed at run time from constants
        # (TF-style 'same' padding: ConstantOfShape -> Concat -> Cast -> Pad); fold them first.
        macs_by_op, uncounted = _count_macs(_constant_folded(proto))
    return GraphCost(
        params=sum(int(w.size) for w in weights.values()),
        nonzero_params=sum(int(np.count_nonzero(w)) for w in weights.values()),
        macs=sum(macs_by_op.values()),
        macs_by_op=macs_by_op,
        uncounted=uncounted,
    )


# ---------------------------------------------------------------------------------------------
# size and the combined figures


def model_size(model: Union[str, Path]) -> ModelSize:
    """Bytes of every file the model consists of, raw and deflate-compressed (level 6)."""
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"model file '{path}' does not exist", "check the path")
    raw = compressed = 0
    for f in files_of(path):
        data = f.read_bytes()
        raw += len(data)
        compressed += len(zlib.compress(data, 6))
    return ModelSize(raw, compressed)


def model_stats(
    model: Union[str, Path],
    x: Optional[Inputs] = None,
    y: Optional[np.ndarray] = None,
    input_shapes: Optional[Mapping[str, tuple[int, ...]]] = None,
) -> ModelStats:
    """Params, MACs (ONNX only), size and, given labelled data, accuracy of one model file."""
    path = Path(model)
    size = model_size(path)
    params = nonzero = macs = None
    if is_format(path, "onnx"):
        cost = count_onnx(path, input_shapes)
        params, nonzero, macs = cost.params, cost.nonzero_params, cost.macs
    acc = accuracy(path, x, y).accuracy if x is not None and y is not None else None
    return ModelStats(str(path), params, nonzero, macs, size.bytes, size.compressed_bytes, acc)


def module_stats(module: Any, example: np.ndarray, data: Optional[SampleSet] = None) -> ModelStats:
    """:func:`model_stats` of a torch module, through a temporary ONNX export of it."""
    import tempfile

    from edgeship.converters.onnx_to_torch import torch_to_onnx_file

    with tempfile.TemporaryDirectory(prefix="edgeship-stats-") as tmp:
        path = torch_to_onnx_file(module, Path(tmp) / FORMATS["onnx"].filename("model"), example)
        stats = model_stats(path, *((data.array, data.y) if data is not None else (None, None)))
    return replace(stats, path="")

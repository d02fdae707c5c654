"""What precision a model file is stored in: fp32, fp16, int8 (or int4), read from the file.

Pretrained models often arrive already quantized (dynamic int8 MatMulInteger graphs, QDQ
graphs, int8 weights dequantized by Cast+Mul, int8 TFLite flatbuffers).  ``model_precision``
recognises them, so ``inspect`` can show it and ``quantize`` can refuse to quantize twice.

Example:
    >>> model_precision("minilm_int8.onnx").kind             # doctest: +SKIP
    'int8'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

# onnx ops that only appear in quantized graphs
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
    "ConvInteger", "QLinearConv", "QLinearMatMul", "QGemm", "QAttention", "QLinearAdd",
    "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearSoftmax", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM",
    "MatMulIntegerToFloat", "MatMulNBits", "QOrderedMatMul",
})
_INTEGER_WEIGHTS = ("int8", "uint8", "int4", "uint4")
_FLOAT_WEIGHTS = ("float32", "float16", "bfloat16", "float64")
_ONNX_DTYPES = {"FLOAT": "float32", "FLOAT16": "float16", "BFLOAT16": "bfloat16",
                "DOUBLE": "float64", "INT8": "int8", "UINT8": "uint8", "INT4": "int4",
                "UINT4": "uint4"}


@dataclass(frozen=True)
class Precision:
    """A model's storage precision: ``kind`` (fp32 | fp16 | bf16 | int8 | int4), with the
    evidence: stored weight elements per dtype and quantized operators per type."""

    kind: str
    weights: dict[str, int] = field(default_factory=dict)
    quantized_ops: dict[str, int] = field(default_factory=dict)
    basis: str = "weights"  # what the kind was read from

    @property
    def quantized(self) -> bool:
        return self.kind in ("int8", "int4")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"quantized": self.quantized}

    def summary(self) -> str:
        if not self.quantized:
            return self.kind
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(self.quantized_ops.items()))
        total = sum(self.weights.values()) or 1
        share = sum(v for k, v in self.weights.items() if k in _INTEGER_WEIGHTS) / total
        return f"{self.kind} (already quantized: {share:.0%} of weights integer" + (
            f"; {ops})" if ops else ")")


def _kind(weights: Counter[str], ops: Counter[str]) -> str:
    if ops.get("MatMulNBits") or weights.get("int4") or weights.get("uint4"):
        return "int4"
    integer = sum(weights[k] for k in _INTEGER_WEIGHTS)
    floats = {k: weights[k] for k in _FLOAT_WEIGHTS}
    if ops or integer > sum(floats.values()):
        return "int8"
    top = max(floats, key=lambda k: floats[k]) if any(floats.values()) else "float32"
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}[top]


def _graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph inside it (If/Loop/Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == attr.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def onnx_precision(path: Union[str, Path]) -> Precision:
    """Weights (initializers, Constant nodes) by dtype and quantized ops of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights: Counter[str] = Counter()
    ops: Counter[str] = Counter()

    def count(tensor: Any) -> None:
        name = _ONNX_DTYPES.get(onnx.TensorProto.DataType.Name(tensor.data_type))
        if name:
            n = 1
            for d in tensor.dims:
                n *= int(d)
            weights[name] += n

    for graph in _graphs(model.graph):
        for t in graph.initializer:
            count(t)
        for node in graph.node:
            if node.op_type in QUANTIZED_OPS:
                ops[node.op_type] += 1
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.type == attr.TENSOR:
                        count(attr.t)
    return Precision(_kind(weights, ops), dict(weights), dict(ops))


def tensor_precision(dtypes: dict[str, int]) -> Precision:
    """From element counts per dtype over a model's tensors (what a TFLite interpreter lists)."""
    weights = Counter({k: v for k, v in dtypes.items() if k in _INTEGER_WEIGHTS + _FLOAT_WEIGHTS})
    return Precision(_kind(weights, Counter()), dict(weights), {}, basis="tensors")


def model_precision(path: Union[str, Path], session: Optional[Any] = None) -> Optional[Precision]:
    """The storage precision of an ONNX file, or of a loaded TFLite session's tensors; None for
    formats it cannot read (OpenVINO IR)."""
    from edgeship.runtime.formats import is_format

    path = Path(path)
    if is_format(path, "onnx"):
        return onnx_precision(path)
    dtypes = session.tensor_dtypes() if session is not None else None
    return tensor_precision(dtypes) if dtypes else None

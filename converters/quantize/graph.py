"""ONNX graph facts and edits the quantizers need: read and check, weighted layers, the share of
MACs spent in convolutions, percentile clipping of weight outliers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.runtime.formats import FORMATS

# ops whose second input is a weight tensor that int8 quantization stores as integers
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def weighted_nodes(model: Any) -> list[Any]:
    """Nodes that carry a constant weight (Conv/Gemm/MatMul with an initializer operand)."""
    weights = {t.name for t in model.graph.initializer}
    return [n for n in model.graph.node
            if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.input[1] in weights]


def conv_share(path: Path) -> float:
    """The share of the model's multiply-accumulates spent in convolutions (0..1); with shapes
    too dynamic to count MACs, the share of convolutions among the weighted nodes (a warning's
    figure must never block the job)."""
    from edgeship.converters.evaluate import count_onnx
    from edgeship.core.errors import EdgeshipError

    try:
        cost = count_onnx(path)
    except EdgeshipError:
        import onnx

        nodes = weighted_nodes(onnx.load(str(path)))
        return sum(n.op_type.startswith("Conv") for n in nodes) / len(nodes) if nodes else 0.0
    conv = sum(v for k, v in cost.macs_by_op.items() if "Conv" in k)
    return conv / cost.macs if cost.macs else 0.0


@dataclass(frozen=True)
class ClipReport:
    """What percentile clipping changed: how many weights, in how many tensors."""

    percentile: float
    tensors: int
    clipped_values: int
    total_values: int

    def to_dict(self) -> dict[str, Any]:
        return {"percentile": self.percentile, "tensors": self.tensors,
                "clipped_values": self.clipped_values, "total_values": self.total_values}


def clip_weights(model: Any, percentile: float, per_channel: bool) -> ClipReport:
    """Clip each weight tensor of a weighted layer to +-the ``percentile`` of its magnitudes
    (per output channel when ``per_channel``), in place.

    A few outlier weights stretch the int8 scale so every other weight loses resolution; clipping
    them trades a small error on the outliers for a finer grid everywhere else.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    done: set[str] = set()
    clipped = total = 0
    for node in weighted_nodes(model):
        name = node.input[1]
        if name in done:
            continue
        done.add(name)
        w = numpy_helper.to_array(inits[name])
        if w.dtype.kind != "f" or w.size < 2:
            continue
        axis = _output_axis(node, w)
        mags = np.abs(w)
        if per_channel and w.ndim > 1:
            reduce = tuple(i for i in range(w.ndim) if i != axis)
            limit = np.percentile(mags, percentile, axis=reduce, keepdims=True)
        else:
            limit = np.percentile(mags, percentile)
        new = np.clip(w, -limit, limit).astype(w.dtype)
        clipped += int(np.count_nonzero(new != w))
        total += w.size
        inits[name].CopyFrom(numpy_helper.from_array(new, name))
    return ClipReport(percentile, len(done), clipped, total)


def _output_axis(node: Any, w: np.ndarray) -> int:
    """The axis of ``w`` that enumerates output channels."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else w.ndim - 1
    return w.ndim - 1  # MatMul: (K, N)


def gemm_to_matmul(model: Any) -> int:
    """Rewrite Gemm nodes with a constant weight (alpha=beta=1, no transA) as MatMul + Add, in
    place; returns how many.  torch exports Linear as Gemm, and onnxruntime's 4-bit MatMulNBits
    quantizer only takes MatMul."""
    import onnx
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nodes = []
    count = 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in inits or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            w = np.ascontiguousarray(w.T)
        w_name = f"{node.input[1]}_matmul"
        model.graph.initializer.append(numpy_helper.from_array(w, w_name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [mm_out],
                                      name=f"{node.name}_matmul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]],
                                          name=f"{node.name}_bias"))
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _drop_unused_initializers(model)
    onnx.checker.check_model(model)
    return count


def _drop_unused_initializers(model: Any) -> None:
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def name_nodes(model: Any) -> None:
    """Give every unnamed node a stable name: node exclusion and reports address nodes by name."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def add_outputs(model: Any, names: list[str]) -> None:
    """Expose intermediate tensors as graph outputs (float, shape left to the runtime)."""
    from onnx import TensorProto, helper

    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))


PER_CHANNEL_OPSET = 13  # QuantizeLinear/DequantizeLinear take an axis (per-channel) from 13 on


def refuse_quantized(model: Any, name: str) -> None:
    """A model that is integer-quantized already (quantize ops, or int8 weights cast to float at
    run time) is refused: quantizing it again changes nothing or stacks a second rounding."""
    from edgeship.converters.onnx_shapes import is_quantized
    from edgeship.core.errors import ConfigError

    why = is_quantized(model) or int8_weights(model)
    if why:
        raise ConfigError(f"'{name}' is already quantized ({why}); quantizing it again would "
                          "change nothing or round twice",
                          "use it as it is (edgeship bench), or quantize its fp32 original")


def int8_weights(model: Any) -> Optional[str]:
    """'N int8 weight tensors' when large int8/uint8 initializers feed Cast or Dequantize nodes
    (weight-only int8 stored as integers and widened at run time), else None."""
    from onnx import TensorProto

    small = 256  # index tables and masks are small; weight matrices are not
    ints = {t.name for t in model.graph.initializer
            if t.data_type in (TensorProto.INT8, TensorProto.UINT8)
            and int(np.prod(t.dims)) >= small}
    fed = {i for n in model.graph.node if n.op_type in ("Cast", "DequantizeLinear")
           for i in n.input if i in ints}
    return f"{len(fed)} int8 weight tensors widened at run time" if fed else None


def upgrade_opset(model: Any, path: Path, work: Path, per_channel: bool) -> tuple[Path, bool]:
    """Static int8 writes per-channel QuantizeLinear (axis: opset 13): a model below that is
    converted to opset 13 in a private copy (``onnx.version_converter``), said in a warning; if
    the converter cannot, per-channel falls back to per-tensor, said too.  Returns the file to
    quantize and whether per-channel scales still apply."""
    from edgeship.converters.onnx_shapes import opset_of
    from edgeship.converters.quantize.calib import warn

    opset = opset_of(model)
    if opset >= PER_CHANNEL_OPSET or not per_channel:
        return path, per_channel
    import onnx
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, PER_CHANNEL_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # noqa: BLE001 - the fallback is per-tensor, said below
        warn(f"the model is ONNX opset {opset} and onnx's version converter cannot bring it to "
             f"{PER_CHANNEL_OPSET} ({' '.join(str(exc).split())[:100]}): quantizing with "
             "PER-TENSOR weight scales (per-channel needs opset 13)")
        return path, False
    warn(f"the model is ONNX opset {opset}: converted to opset {PER_CHANNEL_OPSET} (onnx "
         "version converter) in a private copy, because per-channel int8 needs opset 13")
    target = work / FORMATS["onnx"].filename("opset13")
    onnx.save(upgraded, str(target))
    return target, True

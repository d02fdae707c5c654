"""ONNX input shapes: check ``--input-shape`` names against a model, and write a private copy
whose every dimension is static, for converters that misread dynamic ones.

onnx2tf is the reason for the static copy: with a dynamic batch ``N`` left in the graph's
value_info (``-b 1`` only rewrites the input), it cannot tell NCHW from NHWC at a residual
``Add`` of two ``[N, 24, 56, 56]`` tensors, transposes one side back to NCHW and then fails
at the next convolution ("Depth of input (56) is not a multiple of input depth of filter
(24)", EfficientNet-Lite0).  With every shape static and re-inferred, the same graph converts.

Example:
    >>> fixed = static_copy(Path("yolo.onnx"), Path(tmp) / "model.onnx",
    ...                     {"images": (1, 3, 640, 640)})              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from edgeship.core.errors import ConfigError
from edgeship.runtime.inputs import shared_dim
from edgeship.runtime.session import TensorSpec, format_shape, shape_fits

Shapes = Mapping[str, tuple[int, ...]]


def check_shape_names(specs: Sequence[TensorSpec], shapes: Optional[Shapes]) -> None:
    """Every ``--input-shape`` name is an input of the model and fits its fixed dimensions."""
    if not shapes:
        return
    by_name = {s.name: s for s in specs}
    for name, shape in shapes.items():
        spec = by_name.get(name)
        if spec is None:
            listed = ", ".join(f"{s.name} {format_shape(s.shape)}" for s in specs)
            raise ConfigError(f"--input-shape names '{name}', which is not an input of the model "
                              f"(inputs: {listed})", "name one of the model's inputs")
        if not shape_fits(spec.shape, shape):
            raise ConfigError(
                f"--input-shape {name}={','.join(map(str, shape))} does not fit the model's "
                f"{format_shape(spec.shape)}",
                "keep the fixed dimensions and give only the dynamic ones new sizes")


def fix_specs(specs: Sequence[TensorSpec], shapes: Optional[Shapes]) -> list[TensorSpec]:
    """The specs with the user's shapes in place of the declared ones (the batch axis stays as
    declared, so a dynamic batch is still dynamic for parity and evaluation).  A symbolic
    dimension a given shape sizes ("sequence") takes that size in every input that names it,
    as ``runtime.inputs.resolve_shapes`` does: ``input_ids=1,128`` sizes the attention mask."""
    check_shape_names(specs, shapes)
    given = dict(shapes or {})
    bound = {d: n for spec in specs if spec.name in given
             for d, n in zip(spec.shape[1:], given[spec.name][1:]) if shared_dim(d)}
    out = []
    for spec in specs:
        if not spec.shape:
            out.append(TensorSpec(spec.name, given.get(spec.name, spec.shape), spec.dtype))
            continue
        rest = given[spec.name][1:] if spec.name in given else tuple(
            bound.get(d, d) if shared_dim(d) else d for d in spec.shape[1:])  # type: ignore[arg-type]
        out.append(TensorSpec(spec.name, (spec.shape[0], *rest), spec.dtype))
    return out


def dynamic_dims(specs: Sequence[TensorSpec]) -> list[str]:
    """``name[i]`` for every dynamic dimension past the batch axis."""
    return [f"{s.name}[{i}]" for s in specs for i, d in enumerate(s.shape)
            if i > 0 and not (isinstance(d, int) and d >= 0)]


def input_shape_hint(specs: Sequence[TensorSpec]) -> str:
    """``--input-shape`` flags for every input with a dynamic non-batch dimension."""
    flags = []
    for s in specs:
        if any(not (isinstance(d, int) and d >= 0) for d in s.shape[1:]):
            dims = ["1" if i == 0 and not isinstance(d, int) else str(d) if isinstance(d, int)
                    and d >= 0 else "N" for i, d in enumerate(s.shape)]
            flags.append(f"--input-shape {s.name}={','.join(dims)}")
    return " ".join(flags)


def static_copy(source: Path, target: Path, shapes: Optional[Shapes] = None,
                scope_names: bool = False) -> Path:
    """Write ``source`` to ``target`` with every input dimension fixed (the user's shape, else 1
    for a dynamic batch), value_info cleared and shapes re-inferred; ``source`` is only read.

    A dynamic non-batch dimension nobody gave is a ConfigError naming the flag that fixes it.
    ``scope_names``: also rename nodes and inner tensors to names TensorFlow accepts as scopes
    (PaddlePaddle exports call nodes ``Softmax@0``); the model's inputs and outputs keep theirs."""
    import onnx
    from edgeship.runtime.inputs import resolve_shapes

    proto = onnx.load(str(source))
    weights = {t.name for t in proto.graph.initializer}
    values = [v for v in proto.graph.input if v.name not in weights]
    specs = [TensorSpec(v.name, tuple(d.dim_value if d.HasField("dim_value") else
                                      (d.dim_param or None) for d in v.type.tensor_type.shape.dim),
                        "float32") for v in values]
    # the runtime's rules: a dynamic batch is 1, dimensions sharing a name share a size, and a
    # dimension nobody sized is a ConfigError naming the --input-shape that sizes it
    resolved = resolve_shapes(specs, dict(shapes or {}))
    for value in values:
        for dim, size in zip(value.type.tensor_type.shape.dim, resolved[value.name]):
            dim.ClearField("dim_param")
            dim.dim_value = int(size)
    for value in proto.graph.output:  # re-inferred below from the now static inputs
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.ClearField("dim_param")
    del proto.graph.value_info[:]
    if scope_names:
        _scope_names(proto.graph)
    with contextlib.suppress(Exception):  # a graph onnx cannot infer converts as it is
        proto = onnx.shape_inference.infer_shapes(proto)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(target))
    return target


_NOT_SCOPE = re.compile(r"[^A-Za-z0-9_./>-]")


def _scope_names(graph: Any) -> None:
    """Replace characters TensorFlow rejects in scope names, in node names and in the names of
    tensors inside the graph (never the graph's inputs and outputs: they are its interface)."""
    keep = {v.name for v in [*graph.input, *graph.output]}
    taken = {n.name for n in graph.node} | keep

    def fresh(name: str) -> str:
        new = _NOT_SCOPE.sub("_", name) or "t"
        while new in taken and new != name:
            new += "_"
        taken.add(new)
        return new

    renamed: dict[str, str] = {}
    for t in graph.initializer:
        if t.name not in keep and _NOT_SCOPE.search(t.name):
            renamed[t.name] = t.name = fresh(t.name)
    for node in graph.node:
        for out in node.output:
            if out and out not in keep and _NOT_SCOPE.search(out) and out not in renamed:
                renamed[out] = fresh(out)
    for node in graph.node:
        if _NOT_SCOPE.search(node.name):
            node.name = fresh(node.name)
        for field_ in (node.input, node.output):
            for i, name in enumerate(field_):
                if name in renamed:
                    field_[i] = renamed[name]


def is_quantized(proto: Any) -> Optional[str]:
    """Why an ONNX graph is already integer-quantized (None when it is not): its quantize ops."""
    quant_ops = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                 "QLinearMatMul", "MatMulInteger", "ConvInteger", "MatMulNBits", "QGemm",
                 "DynamicQuantizeMatMul", "QAttention")
    counts: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type in quant_ops:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    if not counts:
        return None
    return ", ".join(f"{n} {op}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1])[:3])


def opset_of(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)

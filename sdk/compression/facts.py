"""What the original model is, for the planner: its format, size, MACs and parameters, the
share of them in convolutions (the planner's dynamic-int8 rule) counted on its ONNX graph,
whether it is integer-quantized already, and concrete shapes for dynamic non-batch
dimensions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

_CONV_OPS = ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose")


def model_facts(original: Any, facts: OriginalFacts, data: Any,
                max_accuracy_drop: Optional[float], class_scores: bool) -> Any:
    """The planner's ``ModelFacts`` from the original's facts (``original_facts``), the data
    and the judge."""
    from edgeship.compression.plan import ModelFacts

    return ModelFacts(original.kind, facts.conv_share, data.labelled, data.training_samples,
                      max_accuracy_drop, params=facts.params, class_scores=class_scores,
                      quantized=already_quantized(original))


def already_quantized(original: Any) -> Optional[str]:
    """Why an ONNX original is integer-quantized already (its quantize candidates would be
    no-ops), else None."""
    if original.kind != "onnx" or original.path is None:
        return None
    import onnx
    from edgeship.converters.onnx_shapes import is_quantized
    from edgeship.converters.quantize.graph import int8_weights

    proto = onnx.load(str(original.path), load_external_data=False)
    return is_quantized(proto) or int8_weights(proto)


@dataclass(frozen=True)
class OriginalFacts:
    """The original model's format, size and cost (None: not known or not countable)."""

    format: str
    path: Optional[str]
    description: str
    sha256: str
    size_bytes: Optional[int]
    input_shapes: Optional[dict[str, tuple[int, ...]]]  # concrete dynamic dims, for every pass
    macs: Optional[int] = None
    params: Optional[int] = None
    conv_share: Optional[float] = None
    conv_share_basis: Optional[str] = None  # MACs, or the node count when MACs are not countable

    def to_dict(self, **judged: Any) -> dict[str, Any]:
        """summary.json's ``original`` (the keys it always had), plus ``judged`` (the baseline
        accuracy and the fidelity judge, known once the judge has run the original)."""
        facts = {k: v for k, v in asdict(self).items()
                 if k != "conv_share_basis" or v is not None}
        return facts | judged


def original_facts(original: Any, scratch: Path, data: Any) -> OriginalFacts:
    """Format, size, MACs and the share of them in convolutions (the planner's dynamic-int8
    rule), counted on the ONNX graph; and concrete shapes for dynamic non-batch dimensions."""
    from edgeship.converters.evaluate import count_onnx, model_size

    shapes = {s.name: (1, *x.shape[1:]) for s, x in zip(original.specs, data.eval.x)}
    dynamic = any(not isinstance(d, int) or d < 0 for s in original.specs for d in s.shape[1:])
    facts = OriginalFacts(
        format=original.kind, path=str(original.path) if original.path else None,
        description=original.description, sha256=original.sha256,
        size_bytes=model_size(original.path).bytes if original.path and original.kind != "torch"
        else None,
        input_shapes=shapes if dynamic else None)
    onnx_path = _onnx_form(original, scratch, data)
    if onnx_path is None:
        return facts
    cost = count_onnx(onnx_path, shapes)
    conv = sum(v for k, v in cost.macs_by_op.items() if k in _CONV_OPS)
    macs = cost.macs if cost.macs and not cost.uncounted else None  # None: not countable
    return replace(facts, macs=macs, params=cost.params,
                   conv_share=conv / macs if macs else _conv_node_share(onnx_path),
                   conv_share_basis="MACs" if macs else "node count (MACs not countable)")


def _conv_node_share(path: Path) -> Optional[float]:
    """Convolutions among the compute nodes, when shapes are too dynamic to count MACs."""
    import onnx

    ops = [n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node]
    compute = [o for o in ops if o in _CONV_OPS or o in ("MatMul", "Gemm", "MatMulInteger")]
    return sum(o in _CONV_OPS for o in compute) / len(compute) if compute else None


def _onnx_form(original: Any, scratch: Path, data: Any) -> Optional[Path]:
    if original.kind == "onnx":
        return Path(original.path)
    if original.kind != "torch":
        return None  # an IR or .tflite: not counted
    from edgeship.converters.export import export
    from edgeship.runtime.formats import FORMATS

    example = data.eval.x[0][:1] if original.path is None else None
    model = original.source.module if original.path is None else original.path
    out = scratch / "cost" / FORMATS["onnx"].filename(original.stem)
    return export(model, "onnx", out, example_input=example, check=False).path

"""What a quantization hands back besides the model: the per-layer sensitivity report and the
accuracy-aware search's record (plain data; ``sensitivity`` computes them)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class LayerSensitivity:
    """What quantizing this one layer (alone) does."""

    node: str
    op_type: str
    layer_sqnr_db: float  # the layer's own output vs fp32
    output_rel_error: float  # ||y_q - y|| / ||y|| of the model's first output
    output_cosine: float
    output_top1_agreement: Optional[float]  # None: the output is not class scores


@dataclass
class SensitivityReport:
    """Layers, most sensitive first, and how they were measured."""

    layers: list[LayerSensitivity]
    samples: int
    output: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "edgeship.sensitivity/1", "samples": self.samples,
                "output": self.output, "settings": self.settings,
                "layers": [asdict(layer) for layer in self.layers]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """Plain-text table, most sensitive layer first."""
        head = f"{'#':>3}  {'layer':<40} {'op':<8} {'SQNR dB':>8} {'out rel err':>11} " \
               f"{'cosine':>8} {'top-1':>7}"
        rows = [head, "-" * len(head)]
        for i, s in enumerate(self.layers, 1):
            rows.append(f"{i:>3}  {s.node[-40:]:<40} {s.op_type:<8} {s.layer_sqnr_db:>8.1f} "
                        f"{s.output_rel_error:>11.4f} {s.output_cosine:>8.4f} "
                        + (f"{s.output_top1_agreement:>7.1%}"
                           if s.output_top1_agreement is not None else f"{'–':>7}"))
        return "\n".join(rows)


@dataclass(frozen=True)
class AccuracySearch:
    """The accuracy-aware search: fp32 accuracy, each trial, what stayed in fp32."""

    fp32_accuracy: float
    accuracy: float
    excluded: list[str]
    trials: list[dict[str, Any]]
    max_drop_points: float

    @property
    def drop_points(self) -> float:
        return 100.0 * (self.fp32_accuracy - self.accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {"fp32_accuracy": self.fp32_accuracy, "accuracy": self.accuracy,
                "drop_points": round(self.drop_points, 4),
                "max_drop_points": self.max_drop_points,
                "kept_fp32": self.excluded, "trials": self.trials}


__all__ = ["AccuracySearch", "LayerSensitivity", "SensitivityReport"]

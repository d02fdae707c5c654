"""Per-layer quantization sensitivity and the accuracy-aware search built on it.

Sensitivity quantizes one weighted layer at a time (static int8, same settings and the same
calibration ranges as the full quantization) and measures, on evaluation samples:
- the layer's own output against fp32 (SQNR in dB: higher is better),
- the model's output against fp32 (relative L2 error, cosine, top-1 agreement).
Layers are ranked by the model-output error they cause alone.  The accuracy-aware search then
keeps the most sensitive layers in fp32 (onnxruntime's nodes_to_exclude), one more at a time,
until the top-1 accuracy drop on labelled data is within the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from edgeship.converters.quantize import ort
from edgeship.converters.quantize.calib import Feed
from edgeship.converters.quantize.config import QuantizeConfig
from edgeship.converters.quantize.reports import AccuracySearch, LayerSensitivity, SensitivityReport
from edgeship.core.data import SampleSet
from edgeship.core.errors import BudgetExceeded
from edgeship.runtime.formats import FORMATS

_SQNR_CAP_DB = 200.0  # an exact match would be +inf, which JSON cannot hold


def _run(path: Path, feeds: Feed, outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """Named outputs of an ONNX model over all samples (one by one if the batch is fixed)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    sess = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = list(dict.fromkeys(outputs))  # the last layer's output is often the model's
    batch_dim = sess.get_inputs()[0].shape[0]
    step = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else 64
    total = len(next(iter(feeds.values())))
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for start in range(0, total, step):
        batch = {k: v[start:start + step] for k, v in feeds.items()}
        for name, value in zip(outputs, sess.run(list(outputs), batch)):
            chunks[name].append(np.asarray(value, dtype=np.float64))
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def _with_outputs(src: Path, dst: Path, names: list[str]) -> Path:
    import onnx
    from edgeship.converters.quantize.graph import add_outputs

    model = onnx.load(str(src))
    add_outputs(model, names)
    onnx.save(model, str(dst))
    return dst


def _sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.sum((ref - got) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return _SQNR_CAP_DB
    return float(min(_SQNR_CAP_DB, 10.0 * np.log10(max(signal, 1e-30) / noise)))


def layer_sensitivity(
    pre: Path, calib: SampleSet, cfg: QuantizeConfig, cache: Path, feeds: Feed, work: Path,
) -> SensitivityReport:
    """Quantize each weighted layer alone and measure the damage (see the module docstring)."""
    import onnx
    from edgeship.converters.evaluate import agreement_of
    from edgeship.converters.quantize.graph import weighted_nodes

    model = onnx.load(str(pre))
    final = model.graph.output[0].name
    nodes = weighted_nodes(model)
    onnx_file = FORMATS["onnx"].filename
    ref = _run(_with_outputs(pre, work / onnx_file("fp32_probe"), [n.output[0] for n in nodes]),
               feeds, [final] + [n.output[0] for n in nodes])
    layers = []
    for i, node in enumerate(nodes):
        one = work / onnx_file(f"one_{i}")
        ort.quantize_static(pre, one, calib, cfg, cache, only=[node.name])
        got = _run(_with_outputs(one, one, [node.output[0]]), feeds, [final, node.output[0]])
        agree = agreement_of(ref[final], got[final])
        rel = float(np.linalg.norm(got[final] - ref[final])) / max(
            float(np.linalg.norm(ref[final])), 1e-30)
        layers.append(LayerSensitivity(
            node=node.name, op_type=node.op_type,
            layer_sqnr_db=round(_sqnr(ref[node.output[0]], got[node.output[0]]), 2),
            output_rel_error=round(rel, 6), output_cosine=round(agree.cosine_mean, 6),
            output_top1_agreement=round(agree.top1, 6) if agree.top1 is not None else None))
        one.unlink(missing_ok=True)
    layers.sort(key=lambda s: (-s.output_rel_error, s.layer_sqnr_db))
    return SensitivityReport(layers, len(next(iter(feeds.values()))), final,
                             ort.static_params(cfg))


def accuracy_aware(
    pre: Path, out: Path, calib: SampleSet, cfg: QuantizeConfig, cache: Path,
    labelled: tuple[Feed, np.ndarray], ranking: Optional[SensitivityReport], work: Path,
) -> tuple[AccuracySearch, SensitivityReport]:
    """Quantize into ``out`` keeping the fewest most-sensitive layers in fp32 so that the top-1
    drop on ``labelled`` is at most ``cfg.max_accuracy_drop`` points."""
    from edgeship.converters.evaluate import accuracy

    assert cfg.max_accuracy_drop is not None
    feeds, labels = labelled
    fp32 = accuracy(pre, feeds, labels).accuracy
    excluded: list[str] = []
    trials: list[dict[str, Any]] = []

    def attempt() -> float:
        ort.quantize_static(pre, out, calib, cfg, cache, exclude=excluded)
        acc = accuracy(out, feeds, labels).accuracy
        trials.append({"kept_fp32": list(excluded), "accuracy": acc,
                       "drop_points": round(100.0 * (fp32 - acc), 4)})
        return acc

    acc = attempt()
    if 100.0 * (fp32 - acc) <= cfg.max_accuracy_drop:
        return AccuracySearch(fp32, acc, excluded, trials, cfg.max_accuracy_drop), \
            ranking or SensitivityReport([], 0, "", {})
    ranking = ranking or layer_sensitivity(pre, calib, cfg, cache, feeds, work)
    for layer in ranking.layers:
        excluded.append(layer.node)
        acc = attempt()
        if 100.0 * (fp32 - acc) <= cfg.max_accuracy_drop:
            return AccuracySearch(fp32, acc, excluded, trials, cfg.max_accuracy_drop), ranking
    raise BudgetExceeded(
        f"int8 costs {100.0 * (fp32 - acc):.2f} accuracy points even with all "
        f"{len(excluded)} weighted layers kept in fp32 (budget {cfg.max_accuracy_drop:g})",
        "raise --max-accuracy-drop, calibrate on more representative data, or try "
        "--calibration percentile / --clip-percentile",
    )

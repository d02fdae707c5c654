"""The onnxruntime quantizer as ``quantize_file`` runs it: int4 weight-only, dynamic, fp16, or
static (accuracy-aware and with a per-layer sensitivity report when asked), over the primitives
in ``ort`` and the searches in ``sensitivity``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from edgeship.converters.quantize.config import Outcome, QuantizeConfig
from edgeship.converters.quantize.ort import (
    check_loadable,
    convert_fp16,
    named,
    preprocess,
    quantize_dynamic,
    quantize_int4,
    quantize_static,
    static_params,
    warn_slow_static,
)
from edgeship.converters.quantize.sensitivity import accuracy_aware, layer_sensitivity
from edgeship.core.data import SampleSet
from edgeship.runtime.formats import FORMATS


def run(src: Path, out: Path, cfg: QuantizeConfig, calib: Optional[SampleSet],
        labelled: Optional[tuple[dict[str, Any], Any]], work: Path) -> Outcome:
    """The onnxruntime side of ``quantize_file``: ``src`` (ONNX) into ``out``."""
    from edgeship.converters.quantize.graph import conv_share

    if cfg.weights_only:
        params = quantize_int4(src, out, cfg, conv_share(src))
        check_loadable(out)
        return Outcome([out], params)
    onnx_file = FORMATS["onnx"].filename
    pre = named(preprocess(src, work / onnx_file("pre")), work / onnx_file("pre_named"))
    if cfg.mode == "dynamic":
        params = quantize_dynamic(pre, out, cfg, conv_share(src))
    elif cfg.mode == "fp16":
        params = convert_fp16(pre, out)
    else:
        assert calib is not None
        return _run_static(pre, out, cfg, calib, labelled, work)
    check_loadable(out)
    return Outcome([out], params)


def _run_static(pre: Path, out: Path, cfg: QuantizeConfig, calib: SampleSet,
                labelled: Optional[tuple[dict[str, Any], Any]], work: Path) -> Outcome:
    warn_slow_static(cfg)
    cache = work / "calibration.json"
    search = report = None
    if cfg.max_accuracy_drop is not None:
        assert labelled is not None
        search, report = accuracy_aware(pre, out, calib, cfg, cache, labelled, None, work)
    else:
        quantize_static(pre, out, calib, cfg, cache)
    if cfg.sensitivity and (report is None or not report.layers):
        feeds = labelled[0] if labelled is not None else calib.by_name()
        report = layer_sensitivity(pre, calib, cfg, cache, feeds, work)
    check_loadable(out)
    params = {**static_params(cfg), "kept_fp32": search.excluded if search else []}
    return Outcome([out], params, search=search,
                   sensitivity=report if cfg.sensitivity or (search and search.excluded) else None)

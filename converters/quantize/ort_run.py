"""The onnxruntime quantizer as ``quantize_file`` runs it: int4 weight-only, dynamic, fp16, or
static (accuracy-aware and with a per-layer sensitivity report when asked), over the primitives
in ``ort`` and the searches in ``sensitivity``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from edgeship.converters.quantize.calib import warn
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
from edgeship.core.errors import UnsupportedError
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
        try:
            return _run_static(pre, out, cfg, calib, labelled, work)
        except UnsupportedError as exc:
            if pre.name == onnx_file("pre_named") and src.resolve() != pre.resolve():
                # quant_pre_process's fusions can trip onnxruntime's own quantizer (Magika's
                # pre-processed graph: its per-channel bias-scale check compares arrays); the
                # model as given is what onnxruntime quantized before those fusions existed
                plain = named(src, work / onnx_file("plain_named"))
                warn(f"onnxruntime could not quantize the pre-processed model "
                     f"({exc.problem[:120]}); quantized the model without quant_pre_process")
                return _run_static(plain, out, cfg, calib, labelled, work, "plain")
            raise
    check_loadable(out)
    return Outcome([out], params)


def _run_static(pre: Path, out: Path, cfg: QuantizeConfig, calib: SampleSet,
                labelled: Optional[tuple[dict[str, Any], Any]], work: Path,
                graph: str = "pre") -> Outcome:
    warn_slow_static(cfg)
    cache = work / f"calibration-{graph}.json"  # activation ranges by this graph's tensor names
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

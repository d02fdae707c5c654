"""Candidate recipes for a device, from its profile and the formats table (no per-device code).

An *engine* is a format plus a backend entry of the profile (``openvino``, ``openvino:GPU``,
``onnxruntime:CUDAExecutionProvider``...): every format the device lists, paired with every
backend it lists that runs that format, except a backend running a format other than its own
when its own is listed too (OpenVINO runs ONNX, but its IR is the OpenVINO candidate).  An
engine's precisions are its compute unit's: the CPU's, or those of the profile's accelerators
of that kind.

A *variant* (the ``VARIANTS`` table) is a way of making a model cheaper: fp32 as it is, a bf16
precision hint, fp16 weights, int8 dynamic, int8 static per-channel, accuracy-aware int8.  A
candidate is an engine x a variant the engine's unit supports, the converters accept
(``QuantizeConfig``'s own rules) and that pays off (dynamic int8 is skipped for conv nets).
Structural candidates (structured pruning 25 / 50 % + distillation, then fp32 or int8) need a
torch model (or an ONNX file onnx2torch converts) and training samples; they run last, on the
engine that measured fastest for their precision (``structural_candidates``).

Every candidate comes out as a ``Planned`` (``edgeship.compression.candidate``): its recipe and
what the planner knew (precision class, tolerance, engine, unit, why), which the later phases
read instead of re-deriving it.

Example:
    >>> from edgeship.profiles import load_profile
    >>> plan = plan_recipes(load_profile("x86-amx"), ModelFacts(source_format="onnx"))
    >>> [r.name for r in plan.recipes][:3]
    ['fp32-openvino', 'fp32-onnx', 'fp32-tflite']
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from edgeship.compression.candidate import Planned
from edgeship.recipe import (
    DistillStep,
    ExportStep,
    PruneStep,
    QuantizeStep,
    Recipe,
    Step,
    native_format,
)
from edgeship.runtime.formats import FORMATS, runtime_hints

# The device part of a profile backend entry -> the compute unit it runs on.
DEVICE_UNITS: dict[str, str] = {
    "CPU": "cpu", "CPUExecutionProvider": "cpu",
    "GPU": "gpu", "gpu": "gpu", "CUDAExecutionProvider": "gpu", "TensorrtExecutionProvider": "gpu",
    "ROCMExecutionProvider": "gpu", "MIGraphXExecutionProvider": "gpu",
    "NPU": "npu", "DLA": "npu", "edgetpu": "tpu",
}

# Formats a model can reach from what the user gave (torch: every exporter; ONNX too, via
# onnx2torch for the torch-only exporters; an IR or a .tflite only stays what it is).
REACHABLE: dict[str, tuple[str, ...]] = {
    "torch": tuple(FORMATS), "onnx": tuple(FORMATS), "openvino": ("openvino",),
    "tflite": ("tflite",),
}
PRUNE_SPARSITIES = (0.25, 0.5)
# A pruned student needs about this many optimizer steps (batch 64) of distillation to recover:
# small data sets get more epochs, large ones fewer, within DISTILL_EPOCHS.
DISTILL_STEPS = 3000
DISTILL_EPOCHS = (10, 40)
# Structured pruning removes whole channels: the network must be retrained to recover, and a
# big network distilled from a few samples memorises them (EfficientNet-Lite0 pruned 25/50 % and
# distilled on 144 photo crops lost 80-84 pt), while a small one recovers from a few hundred
# (the digits CNN, ~300 samples: 0.28 pt).  So: at least MIN_TRAINING_SAMPLES samples, and one
# per SAMPLE_PER_PARAMS parameters (4 600 for EfficientNet-Lite0's 4.6 M).
MIN_TRAINING_SAMPLES = 100
SAMPLE_PER_PARAMS = 1000


@dataclass(frozen=True)
class Engine:
    """A format and the backend entry that runs it, on one compute unit."""

    format: str
    backend: str  # name[:device], as the profile spells it
    unit: str  # cpu | gpu | npu | tpu
    precisions: tuple[str, ...]

    @property
    def tag(self) -> str:
        """Short and unique within a plan: the format, the backend when it is not the format's
        own (OpenVINO running ONNX), the device when it is not the CPU."""
        name, _, device = self.backend.partition(":")
        parts = [self.format]
        if name != FORMATS[self.format].backends[0]:
            parts.append(name)
        if device and self.unit != "cpu":
            parts.append(device.replace("ExecutionProvider", "").lower())
        return "-".join(parts)

    @property
    def quantizer(self) -> str:
        """The ``edgeship.quantize`` backend that writes this format."""
        return FORMATS[self.format].backends[0]


@dataclass(frozen=True)
class Variant:
    """A way of making a model cheaper, and what it needs."""

    key: str
    precision: str  # the precision the engine's unit must list
    cost: int  # ordering: cheap first
    mode: Optional[str] = None  # quantize mode; None: no quantization
    hint: bool = False  # a runtime precision hint on the fp32 file (formats.runtime_hints)
    accuracy_aware: bool = False
    units: tuple[str, ...] = ("cpu", "gpu", "npu", "tpu")
    quantizers: Optional[tuple[str, ...]] = None  # quantize backends that implement it (None: all)
    only_if_missed: Optional[str] = None  # the variant whose failure this one answers
    why: str = ""


VARIANTS: tuple[Variant, ...] = (
    Variant("fp32", "fp32", 10, why="the model as it is, in the engine's format"),
    Variant("bf16", "bf16", 20, hint=True,
            why="bf16 inference (AVX512-BF16/AMX): a runtime precision hint, the file stays fp32"),
    Variant("int8-dynamic", "int8", 30, mode="dynamic",
            why="int8 weights, activations quantized at run time: pays on MatMul-heavy models"),
    Variant("int8", "int8", 40, mode="static",
            why="int8 static, per-channel weights, activations calibrated on the data"),
    Variant("fp16", "fp16", 50, mode="fp16", units=("gpu", "npu", "tpu"),
            why="fp16 weights for accelerators (CPUs upcast fp16 files to fp32 kernels)"),
    # litert-torch's int8 has no per-layer fp32 fallback (converters/quantize/tflite.py)
    Variant("int8-accuracy", "int8", 60, mode="static", accuracy_aware=True,
            quantizers=("onnxruntime", "openvino"), only_if_missed="int8",
            why="int8 keeping the most sensitive layers in fp32 until the accuracy budget holds"),
)


@dataclass(frozen=True)
class ModelFacts:
    """What the planner needs to know about the model and the data."""

    source_format: str  # torch | onnx | openvino | tflite
    conv_share: Optional[float] = None  # share of MACs in convolutions (None: unknown)
    labelled: bool = False
    training_samples: int = 0  # samples for calibration/distillation beside the evaluation set
    max_accuracy_drop: Optional[float] = None
    params: Optional[int] = None  # weights in the model (None: unknown)
    class_scores: bool = True  # the fidelity judge is classification (accuracy means something)
    quantized: Optional[str] = None  # why the model is integer-quantized already (None: it is not)

    @property
    def samples_to_recover(self) -> int:
        """Training samples a structurally pruned model needs to be retrained on."""
        return max(MIN_TRAINING_SAMPLES, (self.params or 0) // SAMPLE_PER_PARAMS)

    @property
    def torch_possible(self) -> bool:
        return self.source_format in ("torch", "onnx")


@dataclass
class Plan:
    planned: list[Planned]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (candidate, reason)
    engines: list[Engine] = field(default_factory=list)
    threads: Any = None  # the profile's ThreadChoice: how many threads, on which cores, why

    @property
    def recipes(self) -> list[Recipe]:
        return [p.recipe for p in self.planned]


def engines(profile: Any, cpu_flags: Optional[Collection[str]] = None) -> list[Engine]:
    """Every (format, backend entry) the profile prefers, in its order of formats.  CPU
    precisions follow the device's reported ``cpu_flags`` (None: not probed, so only the
    profile's unconditional ones)."""
    found = []
    for fmt_name in profile.formats:
        for entry in profile.backends:
            name, _, device = entry.partition(":")
            if name not in FORMATS[fmt_name].backends:
                continue
            native = native_format(name)
            if native != fmt_name and native in profile.formats:
                continue
            unit = DEVICE_UNITS.get(device, "cpu") if device else "cpu"
            precisions = _unit_precisions(profile, unit, cpu_flags)
            if precisions:
                found.append(Engine(fmt_name, entry, unit, precisions))
    return found


def _unit_precisions(profile: Any, unit: str,
                     cpu_flags: Optional[Collection[str]] = None) -> tuple[str, ...]:
    if unit == "cpu":
        return tuple(profile.cpu_precisions(cpu_flags))
    seen: list[str] = []
    for acc in profile.accelerators:
        if acc.kind == unit and acc.drivable:
            seen += [p for p in acc.precisions if p not in seen]
    return tuple(seen)


def _quantize_supported(mode: str, backend: str, accuracy_aware: bool) -> Optional[str]:
    """None when the converters accept this combination, else their reason (one line)."""
    from edgeship.converters.quantize.config import QuantizeConfig
    from edgeship.core.errors import EdgeshipError

    try:
        QuantizeConfig(mode=mode, backend=backend,  # type: ignore[arg-type]
                       max_accuracy_drop=1.0 if accuracy_aware else None)
    except EdgeshipError as exc:
        return exc.problem
    return None


def _why_not(variant: Variant, engine: Engine, facts: ModelFacts) -> Optional[str]:
    """Why this variant does not apply to this engine and model (None: it does)."""
    if engine.format not in REACHABLE[facts.source_format]:
        return f"a {facts.source_format} model cannot be converted to {engine.format} here"
    if engine.unit not in variant.units:
        return f"{variant.key} is for {'/'.join(variant.units)} units, {engine.backend} is a {engine.unit}"
    if variant.precision not in engine.precisions:
        return f"the device's {engine.unit} does not list {variant.precision}"
    if variant.hint:
        hints = runtime_hints(engine.backend)
        return None if variant.precision in hints else \
            f"{engine.backend} takes no {variant.precision} precision hint"
    if variant.mode is None:
        return None
    if facts.source_format == "tflite":
        return "a .tflite model cannot be quantized again"
    if facts.quantized:
        return f"the model is already quantized ({facts.quantized}): quantizing it again is a no-op"
    if engine.quantizer == "tflite" and not facts.torch_possible:
        return "TFLite quantization starts from a torch model"
    if variant.quantizers is not None and engine.quantizer not in variant.quantizers:
        return f"{variant.key} is implemented for {'/'.join(variant.quantizers)} quantization only"
    reason = _quantize_supported(variant.mode, engine.quantizer, variant.accuracy_aware)
    if reason:
        return reason
    if variant.mode == "dynamic" and facts.conv_share is not None:
        from edgeship.converters.quantize.ort import CONV_DOMINATED

        if facts.conv_share > CONV_DOMINATED:
            return (f"{facts.conv_share:.0%} of the MACs are convolutions: dynamic int8 runs "
                    "ConvInteger, slower than fp32 (static int8 is the conv path)")
    if variant.accuracy_aware and not facts.class_scores:
        return ("accuracy-aware int8 searches on top-1 accuracy, and these outputs are not class "
                "scores")
    if variant.accuracy_aware and (facts.max_accuracy_drop is None or not facts.training_samples):
        return ("accuracy-aware int8 needs --max-accuracy-drop and training samples apart from "
                "the evaluation ones")
    return None


def ort_int8_types(profile: Any) -> tuple[str, bool, str]:
    """onnxruntime static int8 for this CPU: (activation type, 7-bit weights, why).  x86 with
    VNNI: u8s8, full range (vpdpbusd multiplies u8 by s8 without saturating); x86 without VNNI:
    u8s8 with 7-bit weights (vpmaddubsw's int16 sums saturate, onnxruntime's own advice);
    elsewhere u8s8, the kernels onnxruntime has on every CPU (s8s8 ran 3.3x slower on x86)."""
    isa = set(getattr(profile.cpu, "isa", None) or ())
    if str(getattr(profile, "arch", "")).startswith("x86"):
        if isa & {"avx512_vnni", "avx_vnni", "avxvnni"}:
            return "uint8", False, "u8s8 on VNNI (vpdpbusd: u8 activations x s8 weights)"
        return "uint8", True, "u8s8 with 7-bit weights: x86 without VNNI saturates int16 sums"
    return "uint8", False, "u8s8: onnxruntime's int8 kernels on every CPU"


def variant_steps(variant: Variant, engine: Engine, facts: ModelFacts,
                  profile: Any = None) -> tuple[Step, ...]:
    """The steps of a precision variant on an engine."""
    if variant.mode is not None:
        types: dict[str, Any] = {}
        if engine.quantizer == "onnxruntime" and variant.mode == "static" and profile is not None:
            activations, reduce_range, _ = ort_int8_types(profile)
            types = {"activations": activations, "reduce_range": reduce_range}
        return (QuantizeStep(mode=variant.mode, backend=engine.quantizer,  # type: ignore[arg-type]
                             accuracy_aware=variant.accuracy_aware, **types),)
    if engine.format == facts.source_format:
        # the model as given; an ONNX file still goes through export for its checked manifest
        return (ExportStep(to="onnx"),) if engine.format == "onnx" else ()
    return (ExportStep(to=engine.format),)  # type: ignore[arg-type]


def plan_recipes(profile: Any, facts: ModelFacts,
                 cpu_flags: Optional[Collection[str]] = None) -> Plan:
    """Precision candidates for every engine of ``profile``, cheapest first; CPU precisions
    from the device's reported ``cpu_flags``; every accelerator no engine runs on is listed
    in ``skipped`` (the result's ``not_planned``) with the reason."""
    plan = Plan(planned=[], engines=engines(profile, cpu_flags), threads=profile.thread_choice())
    given = "onnx" if facts.source_format == "torch" else facts.source_format
    plan.skipped += profile.unplanned_accelerators({e.backend for e in plan.engines})
    for variant in VARIANTS:
        for engine in plan.engines:
            name = f"{variant.key}-{engine.tag}"
            reason = _why_not(variant, engine, facts)
            if reason:
                plan.skipped.append((name, reason))
                continue
            hint = _hint(variant.precision if variant.mode is None else None, engine)
            note = variant.why
            if engine.quantizer == "onnxruntime" and variant.mode == "static":
                note += f"; QDQ {ort_int8_types(profile)[2]}"
            recipe = Recipe(
                name=name, steps=variant_steps(variant, engine, facts, profile),
                backend=engine.backend,
                precision=hint,  # type: ignore[arg-type]
                only_if_missed=f"{variant.only_if_missed}-{engine.tag}" if variant.only_if_missed
                else None,
                note=note, cost=variant.cost)
            # the model as it is: fp32, in the format it came in, on that format's own CPU backend
            as_given = (variant.mode is None and not variant.hint and engine.format == given
                        and engine.tag == engine.format)
            plan.planned.append(Planned.of(recipe, variant.precision, unit=engine.unit,
                                           engine=engine.tag, as_given=as_given, why=note))
    _drop_orphans(plan)
    return plan


def _hint(precision: Optional[str], engine: Engine) -> Optional[str]:
    """The runtime precision to ask for: explicit where the backend would otherwise choose
    (OpenVINO picks bf16 on some CPUs by itself, which would make 'fp32' a lie)."""
    if precision is None:
        return None
    hints = runtime_hints(engine.backend)
    return precision if precision in hints else None


def _drop_orphans(plan: Plan) -> None:
    """A fallback whose primary was not planned has nothing to fall back from."""
    names = {p.name for p in plan.planned}
    kept = []
    for p in plan.planned:
        primary = p.recipe.only_if_missed
        if primary and primary not in names:
            plan.skipped.append((p.name, f"its primary {primary} was not planned"))
        else:
            kept.append(p)
    plan.planned = kept


def distill_epochs(samples: int, batch: int = 64) -> int:
    """Epochs that give a distillation about DISTILL_STEPS optimizer steps."""
    per_epoch = max(1, math.ceil(samples / batch))
    low, high = DISTILL_EPOCHS
    return min(high, max(low, math.ceil(DISTILL_STEPS / per_epoch)))


def structural_candidates(
    plan: Plan,
    facts: ModelFacts,
    fastest: Mapping[str, str],
    sparsities: Sequence[float] = PRUNE_SPARSITIES,
) -> list[Planned]:
    """Structured prune + distill candidates, on the engine that measured fastest for each
    precision (``fastest``: "fp32"/"int8" -> engine tag); they run after the precision ones.

    Needs a torch-convertible model and training samples; otherwise records why not."""
    by_tag = {e.tag: e for e in plan.engines}
    recipes: list[Planned] = []
    for sparsity in sparsities:
        for precision in ("fp32", "int8"):
            name = f"pruned{round(sparsity * 100)}-{precision}"
            reason = None
            if not facts.torch_possible:
                reason = "pruning and distillation need a torch model or an ONNX onnx2torch reads"
            elif not facts.class_scores:
                reason = "distillation here matches class probabilities; these outputs are not"
            elif facts.training_samples < facts.samples_to_recover:
                reason = (f"structured pruning needs at least {facts.samples_to_recover} training "
                          f"samples apart from the evaluation ones to recover by distillation "
                          f"(max({MIN_TRAINING_SAMPLES}, 1 per {SAMPLE_PER_PARAMS} parameters)), "
                          f"have {facts.training_samples} (--train-data)")
            elif precision not in fastest or fastest[precision] not in by_tag:
                reason = f"no {precision} candidate succeeded to pick an engine from"
            if reason:
                plan.skipped.append((name, reason))
                continue
            engine = by_tag[fastest[precision]]
            head: tuple[Step, ...] = (PruneStep(sparsity=sparsity),
                                      DistillStep(epochs=distill_epochs(facts.training_samples)))
            if precision == "int8":
                tail: tuple[Step, ...] = (QuantizeStep(mode="static", backend=engine.quantizer),)  # type: ignore[arg-type]
            else:
                tail = (ExportStep(to=engine.format),)  # type: ignore[arg-type]
            recipe = Recipe(
                name=f"{name}-{engine.tag}", steps=head + tail, backend=engine.backend,
                precision=_hint(precision if precision == "fp32" else None, engine),  # type: ignore[arg-type]
                note=f"{sparsity:.0%} of each layer's channels removed, distilled from the "
                     f"original, {precision} on the fastest {precision} engine",
                cost=100 + round(sparsity * 100) + (1 if precision == "int8" else 0))
            recipes.append(Planned.of(recipe, precision, unit=engine.unit, engine=engine.tag,
                                      structural=True))
    return recipes

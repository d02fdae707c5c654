"""The DeviceProfile schema: a target device as data (DESIGN.md, Nouns).

Profiles are YAML files beside this module; ``edgeship.profiles`` loads and matches them.
Figures are vendors' published specifications; every factual field is named by a ``sources``
entry that states it (``DeviceProfile.unsourced()`` lists those that are not).  A figure the
vendor does not publish stays null.  ``budgets``, ``formats`` and ``backends`` are edgeship's
choices for the device, not vendor figures: override budgets with the budget flags.

What planning reads beyond the hardware: the CPU's precisions (some only when the device reports
a CPU flag, ``cpu.conditional_precisions``), its core clusters (which cores to run on), each
accelerator's model format, compiler and whether edgeship drives it today, the OS's software
(Python, JetPack/CUDA, where wheels come from) and variants (RAM, power modes, board revisions,
modules, a 32-bit userland).

Example:
    >>> from edgeship.profiles import load_profile
    >>> load_profile("raspberry-pi-4").cpu.cores                      # doctest: +SKIP
    4
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Optional

from edgeship.device_profiles.isa import ISA_FLAGS, features_of
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Arch = Literal["aarch64", "armv7l", "x86_64", "riscv64"]
Precision = Literal["fp32", "tf32", "fp16", "bf16", "int16", "int8", "uint8", "int4"]
# The model file an accelerator executes, and so what a plan would have to produce for it.
ModelFormat = Literal["onnx", "openvino-ir", "tflite", "edgetpu-tflite", "rknn",
                      "tensorrt-engine"]
_ID = r"^[a-z0-9][a-z0-9-]*$"

__all__ = ["ISA_FLAGS", "Accelerator", "Cpu", "DeviceProfile", "Peak", "Source", "Variant"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_isa(value: list[str]) -> list[str]:
    unknown = [f for f in value if f not in ISA_FLAGS]
    if unknown:
        raise ValueError(f"unknown ISA feature(s) {unknown}; known: {', '.join(ISA_FLAGS)}")
    return value


class Peak(_Strict):
    """A published peak throughput, saying whether it counts structured sparsity."""

    precision: Precision = Field(description="the precision of the figure, e.g. int8")
    gops: float = Field(gt=0, description="giga-operations per second, e.g. 85000 for 85 TOPS")
    sparsity: Literal["dense", "sparse", "unstated"] = Field(
        description="dense, sparse (NVIDIA's 2:4 structured-sparsity figures are twice dense), or "
                    "unstated when the vendor does not say which")
    mode: Optional[str] = Field(default=None,
                                description="the power mode or variant the figure is for")


class CoreCluster(_Strict):
    """Cores of one kind (a big.LITTLE cluster, Intel P/E/LP E-cores) with their own clock."""

    name: str = Field(description="the core as the vendor names it, e.g. Cortex-A76, P-core")
    role: Literal["performance", "efficiency", "low-power"] = Field(
        description="performance, efficiency or low-power")
    count: int = Field(ge=1, description="cores in the cluster, an integer ≥ 1")
    max_mhz: Optional[float] = Field(default=None, gt=0, description="its maximum clock in MHz")
    part: Optional[str] = Field(default=None,
                                description="Arm 'CPU implementer:CPU part' id, e.g. 0x41:0xd0b")
    isa: list[str] = Field(default_factory=list,
                           description="ISA features this cluster adds or lacks vs cpu.isa")

    _isa = field_validator("isa")(classmethod(lambda cls, v: _known_isa(v)))


class ConditionalPrecision(_Strict):
    """A precision the CPU runs well only when the device reports these ISA features."""

    precision: Precision = Field(description="e.g. bf16")
    requires: list[str] = Field(min_length=1,
                                description="ISA features that must all be present, e.g. "
                                            "[avx512_bf16]")

    _isa = field_validator("requires")(classmethod(lambda cls, v: _known_isa(v)))


class Cpu(_Strict):
    """The application CPU."""

    model: str = Field(description="the SoC/CPU as the vendor names it, e.g. 'BCM2711, 4x Cortex-A72'")
    cores: Optional[int] = Field(
        default=None, ge=1, description="the number of CPU cores, an integer ≥ 1 (null if it varies)"
    )
    max_mhz: Optional[float] = Field(
        default=None, gt=0, description="the published maximum clock in MHz, a number (or null)"
    )
    isa: list[str] = Field(
        default_factory=list, description=f"ISA features, any of: {', '.join(ISA_FLAGS)}"
    )
    precisions: list[Precision] = Field(
        min_length=1, description="precisions every device of this profile's CPU runs well"
    )
    conditional_precisions: list[ConditionalPrecision] = Field(
        default_factory=list,
        description="precisions that depend on a CPU flag, e.g. [{precision: bf16, requires: "
                    "[avx512_bf16]}]")
    clusters: list[CoreCluster] = Field(
        default_factory=list, description="core clusters when the cores differ (big.LITTLE, P/E)")
    peaks: list[Peak] = Field(default_factory=list, description="published peak throughput")

    _isa = field_validator("isa")(classmethod(lambda cls, v: _known_isa(v)))

    @model_validator(mode="after")
    def _consistent(self) -> Cpu:
        if self.clusters and self.cores and sum(c.count for c in self.clusters) != self.cores:
            raise ValueError(f"clusters hold {sum(c.count for c in self.clusters)} cores, "
                             f"cpu.cores says {self.cores}")
        _peaks_listed(self.peaks, self.precisions + [c.precision
                                                     for c in self.conditional_precisions])
        return self


def _peaks_listed(peaks: list[Peak], precisions: Collection[str]) -> None:
    extra = sorted({p.precision for p in peaks} - set(precisions))
    if extra:
        raise ValueError(f"peaks name precisions {extra} missing from precisions")


class Accelerator(_Strict):
    """A GPU, NPU or TPU beside the CPU: what it runs, what it needs, and whether edgeship
    can drive it today (a plan lists one it cannot under ``not_planned``, with the reason)."""

    id: str = Field(pattern=_ID, description="short id used in source paths, e.g. gpu, dla")
    kind: Literal["gpu", "npu", "tpu"] = Field(description="one of gpu, npu, tpu")
    name: str = Field(description="the accelerator as the vendor names it")
    backend: str = Field(
        description="the profile backend entry that reaches it (e.g. openvino:NPU, "
                    "onnxruntime:TensorrtExecutionProvider), or the vendor runtime when "
                    "edgeship cannot drive it (rknn, tflite:edgetpu)")
    precisions: list[Precision] = Field(
        min_length=1, description="precisions its toolchain produces for this chip, e.g. [int8]")
    hardware_precisions: list[Precision] = Field(
        default_factory=list,
        description="precisions the datasheet lists when the toolchain offers fewer")
    peaks: list[Peak] = Field(default_factory=list, description="published peak throughput")
    model_format: ModelFormat = Field(
        description=f"the model file it executes: {', '.join(ModelFormat.__args__)}")  # type: ignore[attr-defined]
    compiler: Optional[str] = Field(
        default=None, description="the tool that makes that file, e.g. edgetpu_compiler")
    drivable: bool = Field(description="whether edgeship can run models on it today")
    not_drivable_because: Optional[str] = Field(
        default=None, description="why edgeship cannot drive it (required when drivable is false)")
    notes: Optional[str] = Field(default=None, description="anything else planning should know")

    @model_validator(mode="after")
    def _consistent(self) -> Accelerator:
        _peaks_listed(self.peaks, self.precisions + self.hardware_precisions)
        if not self.drivable and not self.not_drivable_because:
            raise ValueError("an accelerator edgeship cannot drive needs not_drivable_because")
        if self.drivable and self.not_drivable_because:
            raise ValueError("not_drivable_because is set on a drivable accelerator")
        return self


class Software(_Strict):
    """What the device's OS ships, which provisioning and planning must live with."""

    os: Optional[str] = Field(default=None, description="e.g. 'JetPack 4.6 (Ubuntu 18.04)'")
    python: Optional[str] = Field(default=None, pattern=r"^\d+\.\d+$",
                                  description="the OS's python3 version, e.g. '3.6'")
    jetpack: Optional[str] = Field(default=None, description="JetPack version, e.g. '6.1'")
    cuda: Optional[str] = Field(default=None, description="CUDA version, e.g. '12.6'")
    wheel_index: Optional[str] = Field(
        default=None, description="an extra pip index with device builds, e.g. Jetson AI Lab")
    wheel_index_for: list[str] = Field(
        default_factory=list, description="distributions to take from wheel_index")
    notes: Optional[str] = Field(default=None, description="what this means for edgeship")


class Variant(_Strict):
    """A version of the device that differs in a planning fact (RAM, power mode, module,
    board revision, userland); the top-level fields describe the default one."""

    id: str = Field(pattern=_ID, description="short id, e.g. 32gb, 15w, rev-1.2")
    kind: Literal["memory", "power-mode", "module", "revision", "userland"] = Field(
        description="memory, power-mode, module, revision or userland")
    name: str = Field(description="as the vendor names it")
    memory_mb: Optional[int] = Field(default=None, ge=1)
    cpu_cores: Optional[int] = Field(default=None, ge=1)
    cpu_max_mhz: Optional[float] = Field(default=None, gt=0)
    power_w: Optional[float] = Field(default=None, gt=0)
    arch: Optional[Arch] = Field(default=None, description="the userland's architecture")
    peaks: dict[str, list[Peak]] = Field(
        default_factory=dict, description="accelerator id -> its peaks in this variant")
    notes: Optional[str] = None


class Source(_Strict):
    """A document and the fields it states."""

    ref: str = Field(description="a URL or a document's full title")
    states: list[str] = Field(min_length=1,
                              description="field paths it states, e.g. [cpu.cores, memory_mb]")


class Budgets(_Strict):
    """Default budgets for the device; every one optional.

    An accuracy drop is the task's tolerance rather than the device's, so bundled profiles leave
    ``max_accuracy_drop`` unset; a user profile may set it for `compress`.
    """

    max_latency_ms: Optional[float] = Field(default=None, gt=0, description="a number of ms > 0")
    max_memory_mb: Optional[float] = Field(default=None, gt=0, description="a number of MB > 0")
    max_size_mb: Optional[float] = Field(default=None, gt=0, description="a number of MB > 0")
    max_accuracy_drop: Optional[float] = Field(
        default=None, gt=0, description="accuracy points > 0"
    )


class Match(_Strict):
    """How `edgeship profiles detect` recognises the device from probe facts."""

    device_model: list[str] = Field(
        default_factory=list,
        description="substrings of /proc/device-tree/model or cpuinfo 'Model', e.g. 'Raspberry Pi 4'",
    )
    cpu_model: list[str] = Field(
        default_factory=list, description="substrings of the CPU model name, e.g. 'Core(TM) Ultra'"
    )
    cpu_model_regex: list[str] = Field(
        default_factory=list,
        description="regular expressions searched in the CPU model name, e.g. 'Ultra [579] 1\\d\\dH'",
    )
    cpu_parts: list[str] = Field(
        default_factory=list,
        description="cpuinfo 'CPU implementer:CPU part' ids that must all be present, e.g. 0x41:0xd08",
    )
    cpu_flags: list[str] = Field(
        default_factory=list,
        description="cpuinfo flags required beyond those cpu.isa implies, e.g. [crc32]",
    )

    @field_validator("cpu_model_regex")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        import re

        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"cpu_model pattern '{pattern}' is not a regular expression: "
                                 f"{exc}") from None
        return value

    @field_validator("cpu_parts")
    @classmethod
    def _part_ids(cls, value: list[str]) -> list[str]:
        for part in value:
            impl, sep, pid = part.partition(":")
            if not (sep and impl.startswith("0x") and pid.startswith("0x")):
                raise ValueError(f"cpu part '{part}' must look like 0x41:0xd08 (implementer:part)")
        return [p.lower() for p in value]


@dataclass(frozen=True)
class ThreadChoice:
    """How many threads to run, on which cores, and why."""

    threads: Optional[int]
    cores: str  # e.g. "4x Cortex-A76 (performance)"
    why: str


class DeviceProfile(_Strict):
    """A target device: what it computes with, what it runs best, and how to recognise it."""

    name: str = Field(pattern=_ID, description="lower-case id, e.g. raspberry-pi-4")
    display_name: str = Field(description="the product's name, e.g. 'Raspberry Pi 4 Model B'")
    description: str = Field(default="", description="one or two sentences")
    arch: Arch = Field(description="one of aarch64, armv7l, x86_64, riscv64")
    cpu: Cpu
    accelerators: list[Accelerator] = Field(default_factory=list)
    memory_mb: Optional[int] = Field(
        default=None, ge=1, description="RAM in MB of the variant described (null if it varies)"
    )
    software: Software = Field(default_factory=Software)
    variants: list[Variant] = Field(default_factory=list)
    formats: list[str] = Field(
        min_length=1, description="model formats in order of preference: onnx, openvino, tflite"
    )
    backends: list[str] = Field(
        min_length=1,
        description="edgeship backends in order of preference, e.g. [tflite, onnxruntime]",
    )
    budgets: Budgets = Field(default_factory=Budgets)
    match: Match = Field(default_factory=Match)
    sources: list[Source] = Field(
        default_factory=list, description="documents and the field paths each states")

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        from edgeship.runtime.formats import FORMATS

        unknown = [f for f in value if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; use any of: {', '.join(FORMATS)}")
        if len(set(value)) != len(value):
            raise ValueError("formats are listed more than once")
        return value

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, value: list[str]) -> list[str]:
        from edgeship.runtime.formats import BACKENDS

        unknown = [b for b in value if b.partition(":")[0] not in BACKENDS]
        if unknown:
            raise ValueError(
                f"unknown backend(s) {unknown}; use {', '.join(BACKENDS)}, optionally NAME:DEVICE"
            )
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> DeviceProfile:
        ids = [a.id for a in self.accelerators]
        if len(set(ids)) != len(ids):
            raise ValueError(f"accelerator ids repeat: {ids}")
        for v in self.variants:
            unknown = sorted(set(v.peaks) - set(ids))
            if unknown:
                raise ValueError(f"variant {v.id} gives peaks for unknown accelerators {unknown}")
        for a in self.accelerators:
            if a.drivable and a.backend not in self.backends:
                raise ValueError(f"accelerator {a.id} is drivable through {a.backend}, which is "
                                 "not in backends")
        known = set(self.field_paths())
        for source in self.sources:
            bad = [p for p in source.states if p not in known]
            if bad:
                raise ValueError(f"source '{source.ref[:40]}' states unknown field(s) {bad}; "
                                 f"known: {', '.join(sorted(known))}")
        return self

    # ------------------------------------------------------------------ facts and sources

    def field_paths(self) -> list[str]:
        """Every factual field path this profile sets (what ``sources`` must cover)."""
        cpu = self.cpu
        paths = ["arch", "cpu.model", "cpu.precisions"]
        paths += [f"cpu.{k}" for k in ("cores", "max_mhz", "isa", "conditional_precisions",
                                       "clusters", "peaks") if getattr(cpu, k)]
        paths += ["memory_mb"] if self.memory_mb else []
        paths += ["match.cpu_parts"] if self.match.cpu_parts else []
        for a in self.accelerators:
            paths += [f"accelerators.{a.id}.{k}" for k in
                      ("name", "precisions", "hardware_precisions", "peaks", "model_format",
                       "compiler", "drivable") if getattr(a, k) not in (None, [])]
        paths += [f"software.{k}" for k, v in self.software.model_dump().items()
                  if v not in (None, [])]
        paths += [f"variants.{v.id}" for v in self.variants]
        return paths

    def unsourced(self) -> list[str]:
        """Factual fields no source states."""
        stated = {p for s in self.sources for p in s.states}
        return [p for p in self.field_paths() if p not in stated]

    # ------------------------------------------------------------------------- planning

    @property
    def precisions(self) -> list[str]:
        """Every precision the CPU (unconditionally) or an accelerator runs, CPU's first."""
        seen: list[str] = list(self.cpu.precisions)
        for acc in self.accelerators:
            seen += [p for p in acc.precisions if p not in seen]
        return seen

    def cpu_precisions(self, flags: Optional[Collection[str]] = None) -> list[str]:
        """The CPU's precisions on a device reporting these /proc/cpuinfo flags: the profile's
        unconditional ones, plus each conditional one whose features the flags announce.
        Without flags (the device was not probed) only the unconditional ones."""
        found = set(self.cpu.precisions)
        have = set(features_of(flags)) if flags is not None else set()
        found |= {c.precision for c in self.cpu.conditional_precisions
                  if set(c.requires) <= have}
        order = Precision.__args__  # type: ignore[attr-defined]
        return [p for p in order if p in found]

    def unplanned_accelerators(self, planned_backends: Collection[str]) -> list[tuple[str, str]]:
        """(accelerator, reason) for every accelerator no planned engine runs on."""
        out = []
        for a in self.accelerators:
            label = f"accelerator {a.id} ({a.name})"
            if not a.drivable:
                out.append((label, f"needs {a.model_format}"
                            + (f" from {a.compiler}" if a.compiler else "")
                            + f": {a.not_drivable_because}"))
            elif a.backend not in planned_backends:
                out.append((label, f"no format of the profile runs on {a.backend}"))
        return out

    def thread_choice(self) -> ThreadChoice:
        """Threads for inference: the performance cores, when clusters differ (a thread on a
        little core holds the big ones back at every barrier); else every core."""
        perf = [c for c in self.cpu.clusters if c.role == "performance"]
        if not perf:
            return ThreadChoice(self.cpu.cores, f"all {self.cpu.cores} cores" if self.cpu.cores
                                else "every core", "the cores are alike")
        count = sum(c.count for c in perf)
        names = " + ".join(f"{c.count}x {c.name}" for c in perf)
        others = " + ".join(f"{c.count}x {c.name}" for c in self.cpu.clusters if c not in perf)
        return ThreadChoice(count, f"{names} (performance)",
                            f"{others} are slower: threads there hold the fast ones back")

    def variants_for(self, facts: Mapping[str, Any]) -> list[Variant]:
        """The variants these probe facts show (RAM size, module, revision, userland); a
        power mode is not visible in the probe facts."""
        return [v for v in self.variants if _shows(v, facts, self.arch)]

    def default_budget_dict(self) -> dict[str, float]:
        """The default budgets that are set, e.g. ``{"max_latency_ms": 100.0}``."""
        return {k: float(v) for k, v in self.budgets.model_dump().items() if v is not None}


def _shows(v: Variant, facts: Mapping[str, Any], arch: str) -> bool:
    memory = facts.get("memory_total_mb")
    if v.kind == "userland":
        return bool(v.arch and v.arch != arch and facts.get("userland") == v.arch)
    if v.kind == "module":
        return bool(v.cpu_cores and facts.get("cpu_count") == v.cpu_cores)
    if v.kind == "memory":  # the kernel reserves some RAM: MemTotal is a little under the size
        return bool(v.memory_mb and memory and 0.85 * v.memory_mb <= memory <= v.memory_mb)
    if v.kind == "revision":
        return bool(v.cpu_max_mhz and facts.get("cpu_max_mhz") == v.cpu_max_mhz)
    return False

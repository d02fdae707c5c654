"""The DeviceProfile schema: a target device as data (DESIGN.md, Nouns).

Profiles are YAML files beside this module; ``edgeship.profiles`` loads and matches them.
Figures are vendors' published specifications, each profile citing them in ``sources``; a figure
the vendor does not publish stays null.  ``budgets`` are edgeship's starting points for the
device (not vendor figures): override them with the budget flags.

Example:
    >>> from edgeship.profiles import load_profile
    >>> load_profile("raspberry-pi-4").cpu.cores                      # doctest: +SKIP
    4
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Arch = Literal["aarch64", "armv7l", "x86_64", "riscv64"]
Precision = Literal["fp32", "fp16", "bf16", "int8", "int4"]

# ISA feature (as profiles name it) -> the /proc/cpuinfo flags that announce it, any of them.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "neon": ("asimd", "neon"),
    "fp16": ("asimdhp",),
    "dotprod": ("asimddp",),
    "i8mm": ("i8mm",),
    "bf16": ("bf16",),
    "sve": ("sve",),
    "sve2": ("sve2",),
    "sme": ("sme",),
    "avx2": ("avx2",),
    "fma": ("fma",),
    "f16c": ("f16c",),
    "avx_vnni": ("avx_vnni",),
    "avx512f": ("avx512f",),
    "avx512bw": ("avx512bw",),
    "avx512vl": ("avx512vl",),
    "avx512_vnni": ("avx512_vnni",),
    "avx512_bf16": ("avx512_bf16",),
    "avx512_fp16": ("avx512_fp16",),
    "amx_tile": ("amx_tile",),
    "amx_int8": ("amx_int8",),
    "amx_bf16": ("amx_bf16",),
    "amx_fp16": ("amx_fp16",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
        min_length=1, description="precisions the CPU runs well, e.g. [fp32, int8]"
    )
    peak_gops: dict[Precision, Optional[float]] = Field(
        default_factory=dict, description="published peak GOPS per precision, e.g. {int8: 6000}"
    )

    @field_validator("isa")
    @classmethod
    def _known_isa(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in ISA_FLAGS]
        if unknown:
            raise ValueError(f"unknown ISA feature(s) {unknown}; known: {', '.join(ISA_FLAGS)}")
        return value


class Accelerator(_Strict):
    """A GPU, NPU or TPU beside the CPU, and the runtime that drives it."""

    kind: Literal["gpu", "npu", "tpu"] = Field(description="one of gpu, npu, tpu")
    name: str = Field(description="the accelerator as the vendor names it")
    backend: str = Field(
        description="the runtime that drives it, e.g. openvino:GPU, tensorrt, rknn, tflite:edgetpu"
    )
    precisions: list[Precision] = Field(min_length=1, description="precisions it runs, e.g. [int8]")
    peak_gops: dict[Precision, Optional[float]] = Field(
        default_factory=dict, description="published peak GOPS per precision (null if unpublished)"
    )
    notes: Optional[str] = Field(default=None, description="e.g. 'INT8 figure uses 2:4 sparsity'")

    @model_validator(mode="after")
    def _peaks_for_supported_precisions(self) -> Accelerator:
        extra = sorted(set(self.peak_gops) - set(self.precisions))
        if extra:
            raise ValueError(f"peak_gops names precisions {extra} missing from precisions")
        return self


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
    cpu_parts: list[str] = Field(
        default_factory=list,
        description="cpuinfo 'CPU implementer:CPU part' ids that must all be present, e.g. 0x41:0xd08",
    )
    cpu_flags: list[str] = Field(
        default_factory=list,
        description="cpuinfo flags required beyond those cpu.isa implies, e.g. [crc32]",
    )

    @field_validator("cpu_parts")
    @classmethod
    def _part_ids(cls, value: list[str]) -> list[str]:
        for part in value:
            impl, sep, pid = part.partition(":")
            if not (sep and impl.startswith("0x") and pid.startswith("0x")):
                raise ValueError(f"cpu part '{part}' must look like 0x41:0xd08 (implementer:part)")
        return [p.lower() for p in value]


class DeviceProfile(_Strict):
    """A target device: what it computes with, what it runs best, and how to recognise it."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$", description="lower-case id, e.g. raspberry-pi-4"
    )
    display_name: str = Field(description="the product's name, e.g. 'Raspberry Pi 4 Model B'")
    description: str = Field(default="", description="one or two sentences")
    arch: Arch = Field(description="one of aarch64, armv7l, x86_64, riscv64")
    cpu: Cpu
    accelerators: list[Accelerator] = Field(default_factory=list)
    memory_mb: Optional[int] = Field(
        default=None, ge=1, description="RAM in MB of the variant described (null if it varies)"
    )
    formats: list[str] = Field(
        min_length=1, description="model formats in order of preference: onnx, openvino, tflite"
    )
    backends: list[str] = Field(
        min_length=1,
        description="edgeship backends in order of preference, e.g. [tflite, onnxruntime]",
    )
    budgets: Budgets = Field(default_factory=Budgets)
    match: Match = Field(default_factory=Match)
    sources: list[str] = Field(
        default_factory=list, description="URLs or document names the figures come from"
    )

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

    @property
    def precisions(self) -> list[str]:
        """Every precision the CPU or an accelerator runs, CPU's first."""
        seen: list[str] = list(self.cpu.precisions)
        for acc in self.accelerators:
            seen += [p for p in acc.precisions if p not in seen]
        return seen

    def default_budget_dict(self) -> dict[str, float]:
        """The default budgets that are set, e.g. ``{"max_latency_ms": 100.0}``."""
        return {k: float(v) for k, v in self.budgets.model_dump().items() if v is not None}

"""``DeviceFacts``: what ``Target.probe()`` found on a machine, typed; a dict only at the JSON
edge (``to_dict``/``from_dict``), where recorded facts and the device's probe script meet it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from edgeship.runtime.results import CgroupLimits, HostFacts, known

_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64"}


def arch_of(machine: str) -> str:
    """``uname -m`` spelled the way profiles spell architectures (arm64 -> aarch64, ...)."""
    return _ARCH_ALIASES.get(machine.lower(), machine.lower())


@dataclass
class DeviceFacts(HostFacts):
    """A machine's facts: ``HostFacts`` (the keys of ``runtime.sysinfo.host_facts()``, the same
    ones a benchmark records) plus the probe's own (ISA flags, thermal zones, importable
    backends, accelerator nodes, numpy).  Every field is optional: recorded facts and old
    devices say less."""

    cpu_flags: list[str] = field(default_factory=list)
    cpu_max_mhz: Optional[float] = None
    thermal: dict[str, Any] = field(default_factory=dict)
    backends: Optional[dict[str, str]] = None  # None: not probed (recorded facts without them)
    accelerators: list[dict[str, Any]] = field(default_factory=list)
    numpy: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys a newer probe reports

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceFacts:  # type: ignore[override]
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known_keys = {k: v for k, v in data.items() if k in names and v is not None}
        # "userland" is derived (a property here); anything else unknown is kept as it came
        rest = {k: v for k, v in data.items() if k not in names and k not in ("userland", "extra")}
        facts = cls(**known_keys, extra={**dict(data.get("extra") or {}), **rest})
        facts.cpu_parts, facts.cpu_flags = list(facts.cpu_parts), list(facts.cpu_flags)
        facts.accelerators = list(facts.accelerators)
        if isinstance(facts.cgroup, Mapping):
            facts.cgroup = known(CgroupLimits, dict(facts.cgroup))
        return facts

    @classmethod
    def of(cls, facts: Union[DeviceFacts, Mapping[str, Any]]) -> DeviceFacts:
        """Facts as given to a public function: typed already, or a recorded JSON object."""
        return facts if isinstance(facts, DeviceFacts) else cls.from_dict(facts)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, the probe's own keys plus ``userland``."""
        data = dataclasses.asdict(self)
        data.update(data.pop("extra"))
        data["userland"] = self.userland
        return data

    @property
    def arch(self) -> Optional[str]:
        return arch_of(self.machine) if self.machine else None

    @property
    def userland(self) -> Optional[str]:
        """The architecture wheels must be built for: a 32-bit python on a 64-bit Arm kernel
        (32-bit Raspberry Pi OS) runs armv7l code although ``uname -m`` says aarch64."""
        arch = self.arch
        if arch is None:
            return None
        if arch in ("armv8l", "armv7l") or (arch == "aarch64" and self.python_bits == 32):
            return "armv7l"
        return arch

    @property
    def glibc(self) -> Optional[tuple[int, int]]:
        """(major, minor) of the device's glibc; None for another C library."""
        if not self.libc or not self.libc.startswith("glibc "):
            return None
        major, minor = self.libc.split()[1].split(".")[:2]
        return int(major), int(minor)

    @property
    def python_version(self) -> tuple[int, ...]:
        """The probing interpreter's version as numbers (empty when unknown)."""
        digits = [p for p in (self.python or "").split(".") if p.isdigit()]
        return tuple(int(p) for p in digits)

    @property
    def label(self) -> Optional[str]:
        """The device's name in words: its board model, else its CPU model."""
        return self.device_model or self.cpu_model

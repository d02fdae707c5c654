"""Facts about the machine the agent runs on, read from /proc and /sys (stdlib only)."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional


def _read(path: str | Path) -> Optional[str]:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _status_kb(field: str) -> Optional[int]:
    text = _read("/proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def rss_mb() -> Optional[float]:
    """Resident set size now (VmRSS), in MB."""
    kb = _status_kb("VmRSS")
    return kb / 1024 if kb is not None else None


def peak_rss_mb() -> tuple[float, str]:
    """Peak resident set size of this process, in MB, and where it was read from."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024, "VmHWM"
    # ru_maxrss is KiB on Linux, bytes on macOS
    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (raw / 1024 / 1024 if sys.platform == "darwin" else raw / 1024), "ru_maxrss"


def cpu_model() -> Optional[str]:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def cpu_flags() -> list[str]:
    """ISA feature flags (x86 'flags', Arm 'Features') of the first CPU."""
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key = line.split(":")[0].strip()
        if key in ("flags", "Features"):
            return line.split(":", 1)[1].split()
    return []


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Facts from the text of a /proc/cpuinfo (x86 or Arm), keyed as ``host_facts()`` keys them.

    ``cpu_parts`` lists Arm 'CPU implementer:CPU part' ids (e.g. ``0x41:0xd08``, Cortex-A72),
    each once, in order of appearance.
    """
    first: dict[str, str] = {}
    flags: list[str] = []
    parts: list[str] = []
    processors = 0
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        processors += "processor" in fields
        flags = flags or (fields.get("flags") or fields.get("Features") or "").split()
        part = f"{fields.get('CPU implementer', '')}:{fields.get('CPU part', '')}".lower()
        if part != ":" and part not in parts:
            parts.append(part)
        for key, value in fields.items():
            first.setdefault(key, value)
    return {
        "cpu_model": first.get("model name") or first.get("Model") or first.get("Hardware"),
        "cpu_flags": flags,
        "cpu_count": processors or None,
        "cpu_parts": parts,
        "device_model": first.get("Model"),
    }


def device_tree_model() -> Optional[str]:
    value = _read("/proc/device-tree/model")
    return value.rstrip("\x00") if value else None


def memory_total_mb() -> Optional[float]:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return None


def thermal() -> dict[str, Any]:
    """Temperature (°C) of each thermal zone, and its lowest passive/hot trip point."""
    zones: dict[str, Any] = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        temp = _read(zone / "temp")
        if temp is None or not temp.lstrip("-").isdigit():
            continue
        trips = []
        for trip_type in zone.glob("trip_point_*_type"):
            if (_read(trip_type) or "") in ("passive", "hot"):
                value = _read(str(trip_type).replace("_type", "_temp"))
                if value and value.lstrip("-").isdigit():
                    trips.append(int(value) / 1000)
        zones[_read(zone / "type") or zone.name] = {
            "celsius": int(temp) / 1000,
            "trip_celsius": min(trips) if trips else None,
        }
    return zones


def cpu_frequency() -> dict[str, Any]:
    base = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    cur = _read(base / "scaling_cur_freq")
    high = _read(base / "cpuinfo_max_freq")
    return {
        "governor": _read(base / "scaling_governor"),
        "mhz": int(cur) / 1000 if cur and cur.isdigit() else None,
        "max_mhz": int(high) / 1000 if high and high.isdigit() else None,
    }


def vcgencmd_throttled() -> Optional[bool]:
    """Raspberry Pi firmware's throttling bits, where vcgencmd exists."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=5)
        return int(out.stdout.strip().split("=")[1], 16) & 0xF != 0
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def throttled(before: dict[str, Any], after: dict[str, Any]) -> Optional[bool]:
    """True when firmware says so, or a zone reached its trip point; None when nothing tells."""
    firmware = vcgencmd_throttled()
    if firmware is not None:
        return firmware
    zones = [z for z in list(before.values()) + list(after.values()) if z.get("trip_celsius")]
    if not zones:
        return None
    return any(z["celsius"] >= z["trip_celsius"] for z in zones)


_UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def _cgroup_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ('' key for the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                paths[controller] = parts[2]
    return paths


def _tightest(base: Path, rel: str, leaf: str, parse: Any) -> Optional[float]:
    """The smallest limit set at ``rel`` or any ancestor (all of them apply)."""
    best: Optional[float] = None
    rel_path = Path(rel.lstrip("/"))
    for anc in [rel_path, *rel_path.parents]:
        value = parse(_read(base / anc / leaf))
        if value is not None and (best is None or value < best):
            best = value
    return best


def _v1_memory(text: Optional[str]) -> Optional[float]:
    return int(text) / 2**20 if text and text.isdigit() and int(text) < _UNLIMITED else None


def _v2_memory(text: Optional[str]) -> Optional[float]:
    return int(text) / 2**20 if text and text.isdigit() else None


def _v2_cpu(text: Optional[str]) -> Optional[float]:
    quota, _, period = (text or "max").partition(" ")
    return int(quota) / int(period) if quota.isdigit() and period.isdigit() else None


def cgroup_limits() -> dict[str, Any]:
    """Memory (MB) and CPU (cores) limits of this process's cgroup, v1 or v2; None = unlimited.

    A board emulated with cgroups, a container, or a systemd slice can give a process far less
    than the machine has; the measurement must say so.
    """
    paths = _cgroup_paths()
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists() and "" in paths:
        return {
            "version": 2,
            "memory_limit_mb": _tightest(root, paths[""], "memory.max", _v2_memory),
            "cpu_quota_cores": _tightest(root, paths[""], "cpu.max", _v2_cpu),
        }
    memory = (
        _tightest(root / "memory", paths["memory"], "memory.limit_in_bytes", _v1_memory)
        if "memory" in paths else None
    )
    cpu = None
    if "cpu" in paths:
        base, rel = root / "cpu", paths["cpu"]
        quota = _tightest(base, rel, "cpu.cfs_quota_us", lambda t: int(t) if t and t.isdigit() else None)
        period = _read(base / rel.lstrip("/") / "cpu.cfs_period_us")
        if quota and period and period.isdigit():
            cpu = quota / int(period)
    return {"version": 1 if paths else None, "memory_limit_mb": memory, "cpu_quota_cores": cpu}


def elf_bits(path: str | Path) -> Optional[int]:
    """32 or 64 from an ELF file's class byte (None: not ELF).  A 32-bit python on a 64-bit
    Arm kernel (32-bit Raspberry Pi OS) reports machine aarch64 but runs armv7l code."""
    try:
        with open(path, "rb") as f:
            head = f.read(5)
    except OSError:
        return None
    if head[:4] != b"\x7fELF":
        return None
    return {1: 32, 2: 64}.get(head[4])


def host_facts() -> dict[str, Any]:
    uname = platform.uname()
    libc = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    return {
        "hostname": uname.node,
        "os": f"{uname.system} {uname.release}",
        "machine": uname.machine,
        "python": platform.python_version(),
        "python_bits": elf_bits(os.path.realpath(sys.executable)) if sys.executable else None,
        "libc": libc,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "device_model": device_tree_model(),
        "cpu_parts": parse_cpuinfo(_read("/proc/cpuinfo") or "")["cpu_parts"],
        "memory_total_mb": memory_total_mb(),
        "cgroup": cgroup_limits(),
    }

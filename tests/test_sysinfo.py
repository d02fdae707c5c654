"""The agent reports the limits a device really runs under, read from /proc and /sys."""

from __future__ import annotations

import json
import subprocess
import sys

from edgeship.runtime.sysinfo import cgroup_limits, host_facts, parse_cpuinfo

from tests.fixtures.netdevice import Cgroup

PI4_CPUINFO = """processor\t: 0
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08
Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.1
"""


def test_process_in_a_limited_cgroup_reports_its_limits() -> None:
    group = Cgroup(memory_mb=300, cpus=0.5).create()
    try:
        code = ("import json; from edgeship.runtime.sysinfo import cgroup_limits; "
                "print(json.dumps(cgroup_limits()))")
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            preexec_fn=group.preexec(),
        )
        limits = json.loads(proc.stdout)
    finally:
        group.destroy()
    assert limits["memory_limit_mb"] == 300
    assert limits["cpu_quota_cores"] == 0.5


def test_unlimited_process_reports_no_limits() -> None:
    limits = cgroup_limits()
    assert limits["memory_limit_mb"] is None or limits["memory_limit_mb"] > 0
    assert "cgroup" in host_facts()


def test_arm_cpuinfo_gives_model_and_cpu_part() -> None:
    facts = parse_cpuinfo(PI4_CPUINFO)
    assert facts["cpu_parts"] == ["0x41:0xd08"]
    assert "asimd" in facts["cpu_flags"]

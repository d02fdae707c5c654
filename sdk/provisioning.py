"""Provisioning: numpy and backends into a venv on a device, from wheels the host downloads.

``provision(target, ["onnxruntime"])`` reads the device's CPU architecture, Python version and
glibc; has the host ``pip download`` wheels for exactly that platform (every manylinux tag the
device's glibc supports: with ``manylinux2014`` alone pip picks old, mismatched wheels); uploads
the ones the device does not have yet; and installs them into a venv on the device
(``~/.cache/edgeship/venv``), which the agent then runs with.

The venv is made ``--without-pip`` and pip runs from its uploaded wheel, so the device needs
nothing beyond ``python3`` itself (no ``python3-venv``/ensurepip, no network, no sudo).  A new
venv is built under a temporary name beside the final one and renamed into place only once
its packages import, so an interrupted provision never leaves a venv that later runs would
pick up; pip runs under the watchdog's private ``TMPDIR`` (removed when it ends, killed or
not) and with ``--no-cache-dir``, so it leaves nothing in ``/tmp`` or ``~/.cache/pip``.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from edgeship.core import errors
from edgeship.device_profiles.schema import DeviceProfile
from edgeship.runtime.formats import format_for_path, get_backend
from edgeship.targets import Target, open_target
from edgeship.targets.base import MIN_DEVICE_PYTHON
from edgeship.targets.facts import DeviceFacts
from edgeship.targets.remote import source

MIN_PYTHON = MIN_DEVICE_PYTHON  # the runtime's own minimum
OLDEST_MANYLINUX_MINOR = 17  # manylinux2014: older tags only name long-gone wheels
_LEGACY_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
BUILDING_MARK = ".edgeship-tmp-"  # a venv being built: <venv>.edgeship-tmp-<hex>

@dataclass
class VenvFacts:
    """What provisioning needs to know: the device (its system python3's view of it) and the
    state of its edgeship venv and wheel folder."""

    device: DeviceFacts
    executable: str  # the system python3 a new venv is made with
    venv_python: str
    venv_exists: bool
    installed: dict[str, str]  # distribution name (normalised) -> version, in the venv
    wheel_dir: str
    wheels: dict[str, int] = field(default_factory=dict)  # wheel file name -> size, on the device

    @property
    def machine(self) -> str:
        """The platform wheels must be for (the userland's, not the kernel's)."""
        return self.device.userland or "unknown"

    @property
    def python(self) -> tuple[int, ...]:
        return self.device.python_version

    @property
    def glibc(self) -> Optional[tuple[int, int]]:
        return self.device.glibc

    @property
    def python_tag(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"


@dataclass
class ProvisionResult:
    """What ``provision`` did: the venv python the agent now runs with and what is in it."""

    target: str
    python: str
    machine: str
    packages: dict[str, str]  # requested distribution -> installed version
    platforms: list[str]  # the pip platform tags wheels were chosen for
    wheels: list[str]  # wheels that make up the environment (empty when nothing was needed)
    uploaded: list[str]
    installed: list[str]  # wheels pip installed this time
    bytes_sent: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        packages = ", ".join(f"{k} {v}" for k, v in self.packages.items())
        if not self.installed:
            return f"{self.target} already had {packages} in {self.python}"
        return (f"installed {packages} into {self.python} on {self.target} ({self.machine}): "
                f"{len(self.uploaded)} wheels / {self.bytes_sent / 1e6:.1f} MB sent in "
                f"{self.seconds:.1f} s")


def manylinux_platforms(machine: str, glibc: tuple[int, int]) -> list[str]:
    """Every manylinux platform tag a device with this CPU and glibc can install, newest first.

    >>> manylinux_platforms("aarch64", (2, 19))
    ['manylinux_2_19_aarch64', 'manylinux_2_18_aarch64', 'manylinux_2_17_aarch64', \
'manylinux2014_aarch64']
    """
    arch = {"arm64": "aarch64", "amd64": "x86_64", "armv8l": "armv7l"}.get(machine, machine)
    if glibc[0] != 2 or glibc[1] < OLDEST_MANYLINUX_MINOR:
        raise errors.UnsupportedError(
            f"the device's glibc {glibc[0]}.{glibc[1]} is older than manylinux2014 (2.17)",
            "install numpy and the backend on the device with its own package manager",
        )
    tags = []
    for minor in range(glibc[1], OLDEST_MANYLINUX_MINOR - 1, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in _LEGACY_ALIASES:
            tags.append(f"{_LEGACY_ALIASES[minor]}_{arch}")
    return tags


def requirements(backends: Sequence[str]) -> dict[str, str]:
    """pip distribution -> module to import, for the runtime (numpy) plus each backend."""
    reqs = {"numpy": "numpy"}
    for name in backends:
        backend = get_backend(name)
        reqs.setdefault(backend.pip, backend.modules[0])
    return reqs


def backends_for(model: Union[str, Path], backend: Optional[str] = None) -> list[str]:
    """The backend to provision for ``model``: ``backend`` if given, else its format's first."""
    return [backend] if backend else [format_for_path(model).backends[0]]


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-")


def _wheel_dist(wheel: Path) -> tuple[str, str]:
    """(normalised distribution name, version) from a wheel's file name."""
    name, version = wheel.name.split("-")[:2]
    return _normalise(name), version


def _base_python(target: Target) -> str:
    """The device's own interpreter: the target's, unless that is already our venv's."""
    ours = target.remote_path("venv/bin/python").lstrip("~")
    return "python3" if target.python.endswith(ours) else target.python


def venv_facts(target: Target) -> VenvFacts:
    """Ask the device's python3 for its architecture, version, glibc, venv and wheels."""
    raw = target.run_script("venvfacts", target.remote_path("venv"),
                            target.remote_path("wheels"), python=_base_python(target),
                            what="the provisioning check")
    return VenvFacts(
        device=DeviceFacts.from_dict(raw), executable=raw["executable"],
        venv_python=raw["venv_python"], venv_exists=raw["venv_exists"],
        installed=raw["installed"], wheel_dir=raw["wheel_dir"], wheels=raw["wheels"],
    )


def userland_machine(machine: str, bits: Optional[int]) -> str:
    """The platform wheels must be for: a 32-bit python on a 64-bit Arm kernel (32-bit
    Raspberry Pi OS) says aarch64 but runs armv7l code."""
    return DeviceFacts(machine=machine, python_bits=bits).userland or machine


def wheel_index_args(reqs: Sequence[str], profile: Optional[DeviceProfile] = None) -> list[str]:
    """``--extra-index-url`` for a device profile whose wheels (e.g. Jetson's onnxruntime-gpu)
    come from a vendor index rather than PyPI (``software.wheel_index``)."""
    software = profile.software if profile is not None else None
    if software is None or not software.wheel_index:
        return []
    wanted = {_normalise(r) for r in reqs}
    return (["--extra-index-url", software.wheel_index]
            if wanted & {_normalise(d) for d in software.wheel_index_for} else [])


def download_wheels(reqs: Sequence[str], facts: VenvFacts, dest: Path,
                    extra_args: Sequence[str] = ()) -> list[Path]:
    """``pip download`` binary wheels for the device's platform and Python into ``dest``."""
    if facts.glibc is None:
        raise errors.UnsupportedError(
            f"the device's C library is not glibc ({facts.machine}), and edgeship provisions "
            "manylinux wheels only",
            "install numpy and the backend on the device with its own package manager",
        )
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--progress-bar", "off", "--only-binary=:all:", "--implementation", "cp",
            "--python-version", facts.python_tag, "-d", str(dest), *extra_args]
    for tag in manylinux_platforms(facts.machine, facts.glibc):
        argv += ["--platform", tag]
    proc = subprocess.run([*argv, *reqs], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = " | ".join(ln for ln in proc.stderr.strip().splitlines()[-3:] if ln.strip())
        raise errors.UnsupportedError(
            f"pip found no wheels of {' '.join(reqs)} for Python {facts.python_tag} on "
            f"{facts.machine} (glibc {facts.glibc[0]}.{facts.glibc[1]}): {tail}",
            "check the package ships wheels for that platform, or install it on the device "
            "by hand",
        )
    return sorted(dest.glob("*.whl"))


def _checked(target: Target, argv: list[str], what: str, timeout: float = 600) -> str:
    res = target.run(argv, timeout=timeout)
    if res.exit_code != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-3:]) or "no output"
        raise errors.RemoteCommandFailed(
            f"could not {what} on {target.name} (exit {res.exit_code}): {tail}",
            "check the device's free disk space and permissions under ~/.cache/edgeship",
        )
    return res.stdout


def _upload(target: Target, wheels: Sequence[Path], facts: VenvFacts) -> tuple[list[str], int]:
    """Copy the wheels the device lacks.  Same name and size means the same wheel (names carry
    versions); a wheel cut short by a dropped link differs in size and is sent again."""
    missing = [w for w in wheels if facts.wheels.get(w.name) != w.stat().st_size]
    if missing:
        _checked(target, ["mkdir", "-p", facts.wheel_dir], "create the wheel folder")
    for wheel in missing:
        target.put(wheel, f"{facts.wheel_dir}/{wheel.name}")
    return [w.name for w in missing], sum(w.stat().st_size for w in missing)


def _pip_install(target: Target, python: str, facts: VenvFacts, wheels: Sequence[Path]) -> None:
    """pip, run from its own uploaded wheel, installs ``wheels`` for ``python``."""
    pip_wheel = next(w for w in wheels if w.name.startswith("pip-"))
    _checked(target, [python, f"{facts.wheel_dir}/{pip_wheel.name}/pip", "--isolated",
                      "install", "--disable-pip-version-check", "--no-index", "--find-links",
                      facts.wheel_dir, "--no-warn-script-location", "--no-cache-dir",
                      # byte-compiling thousands of files is most of pip's time on a slow
                      # board; Python compiles (and caches) the modules it really imports
                      "--no-compile",
                      *[f"{facts.wheel_dir}/{w.name}" for w in wheels]],
             "install the wheels", timeout=1800)


def _install(target: Target, facts: VenvFacts, wheels: Sequence[Path],
             modules: Sequence[str]) -> None:
    """Install these wheels (pip from its own wheel: the device needs no ensurepip and no
    network) and check that ``modules`` import.  A new venv is built under a temporary name
    and renamed into place only when complete; an existing one is added to in place."""
    venv = facts.venv_python.rsplit("/bin/", 1)[0]
    if facts.venv_exists:
        _pip_install(target, facts.venv_python, facts, wheels)
        _verify(target, facts.venv_python, modules, venv)
        return
    building = f"{venv}{BUILDING_MARK}{secrets.token_hex(6)}"
    try:
        res = target.run([facts.executable, "-m", "venv", "--without-pip", building], timeout=300)
        if res.exit_code != 0:
            tail = " | ".join(res.stderr.strip().splitlines()[-2:]) or "no output"
            raise errors.UnsupportedError(
                f"{target.name}'s python3 cannot create a virtual environment: {tail}",
                "install the venv module on the device (Debian: apt install python3-venv)",
            )
        _pip_install(target, f"{building}/bin/python", facts, wheels)
        _verify(target, f"{building}/bin/python", modules, venv)
        _checked(target, [facts.executable, "-c", source("finish_venv"), building, venv],
                 "move the new venv into place")
    except BaseException:
        # pip's watchdog is ending it (SIGTERM, then SIGKILL 2 s later) and a dying pip may
        # still create directories: remove the half-built venv until pip surely is gone
        with contextlib.suppress(Exception):
            target.run(["sh", "-c", 'for t in 1 2 0; do rm -rf -- "$1"; sleep $t; done', "sh",
                        building], timeout=60)
        raise


def _verify(target: Target, python: str, modules: Sequence[str], venv: str) -> None:
    """Import every module with the venv's python: pip succeeding is not proof (mismatched
    wheels install fine and then fail with _ARRAY_API errors or segfaults)."""
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    res = target.run([python, "-c", code, *modules], timeout=600)
    if res.exit_code != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-3:]) or f"exit {res.exit_code}"
        raise errors.RemoteCommandFailed(
            f"the provisioned packages do not import on {target.name}: {tail}",
            f"remove {venv} on the device and provision again",
        )


def provision(
    target: Union[str, Target],
    backends: Sequence[str] = ("onnxruntime",),
    *,
    upgrade: bool = False,
    wheel_cache: Optional[Path] = None,
    profile: Optional[DeviceProfile] = None,
) -> ProvisionResult:
    """Install numpy and ``backends`` into ``~/.cache/edgeship/venv`` on ``target`` from wheels
    downloaded here for its platform.  A ``Target`` passed in runs its later commands (the
    agent included) with the venv's python.  Packages already in the venv are kept unless
    ``upgrade``.  A device ``profile`` adds what its OS needs: the Python it ships (named in
    the error when too old) and a vendor wheel index (``software.wheel_index``).

    Example:
        >>> r = provision("pi@raspberrypi.local", ["onnxruntime"])   # doctest: +SKIP
        >>> r.python, r.packages["onnxruntime"]                        # doctest: +SKIP
    """
    start = time.perf_counter()
    owned = not isinstance(target, Target)
    tgt = open_target(target) if owned else target  # type: ignore[arg-type]
    assert isinstance(tgt, Target)
    try:
        facts = venv_facts(tgt)
        if facts.python[:2] < MIN_PYTHON:
            raise errors.UnsupportedError(
                f"{tgt.name} runs Python {facts.python_tag}; edgeship's runtime needs "
                f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer",
                "install a newer python3 on the device"
                + (f" ({profile.software.notes})" if profile is not None
                   and profile.software.notes else ""),
            )
        reqs = requirements(backends)
        wheels: list[Path] = []
        uploaded: list[str] = []
        todo: list[Path] = []
        sent = 0
        have = {name: facts.installed.get(_normalise(name)) for name in reqs}
        if upgrade or not (facts.venv_exists and all(have.values())):
            with tempfile.TemporaryDirectory(prefix="edgeship-wheels-", dir=wheel_cache) as tmp:
                wheels = download_wheels(["pip", *reqs], facts, Path(tmp),
                                         wheel_index_args(list(reqs), profile))
                todo = [w for w in wheels
                        if facts.installed.get(_wheel_dist(w)[0]) != _wheel_dist(w)[1]]
                if todo:
                    pip_wheel = [w for w in wheels if w.name.startswith("pip-")]
                    uploaded, sent = _upload(tgt, sorted(set(todo + pip_wheel)), facts)
                    _install(tgt, facts, todo, list(reqs.values()))
            versions = dict(_wheel_dist(w) for w in wheels)
            have = {name: versions.get(_normalise(name)) or have[name] for name in reqs}
        tgt.use_python(facts.venv_python)  # later commands and the agent use the venv
        return ProvisionResult(
            target=tgt.name, python=facts.venv_python, machine=facts.machine,
            packages={k: v or "?" for k, v in have.items()},
            platforms=manylinux_platforms(facts.machine, facts.glibc) if facts.glibc else [],
            wheels=[w.name for w in wheels], uploaded=uploaded,
            installed=[w.name for w in todo], bytes_sent=sent,
            seconds=time.perf_counter() - start,
        )
    finally:
        if owned:
            tgt.close()

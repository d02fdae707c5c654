"""Device profiles: load the bundled ones or a user's YAML, describe this host, recognise a device.

Example:
    >>> import edgeship
    >>> edgeship.load_profile("raspberry-pi-4").default_budget_dict()["max_latency_ms"]
    100.0
    >>> from edgeship.targets import LocalTarget
    >>> profile, score, reasons = edgeship.match_profile(LocalTarget().probe())  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Optional, Union, get_args

from edgeship.core.errors import ConfigError
from edgeship.device_profiles.isa import features_of
from edgeship.device_profiles.schema import ISA_FLAGS, DeviceProfile, Source, ThreadChoice, Variant
from edgeship.targets.facts import DeviceFacts
from pydantic import BaseModel, ValidationError

# Detection evidence and its weight in the score (0..1).  A specific device (one whose profile
# names a board model or CPU part) needs specific evidence; a class of machines (x86-avx2) is
# recognised by architecture and ISA alone, the more required features the more specific.
WEIGHT_ARCH = 0.2
WEIGHT_MODEL = 0.45
WEIGHT_PARTS = 0.2
WEIGHT_PER_FLAG, WEIGHT_FLAGS_MAX = 0.03, 0.3
WEIGHT_CORES = 0.05
MATCH_THRESHOLD = 0.25

_ORT_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                      "ROCMExecutionProvider", "MIGraphXExecutionProvider")
_OV_PRECISIONS = {"FP32": "fp32", "FP16": "fp16", "BF16": "bf16", "INT8": "int8"}


# ---------------------------------------------------------------------------------- loading


def _bundled_files() -> dict[str, Any]:
    root = resources.files("edgeship.device_profiles")
    return {p.name[: -len(".yaml")]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def profile_names() -> list[str]:
    """Names of the bundled profiles, sorted."""
    return sorted(_bundled_files())


def list_profiles() -> list[DeviceProfile]:
    """Every bundled profile, sorted by name."""
    files = _bundled_files()
    return [parse_profile(files[n].read_text(), f"profile '{n}'") for n in sorted(files)]


def load_profile(name_or_path: Union[str, Path]) -> DeviceProfile:
    """A bundled profile by name, ``local`` (this host), or a profile YAML file.

    Example:
        >>> load_profile("x86-avx512-vnni").arch
        'x86_64'
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"profile file '{path}' does not exist",
                              f"check the path, or use a bundled name: {', '.join(profile_names())}")
        from edgeship.runtime.textfiles import read_text

        return parse_profile(read_text(path, f"profile '{path}'", PROFILE_FIX), f"profile '{path}'")
    if text == "local":
        return local_profile()
    files = _bundled_files()
    if text not in files:
        close = difflib.get_close_matches(text, list(files), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ConfigError(f"unknown device profile '{text}'",
                          f"{hint}known profiles: {', '.join(sorted(files))}, local, "
                          "or a path to a profile .yaml")
    return parse_profile(files[text].read_text(), f"profile '{text}'")


PROFILE_FIX = "write the profile as UTF-8 YAML, e.g. from `edgeship profiles show raspberry-pi-5`"


def parse_profile(text: str, source: str = "profile") -> DeviceProfile:
    """Validate profile YAML; every problem becomes a one-line ConfigError naming the field."""
    from edgeship.core.yamlfiles import parse_yaml

    data = parse_yaml(text, source, "fix the YAML syntax (indentation, colons, quotes)")
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a YAML mapping of fields, got {type(data).__name__}",
                          "start from `edgeship profiles show raspberry-pi-4 --json` as a template")
    return parse_profile_data(data, source)


def parse_profile_data(data: Mapping[str, Any], source: str = "profile") -> DeviceProfile:
    """Validate a profile given as a mapping (parsed YAML or JSON)."""
    try:
        return DeviceProfile.model_validate(dict(data))
    except ValidationError as exc:
        raise _field_error(exc, source) from None


def _field_error(exc: ValidationError, source: str) -> ConfigError:
    errors = exc.errors()
    err, more = errors[0], (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
    loc = err["loc"]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    if err["type"] == "extra_forbidden":
        allowed = list(_model_at(loc[:-1]).model_fields)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return ConfigError(f"{source}: unknown field '{where}'{more}",
                           f"{hint}remove or rename it; allowed here: {', '.join(allowed)}")
    expected = _description_at(loc)
    if err["type"] == "missing":
        return ConfigError(f"{source}: missing field '{where}'{more}", f"add '{where}': {expected}")
    message = err["msg"].removeprefix("Value error, ")
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return ConfigError(f"{source}: field '{where}': {message}, got {got}{more}",
                       f"set '{where}' to {expected}")


def _submodel(annotation: Any) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found:
            return found
    return None


def _model_at(loc: Sequence[Union[str, int]]) -> type[BaseModel]:
    model: type[BaseModel] = DeviceProfile
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        inner = _submodel(field.annotation) if field else None
        if inner:
            model = inner
    return model


def _description_at(loc: Sequence[Union[str, int]]) -> str:
    names = [p for p in loc if isinstance(p, str)]
    field = _model_at(loc[: len(loc) - 1]).model_fields.get(names[-1]) if names else None
    if field and field.description:
        return field.description
    inner = _submodel(field.annotation) if field else None
    example = "see `edgeship profiles show raspberry-pi-4 --json` for an example"
    if inner:
        return f"a mapping with fields {', '.join(inner.model_fields)} ({example})"
    return f"a valid value ({example})"


# -------------------------------------------------------------------------------- matching


def _arch_fits(profile: DeviceProfile, facts: DeviceFacts) -> bool:
    if facts.arch == profile.arch:
        return True
    # a 64-bit board running a 32-bit OS: the profile says so with a userland variant
    return any(v.kind == "userland" and v.arch == facts.userland for v in profile.variants)


def _score(profile: DeviceProfile, facts: DeviceFacts) -> tuple[Optional[float], list[str]]:
    """How well the facts fit the profile (None: they rule it out), and why."""
    score, reasons = 0.0, []
    machine = facts.machine
    if machine:
        if not _arch_fits(profile, facts):
            return None, [f"arch {machine} is not {profile.arch}"]
        score += WEIGHT_ARCH
        reasons.append(f"arch {profile.arch}")
    flags = set(facts.cpu_flags)
    required = list(profile.cpu.isa) + list(profile.match.cpu_flags)
    if flags and required:
        missing = [f for f in required if not flags & set(ISA_FLAGS.get(f, (f,)))]
        if missing:
            return None, [f"CPU lacks {', '.join(missing)}"]
        score += min(WEIGHT_FLAGS_MAX, WEIGHT_PER_FLAG * len(required))
        reasons.append(f"CPU has {', '.join(required)}")
    specific = False
    parts = facts.cpu_parts
    if parts and profile.match.cpu_parts:
        missing = [p for p in profile.match.cpu_parts if p not in parts]
        if missing:
            return None, [f"no CPU part {', '.join(missing)}"]
        score += WEIGHT_PARTS
        specific = True
        reasons.append(f"CPU part {', '.join(profile.match.cpu_parts)}")
    hit = _model_hit(profile, facts)
    if hit:
        score += WEIGHT_MODEL
        specific = True
        reasons.append(hit)
    cores = facts.cpu_count
    if cores and profile.cpu.cores == cores:
        score += WEIGHT_CORES
        reasons.append(f"{cores} cores")
    elif cores and profile.cpu.cores:
        reasons.append(f"note: {cores} cores visible, the profile has {profile.cpu.cores}")
    m = profile.match
    if not (m.device_model or m.cpu_model or m.cpu_model_regex or m.cpu_parts):
        reasons.append("a class of machines, recognised by architecture and ISA alone")
    elif not specific:
        score /= 2  # an ISA alone cannot tell one Cortex-A76 board from another
        reasons.append("no board model or CPU part confirms this device")
    return min(1.0, round(score, 3)), reasons


def _model_hit(profile: DeviceProfile, facts: DeviceFacts) -> Optional[str]:
    # On Arm boards the cpuinfo 'Model' line (the board) is what host_facts reports as cpu_model.
    names = {"device model": facts.device_model, "CPU model": facts.cpu_model}
    for pattern in profile.match.device_model:
        for label, value in names.items():
            if value and pattern.lower() in value.lower():
                return f"{label} '{value}' contains '{pattern}'"
    value = names["CPU model"]
    for pattern in profile.match.cpu_model:
        if value and pattern.lower() in value.lower():
            return f"CPU model '{value}' contains '{pattern}'"
    for pattern in profile.match.cpu_model_regex:
        if value and re.search(pattern, value):
            return f"CPU model '{value}' matches /{pattern}/"
    return None


def match_profile(
    facts: Union[DeviceFacts, Mapping[str, Any]], profiles: Optional[Sequence[DeviceProfile]] = None
) -> tuple[Optional[DeviceProfile], float, list[str]]:
    """The bundled profile that best fits a target's probe facts, its score (0..1), and why.

    Facts are what ``Target.probe()`` returns, or their JSON form (machine, cpu_model,
    cpu_flags, cpu_parts, device_model, cpu_count, ...).  Below ``MATCH_THRESHOLD`` the profile
    is None and the reasons name the closest candidate.
    """
    facts = DeviceFacts.of(facts)
    ranked, ruled_out = [], []
    for profile in profiles if profiles is not None else list_profiles():
        score, reasons = _score(profile, facts)
        if score is None:
            ruled_out.append(f"{profile.name}: {reasons[0]}")
            continue
        specificity = len(profile.cpu.isa) + len(profile.match.cpu_parts)
        ranked.append((score, specificity, profile, reasons))
    if not ranked:
        same_arch = [r for r in ruled_out if " is not " not in r]
        return None, 0.0, [f"no bundled profile fits: {'; '.join(same_arch or ruled_out)}"]
    score, _, best, reasons = max(ranked, key=lambda r: (r[0], r[1]))
    if score < MATCH_THRESHOLD:
        return None, score, [f"no bundled profile fits (none scores {MATCH_THRESHOLD}); closest "
                             f"{best.name} ({score:.2f}): {'; '.join(reasons)}"]
    return best, score, reasons


# ------------------------------------------------------------------------ profiles from facts


def _precisions(isa: Sequence[str]) -> list[str]:
    found = set(isa)
    return (["fp32"] + (["fp16"] if found & {"fp16", "avx512_fp16", "amx_fp16"} else [])
            + (["bf16"] if found & {"bf16", "avx512_bf16", "amx_bf16"} else []) + ["int8"])


def profile_from_facts(facts: Union[DeviceFacts, Mapping[str, Any]], name: Optional[str] = None
                       ) -> DeviceProfile:
    """A profile describing the probed machine; preferences come from the closest bundled one."""
    from edgeship.runtime.formats import BACKENDS, FORMATS

    facts = DeviceFacts.of(facts)
    isa = features_of(facts.cpu_flags)
    label = facts.label or "unknown device"
    base, score, _ = match_profile(facts)
    backends = list(base.backends) if base else list(BACKENDS)
    available = facts.backends
    if available is not None and any(b.partition(":")[0] in available for b in backends):
        backends = [b for b in backends if b.partition(":")[0] in available]
    runnable = {b.partition(":")[0] for b in backends}
    formats = [f for f in (base.formats if base else FORMATS) if set(FORMATS[f].backends) & runnable]
    memory = facts.memory_total_mb
    # Probes report device nodes (kind, node, driver); only entries naming a backend are profile
    # accelerators, the rest are listed in the description for the user to complete.
    probed = list(facts.accelerators)
    accelerators = [a for a in probed if "backend" in a]
    backends += [a["backend"] for a in accelerators if a["backend"] not in backends]
    nodes = [f"{a.get('kind')} {a.get('name') or a.get('node')} (driver {a.get('driver')})"
             for a in probed if "backend" not in a]
    data = {
        "name": name or _slug(label),
        "display_name": label if name != "local" else f"This machine ({label})",
        "description": f"Built from the probe facts of {facts.hostname or 'the device'}"
        + (f"; preferences and budgets from {base.name} (match {score:.2f})" if base else "")
        + (f"; accelerator devices found: {', '.join(nodes)}" if nodes else ""),
        "arch": facts.arch or "unknown",
        "cpu": {"model": facts.cpu_model or "unknown", "cores": facts.cpu_count,
                "max_mhz": facts.cpu_max_mhz, "isa": isa, "precisions": _precisions(isa)},
        "accelerators": accelerators,
        "memory_mb": int(memory) if memory else None,
        "formats": formats or list(FORMATS),
        "backends": backends,
        "budgets": base.budgets.model_dump() if base else {},
        "match": {"device_model": [facts.device_model] if facts.device_model else [],
                  "cpu_parts": list(facts.cpu_parts)},
    }
    if data["arch"] not in get_args(DeviceProfile.model_fields["arch"].annotation):
        raise ConfigError(f"architecture '{facts.machine}' is not one edgeship profiles "
                          "describe", "use an aarch64, armv7l, x86_64 or riscv64 device")
    made = parse_profile_data(data, f"profile built from {label}")
    probe = Source(ref=f"edgeship probe of {facts.hostname or 'the device'} (/proc/cpuinfo, "
                   "/proc/meminfo, importable backends)", states=made.field_paths())
    return made.model_copy(update={"sources": [probe]})


def _slug(label: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40].strip("-")
    return slug or "my-device"


def profile_yaml_from_facts(facts: Union[DeviceFacts, Mapping[str, Any]]) -> str:
    """YAML for a device no bundled profile fits: save it, complete it, load it by path."""
    import yaml

    profile = profile_from_facts(facts)
    header = ("# edgeship device profile generated by `edgeship profiles detect`.\n"
              "# Add accelerators, peak_gops and budgets from the vendor's datasheet, cite it in\n"
              f"# sources, then use it with `--device {profile.name}.yaml`.\n")
    body = yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    return header + body


def _local_facts() -> DeviceFacts:
    from edgeship.runtime import sysinfo
    from edgeship.targets import LocalTarget

    facts = LocalTarget().probe()
    cpuinfo = sysinfo.parse_cpuinfo(Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo")
                                     .is_file() else "")
    facts.cpu_parts = facts.cpu_parts or cpuinfo["cpu_parts"]
    if facts.cpu_max_mhz is None:
        facts.cpu_max_mhz = sysinfo.cpu_frequency().get("max_mhz")
    facts.accelerators = facts.accelerators + _local_accelerators(facts.backends or {})
    return facts


def _local_accelerators(backends: Mapping[str, str]) -> list[dict[str, Any]]:
    """GPUs/NPUs the installed backends can reach here, with the precisions they report."""
    found: list[dict[str, Any]] = []
    if "openvino" in backends:
        import openvino as ov

        core = ov.Core()
        for device in core.available_devices:
            kind = {"GPU": "gpu", "NPU": "npu"}.get(device.split(".")[0])
            if kind:
                caps = core.get_property(device, "OPTIMIZATION_CAPABILITIES")
                precisions = [_OV_PRECISIONS[c] for c in caps if c in _OV_PRECISIONS]
                found.append({"id": _slug(device), "kind": kind,
                              "name": core.get_property(device, "FULL_DEVICE_NAME"),
                              "backend": f"openvino:{device}", "precisions": precisions or ["fp32"],
                              "model_format": "openvino-ir", "drivable": True})
    if "onnxruntime" in backends:
        import onnxruntime as ort

        for provider in ort.get_available_providers():
            if provider in _ORT_GPU_PROVIDERS:
                found.append({"id": _slug(provider.removesuffix("ExecutionProvider")),
                              "kind": "gpu", "name": provider, "backend": f"onnxruntime:{provider}",
                              "precisions": ["fp32", "fp16"], "model_format": "onnx",
                              "drivable": True})
    return found


def local_profile() -> DeviceProfile:
    """This host as a profile: CPU flags, cores, memory, reachable accelerators, installed
    backends; preferences and default budgets from the closest bundled profile."""
    return profile_from_facts(_local_facts(), name="local")


@dataclass(frozen=True)
class Detection:
    """What `edgeship profiles detect` found on a target."""

    facts: DeviceFacts
    profile: Optional[DeviceProfile]
    score: float
    reasons: list[str]

    @property
    def cpu_precisions(self) -> list[str]:
        """The matched profile's CPU precisions on this device's reported flags."""
        return self.profile.cpu_precisions(self.facts.cpu_flags) if self.profile else []

    @property
    def variants(self) -> list[Variant]:
        """The profile's variants the probe facts show (RAM, module, revision, userland)."""
        return self.profile.variants_for(self.facts.to_dict()) if self.profile else []

    @property
    def threads(self) -> Optional[ThreadChoice]:
        return self.profile.thread_choice() if self.profile else None

    def new_profile_yaml(self) -> str:
        return profile_yaml_from_facts(self.facts)


def detect_profile(target: Any = "local") -> Detection:
    """Probe a target (``local``, an SSH host/alias, or a Target) and match it to a profile."""
    from edgeship.targets import Target, open_target

    if isinstance(target, Target) or callable(getattr(target, "probe", None)):
        facts = target.probe()
    elif target in (None, "", "local"):
        facts = _local_facts()
    else:
        with open_target(target) as opened:
            facts = opened.probe()
    profile, score, reasons = match_profile(facts)
    return Detection(facts, profile, score, reasons)

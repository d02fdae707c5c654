"""Device profiles: the bundled YAML files, loading errors, detection, and bench's default budgets."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from edgeship.device_profiles.schema import ISA_FLAGS, DeviceProfile
from edgeship.profiles import (
    detect_profile,
    list_profiles,
    load_profile,
    local_profile,
    match_profile,
    profile_names,
    profile_yaml_from_facts,
)
from edgeship.runtime import available_backends, sysinfo

from tests.fixtures.cli import run_cli
from tests.fixtures.hostcpu import cpu_flags
from tests.fixtures.onnx_graphs import linear_model

# /proc/cpuinfo of a real Raspberry Pi 4 Model B (serial blanked), as the shared test data has it.
PI4_CPUINFO = """\
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

Hardware	: BCM2835
Revision	: c03111
Serial		: 10000000deadbeef
Model		: Raspberry Pi 4 Model B Rev 1.1
"""
PROFILE_DIR = Path(__file__).resolve().parents[1] / "device_profiles"

# /proc/cpuinfo flags of the AMD EPYC (Zen 4) this project is developed on: AVX-512 with VNNI and
# BF16, no AMX.
RECORDED_EPYC_FLAGS = [
    "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge",
    "mca", "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "ht", "syscall",
    "nx", "mmxext", "fxsr_opt", "pdpe1gb", "rdtscp", "lm", "constant_tsc", "rep_good", "nopl",
    "xtopology", "nonstop_tsc", "cpuid", "extd_apicid", "tsc_known_freq", "pni", "pclmulqdq",
    "ssse3", "fma", "cx16", "pcid", "sse4_1", "sse4_2", "x2apic", "movbe", "popcnt",
    "tsc_deadline_timer", "aes", "xsave", "avx", "f16c", "rdrand", "hypervisor", "lahf_lm",
    "cmp_legacy", "cr8_legacy", "abm", "sse4a", "misalignsse", "3dnowprefetch", "osvw",
    "topoext", "vmmcall", "fsgsbase", "tsc_adjust", "bmi1", "avx2", "smep", "bmi2", "erms",
    "invpcid", "avx512f", "avx512dq", "rdseed", "adx", "smap", "avx512ifma", "clflushopt",
    "clwb", "avx512cd", "sha_ni", "avx512bw", "avx512vl", "xsaveopt", "xsavec", "xgetbv1",
    "xsaves", "avx512_bf16", "clzero", "xsaveerptr", "arat", "avx512vbmi", "umip",
    "avx512_vbmi2", "gfni", "vaes", "vpclmulqdq", "avx512_vnni", "avx512_bitalg",
    "avx512_vpopcntdq", "rdpid", "fsrm",
]


def x86_facts(flags: list[str], cpu_model: str = "AMD EPYC") -> dict[str, object]:
    return {"machine": "x86_64", "cpu_model": cpu_model, "cpu_flags": flags, "cpu_count": 2,
            "device_model": None, "cpu_parts": []}


def expected_x86_profile(flags: set[str]) -> str:
    if {"amx_int8", "amx_bf16"} <= flags:
        return "x86-amx"
    return "x86-avx512-vnni" if "avx512_vnni" in flags else "x86-avx2"


# ------------------------------------------------------------------------ bundled profiles


def test_at_least_eleven_profiles_are_bundled_each_named_after_its_file() -> None:
    profiles = list_profiles()
    assert len(profiles) >= 11
    assert [p.name for p in profiles] == sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
    assert {"raspberry-pi-4", "raspberry-pi-5", "raspberry-pi-zero-2w", "jetson-nano",
            "jetson-orin-nano", "jetson-agx-orin", "x86-avx2", "x86-avx512-vnni", "x86-amx",
            "intel-core-ultra", "rockchip-rk3588"} <= set(profile_names())


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
def test_bundled_profile_validates_and_cites_a_source_for_every_fact(name: str) -> None:
    profile = load_profile(name)
    assert profile.sources, f"{name} cites no source for its figures"
    assert profile.unsourced() == [], f"{name}: no source states {profile.unsourced()}"
    assert profile.formats and profile.backends
    for acc in profile.accelerators:
        assert {p.precision for p in acc.peaks} <= set(acc.precisions + acc.hardware_precisions)


def test_default_budget_dict_holds_only_the_budgets_a_profile_sets() -> None:
    assert load_profile("raspberry-pi-4").default_budget_dict() == {
        "max_latency_ms": 100.0, "max_memory_mb": 1024.0}
    assert load_profile("raspberry-pi-zero-2w").default_budget_dict() == {
        "max_latency_ms": 200.0, "max_memory_mb": 256.0, "max_size_mb": 50.0}


def test_accelerator_precisions_and_peaks_say_dense_or_sparse() -> None:
    orin = load_profile("jetson-agx-orin")
    dla = next(a for a in orin.accelerators if a.kind == "npu")
    assert dla.backend == "tensorrt:DLA"
    assert {(p.sparsity, p.gops) for p in dla.peaks} == {("sparse", 105000.0), ("dense", 52500.0)}
    gpu = next(a for a in orin.accelerators if a.kind == "gpu")
    int8 = {p.sparsity: p.gops for p in gpu.peaks if p.precision == "int8"}
    assert int8 == {"sparse": 170000.0, "dense": 85000.0}
    assert orin.precisions == ["fp32", "fp16", "int8"]


def test_show_json_round_trips_to_the_same_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "profiles", "show", "jetson-agx-orin", "--json")
    assert code == 0
    assert DeviceProfile.model_validate(json.loads(out)) == load_profile("jetson-agx-orin")


def test_list_json_lists_every_bundled_profile(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "profiles", "list", "--json")
    assert code == 0
    assert [p["name"] for p in json.loads(out)] == profile_names()


def test_list_and_show_print_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "profiles", "list")
    assert code == 0 and "raspberry-pi-zero-2w" in err
    code, _, err = run_cli(capsys, "profiles", "show", "rockchip-rk3588")
    assert code == 0 and "rknn" in err and "6 TOPS" in err


# ------------------------------------------------------------------------------ bad input


def pi4_yaml_with(tmp_path: Path, edit: object) -> Path:
    data = yaml.safe_load((PROFILE_DIR / "raspberry-pi-4.yaml").read_text())
    edit(data)  # type: ignore[operator]
    path = tmp_path / "my-device.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d["cpu"].update(turbo=True), "unknown field 'cpu.turbo'"),
        (lambda d: d.update(memroy_mb=4096), "did you mean 'memory_mb'"),
        (lambda d: d.pop("arch"), "missing field 'arch'"),
        (lambda d: d["cpu"].pop("precisions"), "missing field 'cpu.precisions'"),
        (lambda d: d["cpu"].update(cores="four"), "field 'cpu.cores'"),
        (lambda d: d.update(memory_mb=[4096]), "field 'memory_mb'"),
        (lambda d: d["budgets"].update(max_latency_ms=-5), "field 'budgets.max_latency_ms'"),
        (lambda d: d["cpu"].update(isa=["neon", "avx3"]), "unknown ISA feature"),
        (lambda d: d.update(formats=["tflite", "caffe"]), "unknown format"),
        (lambda d: d.update(arch="sparc"), "field 'arch'"),
    ],
    ids=["unknown-field", "misspelt-field", "missing-field", "missing-nested", "wrong-type-int",
         "wrong-type-list", "negative-budget", "unknown-isa", "unknown-format", "unknown-arch"],
)
def test_bad_profile_yaml_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, problem: str
) -> None:
    path = pi4_yaml_with(tmp_path, edit)
    code, out, err = run_cli(capsys, "profiles", "show", str(path))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Fix: " in err
    assert problem in err


def test_missing_field_error_says_what_to_add(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = pi4_yaml_with(tmp_path, lambda d: d.pop("formats"))
    _, _, err = run_cli(capsys, "profiles", "show", str(path))
    assert "Fix: add 'formats': model formats in order of preference" in err
    path = pi4_yaml_with(tmp_path, lambda d: d.pop("cpu"))
    _, _, err = run_cli(capsys, "profiles", "show", str(path))
    assert "Fix: add 'cpu': a mapping with fields model, cores, max_mhz, isa, precisions" in err


def test_yaml_syntax_error_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ncpu: [unclosed\narch: aarch64\n")
    code, _, err = run_cli(capsys, "profiles", "show", str(path))
    assert code == 2 and "is not valid YAML at line" in err and err.count("\n") == 1


def test_profile_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- raspberry-pi-4\n")
    with pytest.raises(Exception, match="must be a YAML mapping of fields, got list"):
        load_profile(path)


def test_unknown_profile_name_exits_2_suggesting_closest_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "profiles", "show", "raspbery-pi-4")
    assert code == 2 and out == ""
    assert "unknown device profile 'raspbery-pi-4'" in err
    assert "did you mean raspberry-pi-4" in err
    assert err.count("\n") == 1


def test_missing_profile_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "profiles", "show", str(tmp_path / "nope.yaml"))
    assert code == 2 and "does not exist" in err


def test_bad_profile_through_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    path = pi4_yaml_with(tmp_path, lambda d: d["cpu"].update(cores="four"))
    proc = subprocess.run(
        [sys.executable, "-c", "from edgeship.cli import main; main()", "profiles", "show", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


# ------------------------------------------------------------------------------ detection


def test_raspberry_pi_4_cpuinfo_matches_raspberry_pi_4() -> None:
    facts = {"machine": "aarch64", **sysinfo.parse_cpuinfo(PI4_CPUINFO)}
    assert facts["cpu_parts"] == ["0x41:0xd08"]
    profile, score, reasons = match_profile(facts)
    assert profile is not None and profile.name == "raspberry-pi-4"
    assert score >= 0.8
    assert "CPU part 0x41:0xd08" in reasons
    assert any("contains 'Raspberry Pi 4'" in r for r in reasons)


def test_pi_4_without_a_board_name_is_still_recognised_by_its_cpu_part() -> None:
    text = "\n".join(ln for ln in PI4_CPUINFO.splitlines()
                     if not ln.startswith(("Model", "Hardware")))
    profile, score, _ = match_profile({"machine": "aarch64", **sysinfo.parse_cpuinfo(text)})
    assert profile is not None and profile.name == "raspberry-pi-4"
    assert score < 0.8


def test_pi_4_cpuinfo_rules_out_boards_with_other_cores() -> None:
    facts = {"machine": "aarch64", **sysinfo.parse_cpuinfo(PI4_CPUINFO)}
    pi5 = load_profile("raspberry-pi-5")
    assert match_profile(facts, [pi5])[0] is None


def test_recorded_avx512_vnni_bf16_host_matches_x86_avx512_vnni_not_amx() -> None:
    profile, _, reasons = match_profile(x86_facts(RECORDED_EPYC_FLAGS))
    assert profile is not None and profile.name == "x86-avx512-vnni"
    amx = load_profile("x86-amx")
    assert match_profile(x86_facts(RECORDED_EPYC_FLAGS), [amx])[0] is None
    assert "avx512_vnni" in " ".join(reasons)


def test_amx_flags_match_x86_amx() -> None:
    flags = RECORDED_EPYC_FLAGS + ["avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"]
    profile, _, _ = match_profile(x86_facts(flags, "Intel(R) Xeon(R) Platinum 8480+"))
    assert profile is not None and profile.name == "x86-amx"


def test_avx2_only_cpu_matches_x86_avx2() -> None:
    flags = [f for f in RECORDED_EPYC_FLAGS if not f.startswith("avx512")]
    profile, _, _ = match_profile(x86_facts(flags))
    assert profile is not None and profile.name == "x86-avx2"


def test_core_ultra_is_recognised_by_its_cpu_model() -> None:
    flags = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni"]
    profile, score, _ = match_profile(x86_facts(flags, "Intel(R) Core(TM) Ultra 7 155H"))
    assert profile is not None and profile.name == "intel-core-ultra"
    assert score > 0.5


@pytest.mark.parametrize(
    ("device_model", "expected"),
    [("NVIDIA Jetson AGX Orin Developer Kit", "jetson-agx-orin"),
     ("NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano"),
     ("NVIDIA Jetson Nano Developer Kit", "jetson-nano")],
)
def test_jetson_board_names_pick_the_right_jetson(device_model: str, expected: str) -> None:
    part = "0x41:0xd07" if expected == "jetson-nano" else "0x41:0xd42"
    flags = ["fp", "asimd", "crc32"] + ([] if expected == "jetson-nano" else ["asimdhp", "asimddp"])
    facts = {"machine": "aarch64", "device_model": device_model, "cpu_model": None,
             "cpu_flags": flags, "cpu_parts": [part], "cpu_count": 6}
    profile, _, _ = match_profile(facts)
    assert profile is not None and profile.name == expected


def test_unknown_board_gets_no_profile_and_a_loadable_new_profile_yaml(tmp_path: Path) -> None:
    facts = {"machine": "aarch64", "device_model": "Pine64 Quartz64 Model A", "cpu_model": None,
             "cpu_flags": ["fp", "asimd", "asimdhp", "asimddp", "crc32"],
             "cpu_parts": ["0x41:0xd05"], "cpu_count": 4, "memory_total_mb": 3900.4,
             "hostname": "quartz", "backends": {"tflite": "2.18"},
             "accelerators": [{"kind": "gpu", "node": "/dev/dri/renderD128", "driver": "panfrost"}]}
    profile, _, reasons = match_profile(facts)
    assert profile is None and reasons[0].startswith("no bundled profile fits")
    assert "raspberry-pi-4: no CPU part 0x41:0xd08" in reasons[0]
    path = tmp_path / "quartz.yaml"
    path.write_text(profile_yaml_from_facts(facts))
    made = load_profile(path)
    assert made.name == "pine64-quartz64-model-a" and made.arch == "aarch64"
    assert made.cpu.isa == ["neon", "fp16", "dotprod"] and made.memory_mb == 3900
    assert made.backends == ["tflite"] and made.formats == ["tflite"]
    assert made.match.cpu_parts == ["0x41:0xd05"]
    assert made.accelerators == [] and "gpu /dev/dri/renderD128 (driver panfrost)" in made.description
    assert match_profile(facts, [made])[0] == made


# ---------------------------------------------------------------------------- this host


def test_local_profile_describes_this_host() -> None:
    local = local_profile()
    assert local.name == "local"
    assert local.arch == {"arm64": "aarch64", "amd64": "x86_64"}.get(
        platform.machine().lower(), platform.machine().lower())
    assert local.cpu.cores == os.cpu_count()
    flags = cpu_flags()
    assert local.cpu.isa and all(flags & set(ISA_FLAGS[f]) for f in local.cpu.isa)
    meminfo_mb = sysinfo.memory_total_mb()
    assert meminfo_mb is not None and local.memory_mb == int(meminfo_mb)
    assert {b.partition(":")[0] for b in local.backends} <= set(available_backends())
    assert load_profile("local").cpu.isa == local.cpu.isa


def test_local_profile_precisions_follow_the_cpu_flags() -> None:
    local = local_profile()
    assert ("bf16" in local.cpu.precisions) == bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "bf16"})
    assert local.cpu.precisions[0] == "fp32" and "int8" in local.cpu.precisions


def expected_host_profile() -> str | None:
    """On x86 the flags decide the profile; elsewhere any profile of this architecture (or
    none, with a new profile's YAML) is a valid answer."""
    return expected_x86_profile(cpu_flags()) if platform.machine() == "x86_64" else None


def test_this_host_matches_the_profile_its_flags_imply() -> None:
    found = detect_profile("local")
    expected = expected_host_profile()
    if expected:
        assert found.profile is not None and found.profile.name == expected
    else:
        assert found.profile is None or found.profile.arch == local_profile().arch


def test_detect_cli_prints_the_match_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "profiles", "detect", "--target", "local", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["reasons"]
    expected = expected_host_profile()
    if expected:
        assert payload["profile"] == expected and payload["new_profile_yaml"] is None
    else:
        assert payload["profile"] or "name:" in payload["new_profile_yaml"]


# ------------------------------------------------------------------------ bench --device


def bench_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code, out, _ = run_cli(capsys, "bench", *args, "--json", "--runs", "5", "--warmup", "1",
                           "--min-seconds", "0")
    return code, json.loads(out)


def test_bench_with_device_uses_the_profile_default_budgets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = linear_model(tmp_path / "linear.onnx")
    code, payload = bench_json(capsys, str(model), "--device", "x86-avx512-vnni")
    verdict = payload["verdict"]
    limits = {c["name"]: c["limit"] for c in verdict["checks"]}  # type: ignore[index]
    assert limits == {"latency": 20.0, "memory": 1024.0}
    assert code == (0 if verdict["ok"] else 1)  # type: ignore[index]


def test_budget_flags_override_the_profile_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = linear_model(tmp_path / "linear.onnx")
    _, payload = bench_json(capsys, str(model), "--device", "x86-avx512-vnni",
                            "--max-latency-ms", "1000")
    limits = {c["name"]: c["limit"] for c in payload["verdict"]["checks"]}  # type: ignore[index]
    assert limits == {"latency": 1000.0, "memory": 1024.0}


def test_bench_with_unknown_device_exits_2_suggesting_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = linear_model(tmp_path / "linear.onnx")
    code, out, err = run_cli(capsys, "bench", str(model), "--device", "jetson-nan")
    assert code == 2 and out == ""
    assert "did you mean jetson-nano" in err

"""What the profiles tell the planner: CPU precisions from the device's flags, accelerators it
cannot use listed with the reason, core clusters, variants, software constraints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from edgeship.compression.plan import VARIANTS, ModelFacts, plan_recipes
from edgeship.device_profiles.isa import ISA_FLAGS
from edgeship.profiles import detect_profile, list_profiles, load_profile, match_profile, parse_profile
from edgeship.provisioning import userland_machine, wheel_index_args
from edgeship.runtime import sysinfo
from edgeship.targets.facts import DeviceFacts

from tests.fixtures.cli import run_cli
from tests.test_profiles import PROFILE_DIR, RECORDED_EPYC_FLAGS, x86_facts

CONV = ModelFacts("onnx", conv_share=0.97, labelled=True, training_samples=100,
                  max_accuracy_drop=1.0)
MLP = ModelFacts("torch", conv_share=0.0, labelled=True, training_samples=100,
                 max_accuracy_drop=1.0)
NO_BF16 = [f for f in RECORDED_EPYC_FLAGS if f != "avx512_bf16"]


def device_flags(profile: Any) -> list[str]:
    """cpuinfo flags of a device that has every feature the profile names, conditions included."""
    features = set(profile.cpu.isa) | {f for c in profile.cpu.conditional_precisions
                                       for f in c.requires}
    return [ISA_FLAGS[f][0] for f in sorted(features)]


def variant_of(recipe_name: str) -> str:
    return max((v.key for v in VARIANTS if recipe_name.startswith(v.key + "-")), key=len)


# ------------------------------------------------------------- precisions the device has


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
@pytest.mark.parametrize("probed", [False, True], ids=["unprobed", "probed"])
def test_no_precision_is_planned_that_the_device_lacks(name: str, probed: bool) -> None:
    profile = load_profile(name)
    flags: Optional[list[str]] = device_flags(profile) if probed else None
    allowed = {"cpu": set(profile.cpu_precisions(flags))}
    for acc in profile.accelerators:
        if acc.drivable:
            allowed.setdefault(acc.kind, set()).update(acc.precisions)
    for facts in (CONV, MLP):
        plan = plan_recipes(profile, facts, flags)
        by_backend = {e.backend: e for e in plan.engines}
        for engine in plan.engines:
            assert set(engine.precisions) <= allowed.get(engine.unit, set()), engine
        for recipe in plan.recipes:
            engine = by_backend[recipe.runs_on]
            precision = next(v.precision for v in VARIANTS if v.key == variant_of(recipe.name))
            assert precision in allowed[engine.unit], f"{name}: {recipe.name} on {engine.unit}"


def test_avx512_vnni_plans_bf16_only_when_the_device_reports_avx512_bf16() -> None:
    profile = load_profile("x86-avx512-vnni")
    assert profile.cpu_precisions(RECORDED_EPYC_FLAGS) == ["fp32", "bf16", "int8"]
    assert profile.cpu_precisions(NO_BF16) == ["fp32", "int8"]
    assert profile.cpu_precisions(None) == ["fp32", "int8"]
    with_bf16 = [r.name for r in plan_recipes(profile, CONV, RECORDED_EPYC_FLAGS).recipes]
    without = plan_recipes(profile, CONV, NO_BF16)
    assert "bf16-openvino" in with_bf16
    assert not any(r.name.startswith("bf16") for r in without.recipes)
    assert "does not list bf16" in dict(without.skipped)["bf16-openvino"]


def test_detect_reports_bf16_for_a_device_whose_flags_announce_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgeship.profiles as profiles

    for flags, expected in ((RECORDED_EPYC_FLAGS, ["fp32", "bf16", "int8"]),
                            (NO_BF16, ["fp32", "int8"])):
        monkeypatch.setattr(profiles, "_local_facts", lambda f=flags: DeviceFacts.from_dict(x86_facts(f)))
        code, out, _ = run_cli(capsys, "profiles", "detect", "--target", "local", "--json")
        payload = json.loads(out)
        assert code == 0 and payload["profile"] == "x86-avx512-vnni"
        assert payload["cpu_precisions"] == expected


class FakeDevice:
    """A target whose probe reports fixed facts (describe_measurement only probes it)."""

    name = "fake"

    def __init__(self, facts: dict[str, Any]) -> None:
        self.facts = facts

    def probe(self) -> DeviceFacts:
        return DeviceFacts.from_dict(self.facts)


def test_compress_plans_from_the_flags_of_the_device_it_measures_on() -> None:
    from edgeship.compression.measure import describe_measurement

    profile = load_profile("x86-avx512-vnni")
    for flags, has_bf16 in ((RECORDED_EPYC_FLAGS, True), (NO_BF16, False)):
        measured = describe_measurement(FakeDevice(x86_facts(flags)), profile)
        plan = plan_recipes(profile, CONV, measured["cpu_flags"])
        assert ("bf16-openvino" in [r.name for r in plan.recipes]) is has_bf16
    # flags of a machine that is not the device say nothing about it
    pi4 = describe_measurement(FakeDevice(x86_facts(RECORDED_EPYC_FLAGS)),
                               load_profile("raspberry-pi-4"))
    assert pi4["matches_profile"] is False and pi4["cpu_flags"] is None


# ------------------------------------------------------------- accelerators it cannot use


@pytest.mark.parametrize(
    ("name", "accelerator", "reason"),
    [("coral-dev-board", "accelerator edgetpu", "edgetpu_compiler"),
     ("rockchip-rk3588", "accelerator npu", "no RKNN backend"),
     ("rockchip-rk3588", "accelerator gpu", "loads no delegates"),
     ("jetson-nano", "accelerator gpu", "Python >= 3.9"),
     ("jetson-agx-orin", "accelerator dla", "TensorRT")],
)
def test_a_plan_lists_every_accelerator_it_cannot_use_with_the_reason(
    name: str, accelerator: str, reason: str
) -> None:
    profile = load_profile(name)
    plan = plan_recipes(profile, CONV)
    skipped = {n.split(" (")[0]: r for n, r in plan.skipped if n.startswith("accelerator ")}
    assert accelerator in skipped and reason in skipped[accelerator]
    acc = next(a for a in profile.accelerators if f"accelerator {a.id}" == accelerator)
    assert acc.backend not in {e.backend for e in plan.engines}


def test_drivable_accelerators_get_engines_and_no_not_planned_entry() -> None:
    plan = plan_recipes(load_profile("intel-core-ultra"), CONV)
    assert {"npu", "gpu"} <= {e.unit for e in plan.engines}
    assert not any(n.startswith("accelerator ") for n, _ in plan.skipped)


def test_rk3588_npu_plans_what_rknn_toolkit2_offers_not_the_datasheet_int4() -> None:
    npu = next(a for a in load_profile("rockchip-rk3588").accelerators if a.id == "npu")
    assert "int4" not in npu.precisions and set(npu.precisions) == {"int8", "fp16"}
    assert {"int4", "int16", "bf16", "tf32"} <= set(npu.hardware_precisions)


def test_jetson_nano_plans_the_cpu_only() -> None:
    plan = plan_recipes(load_profile("jetson-nano"), CONV)
    assert {e.unit for e in plan.engines} == {"cpu"} and plan.recipes
    assert load_profile("jetson-nano").software.python == "3.6"


# ------------------------------------------------------------------- cores and threads


def test_big_little_cpus_run_their_threads_on_the_big_cores() -> None:
    rk = load_profile("rockchip-rk3588").thread_choice()
    assert (rk.threads, rk.cores) == (4, "4x Cortex-A76 (performance)")
    assert "Cortex-A55" in rk.why
    ultra = load_profile("intel-core-ultra").thread_choice()
    assert ultra.threads == 6 and "P-core" in ultra.cores
    assert load_profile("raspberry-pi-4").thread_choice().threads == 4
    assert plan_recipes(load_profile("rockchip-rk3588"), CONV).threads.threads == 4


def test_clusters_must_add_up_to_the_cores(tmp_path: Path) -> None:
    data = yaml.safe_load((PROFILE_DIR / "rockchip-rk3588.yaml").read_text())
    data["cpu"]["clusters"][1]["count"] = 2
    with pytest.raises(Exception, match="clusters hold 6 cores, cpu.cores says 8"):
        parse_profile(yaml.safe_dump(data))


# --------------------------------------------------------------------------- detection


def test_core_ultra_profile_is_series_1_only() -> None:
    flags = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni"]
    ultra = [load_profile("intel-core-ultra")]
    assert match_profile(x86_facts(flags, "Intel(R) Core(TM) Ultra 7 155H"), ultra)[0]
    assert match_profile(x86_facts(flags, "Intel(R) Core(TM) Ultra 5 125U"), ultra)[0]
    for series2 in ("Intel(R) Core(TM) Ultra 7 258V", "Intel(R) Core(TM) Ultra 9 285K",
                    "Intel(R) Core(TM) Ultra 7 255H"):
        profile, _, _ = match_profile(x86_facts(flags, series2))
        assert profile is not None and profile.name == "x86-avx2", series2


def orin_facts(cores: int, memory_mb: float) -> dict[str, Any]:
    return {"machine": "aarch64", "device_model": "NVIDIA Jetson AGX Orin Developer Kit",
            "cpu_model": None, "cpu_flags": ["fp", "asimd", "asimdhp", "asimddp"],
            "cpu_parts": ["0x41:0xd42"], "cpu_count": cores, "memory_total_mb": memory_mb}


def test_agx_orin_32gb_module_is_reported_as_its_variant() -> None:
    found = detect_profile(FakeDevice(orin_facts(8, 30536.0)))
    assert found.profile is not None and found.profile.name == "jetson-agx-orin"
    assert [v.id for v in found.variants] == ["32gb"]
    assert detect_profile(FakeDevice(orin_facts(12, 62800.0))).variants == []
    thirty_two = found.variants[0]
    assert {(p.sparsity, p.gops) for p in thirty_two.peaks["gpu"] if p.precision == "int8"} == \
        {("sparse", 108000.0), ("dense", 54000.0)}


def pi4_facts(machine: str, python_bits: int) -> dict[str, Any]:
    return {"machine": machine, "python_bits": python_bits, "device_model": "Raspberry Pi 4 Model B Rev 1.4",
            "cpu_model": None, "cpu_flags": ["fp", "asimd", "crc32"], "cpu_parts": ["0x41:0xd08"],
            "cpu_count": 4, "memory_total_mb": 7800.0}


@pytest.mark.parametrize("machine", ["aarch64", "armv7l"])
def test_a_32_bit_userland_on_a_pi_4_is_detected_from_the_pythons_elf_class(machine: str) -> None:
    found = detect_profile(FakeDevice(pi4_facts(machine, 32)))
    assert found.profile is not None and found.profile.name == "raspberry-pi-4"
    assert found.facts.userland == "armv7l"
    assert {v.id for v in found.variants} == {"32-bit-userland", "8gb"}
    assert detect_profile(FakeDevice(pi4_facts("aarch64", 64))).facts.userland == "aarch64"


def test_elf_bits_reads_the_class_byte(tmp_path: Path) -> None:
    for cls, bits in ((1, 32), (2, 64)):
        path = tmp_path / f"elf{bits}"
        path.write_bytes(b"\x7fELF" + bytes([cls]) + b"\0" * 11)
        assert sysinfo.elf_bits(path) == bits
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert sysinfo.elf_bits(tmp_path / "script") is None
    assert sysinfo.host_facts()["python_bits"] in (32, 64)


# ------------------------------------------------------------------ software constraints


def test_provisioning_reads_the_userland_and_the_profiles_wheel_index() -> None:
    assert userland_machine("aarch64", 32) == "armv7l"
    assert userland_machine("aarch64", 64) == "aarch64"
    assert userland_machine("x86_64", None) == "x86_64"
    orin = load_profile("jetson-orin-nano")
    assert wheel_index_args(["numpy", "onnxruntime-gpu"], orin) == [
        "--extra-index-url", "https://pypi.jetson-ai-lab.io/jp6/cu126"]
    assert wheel_index_args(["numpy", "onnxruntime"], orin) == []
    assert wheel_index_args(["onnxruntime-gpu"], load_profile("raspberry-pi-4")) == []


# ----------------------------------------------------------------------------- schema


def profile_with(edit: Any) -> dict[str, Any]:
    data = yaml.safe_load((PROFILE_DIR / "coral-dev-board.yaml").read_text())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "problem"),
    [(lambda d: d["accelerators"][0]["peaks"][0].pop("sparsity"), "sparsity"),
     (lambda d: d["accelerators"][0].pop("not_drivable_because"), "needs not_drivable_because"),
     (lambda d: d["sources"][0]["states"].append("cpu.turbo"), "states unknown field"),
     (lambda d: d["accelerators"][0]["peaks"].append(
         {"precision": "fp16", "gops": 1, "sparsity": "dense"}), "missing from precisions"),
     (lambda d: d["cpu"]["conditional_precisions"].append(
         {"precision": "bf16", "requires": ["avx3"]}) if "conditional_precisions" in d["cpu"]
      else d["cpu"].update(conditional_precisions=[{"precision": "bf16", "requires": ["avx3"]}]),
      "unknown ISA feature"),
     (lambda d: d["match"].update(cpu_model_regex=["Ultra [5"]), "not a regular expression")],
    ids=["peak-without-sparsity", "undrivable-without-reason", "source-of-unknown-field",
         "peak-of-unlisted-precision", "condition-on-unknown-feature", "bad-regex"],
)
def test_schema_rejects_profiles_that_cannot_be_planned_from(edit: Any, problem: str) -> None:
    with pytest.raises(Exception, match=problem):
        parse_profile(yaml.safe_dump(profile_with(edit)))


def test_every_bundled_profile_round_trips_through_json() -> None:
    from edgeship.device_profiles.schema import DeviceProfile

    for profile in list_profiles():
        assert DeviceProfile.model_validate_json(profile.model_dump_json()) == profile


@pytest.mark.parametrize(("flags", "bf16"), [(RECORDED_EPYC_FLAGS, True), (NO_BF16, False)],
                         ids=["avx512_bf16", "no-avx512_bf16"])
def test_compress_on_this_host_plans_with_the_flags_the_host_reports(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], bf16: bool
) -> None:
    """End to end through compress: the flags come from the (here: constructed) cpuinfo of the
    machine it measures on, and the plan it makes from them is the one that ran."""
    import edgeship
    import edgeship.compression.plan as planner
    from edgeship.recipe import ExportStep, Recipe

    plans: list[Any] = []
    real = planner.plan_recipes

    def spy(profile: Any, facts: ModelFacts, cpu_flags: Any = None) -> Any:
        plans.append(real(profile, facts, cpu_flags))
        return plans[-1]

    monkeypatch.setattr(sysinfo, "cpu_flags", lambda: list(flags))
    monkeypatch.setattr(sysinfo, "host_facts", lambda: x86_facts(flags))
    monkeypatch.setattr(planner, "plan_recipes", spy)
    repo = Path(__file__).resolve().parents[1]
    result = edgeship.compress(
        repo / "examples" / "models" / "digits_cnn.onnx", "x86-avx512-vnni",
        data=repo / "examples" / "data" / "digits_test.npz", runs=3, warmup=0, min_seconds=0,
        threads=1, progress=False,
        recipes=[Recipe(name="fp32-onnx", steps=(ExportStep(to="onnx"),))])
    assert result.measured_on["matches_profile"] is True
    assert ("bf16" in result.measured_on["cpu_precisions"]) is bf16
    assert ("bf16-openvino" in [r.name for r in plans[0].recipes]) is bf16
    assert "cpu_flags" not in result.measured_on


def test_a_drivable_accelerator_without_an_engine_is_listed_with_the_reason() -> None:
    data = yaml.safe_load((PROFILE_DIR / "intel-core-ultra.yaml").read_text())
    data["formats"] = ["tflite"]  # OpenVINO runs no .tflite: neither GPU nor NPU gets an engine
    plan = plan_recipes(parse_profile(yaml.safe_dump(data)), CONV)
    skipped = dict(plan.skipped)
    assert "no format of the profile runs on openvino:NPU" in \
        skipped["accelerator npu (Intel AI Boost NPU)"]
    assert any(n.startswith("accelerator gpu") for n in skipped)


def test_a_zero_2_w_on_32_bit_raspberry_pi_os_is_still_a_zero_2_w() -> None:
    facts = {"machine": "armv7l", "python_bits": 32, "device_model": "Raspberry Pi Zero 2 W Rev 1.0",
             "cpu_model": None, "cpu_flags": ["half", "thumb", "fastmult", "vfp", "edsp", "neon"],
             "cpu_parts": ["0x41:0xd03"], "cpu_count": 4, "memory_total_mb": 420.0}
    found = detect_profile(FakeDevice(facts))
    assert found.profile is not None and found.profile.name == "raspberry-pi-zero-2w"
    assert [v.id for v in found.variants] == ["32-bit-os"]
    assert match_profile(facts, [load_profile("jetson-nano")])[0] is None

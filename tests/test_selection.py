"""The selection rule of compress (edgeship.compression.select), on candidates built from made-up
inputs: the Pareto front, the parity tolerance a planned candidate is held to, the misses named,
and the pick by --prefer.  Pure and fast: no model is built or measured here (the end-to-end
search is tests/test_compress.py)."""

from __future__ import annotations

from typing import Optional

import pytest
from edgeship.budget import Budget
from edgeship.compression.candidate import Candidate, Planned, tolerance
from edgeship.compression.judge import Evaluation
from edgeship.compression.select import (
    fastest_engines,
    mark_front,
    misses,
    no_fit_message,
    select,
)
from edgeship.converters.fidelity import Fidelity
from edgeship.recipe import DistillStep, ExportStep, PruneStep, QuantizeStep, Recipe
from edgeship.runtime.bench import SCHEMA, BenchmarkResult

BUDGET = Budget(max_latency_ms=5.0, max_memory_mb=100.0, max_size_mb=1.0, max_accuracy_drop=1.0)


def _bench(latency_ms: float, memory_mb: float, size_bytes: int) -> BenchmarkResult:
    lat = {"min": latency_ms, "p50": latency_ms, "p90": latency_ms * 1.1,
           "p99": latency_ms * 1.3, "max": latency_ms * 1.5, "mean": latency_ms, "std": 0.0,
           "runs": 20}
    return BenchmarkResult.from_dict({
        "schema": SCHEMA, "model": {"name": "m.onnx", "size_bytes": size_bytes},
        "backend": {"name": "onnxruntime"}, "inputs": [], "config": {}, "load_ms": 1.0,
        "first_inference_ms": 1.0, "latency_ms": lat, "throughput_ips": 1e3 / latency_ms,
        "memory": {"peak_rss_mb": memory_mb}, "thermal": {}, "cpu_frequency": {}, "host": {}})


def _cand(name: str, drop: float, latency_ms: float, memory_mb: float = 50.0,
          size_bytes: int = 500_000, *, precision: str = "int8",
          engine: Optional[str] = "onnx", structural: bool = False,
          budget: Budget = BUDGET) -> Candidate:
    """A measured candidate: its made-up figures held to ``budget`` by the real Budget."""
    planned = Planned.of(Recipe(name, (ExportStep(),)), precision, engine=engine,
                         structural=structural)
    fid = Fidelity("labelled classification", "classification", "top1_drop", drop, "pt", False,
                   False, 100, {"accuracy": 95.0 - drop, "baseline_accuracy": 95.0})
    bench = _bench(latency_ms, memory_mb, size_bytes)
    return Candidate(planned, evaluation=Evaluation(fid, 100, {}), benchmark=bench,
                     verdict=budget.evaluate(bench, fidelity=fid))


# -- the Pareto front ---------------------------------------------------------------------------
def test_the_front_keeps_every_trade_off_and_drops_the_dominated() -> None:
    exact = _cand("fp32", 0.0, 4.0, size_bytes=900_000, precision="fp32")
    fast = _cand("int8", 0.8, 1.0, size_bytes=300_000)
    worse = _cand("int8-slow", 0.9, 2.0, size_bytes=300_000)  # fast beats it on everything
    twin = _cand("int8-twin", 0.8, 1.0, size_bytes=300_000)  # equal to fast: neither dominates
    lean = _cand("tiny", 2.0, 3.0, memory_mb=10.0, size_bytes=100_000)  # least memory and size
    failed = Candidate(Planned.of(Recipe("broken", (ExportStep(),)), "fp32"), error="boom")
    cands = [exact, fast, worse, twin, lean, failed]
    mark_front(cands, "p50")
    assert [c.name for c in cands if c.on_front] == ["fp32", "int8", "int8-twin", "tiny"]
    assert not failed.on_front  # never measured: not on any front


def test_the_front_reads_the_budgets_percentile() -> None:
    steady = _cand("steady", 0.5, 2.0)
    jittery = _cand("jittery", 0.5, 1.9)
    assert jittery.benchmark is not None
    jittery.benchmark.latency_ms.p99 = 5.0  # faster at p50, slower at p99
    mark_front([steady, jittery], "p50")
    assert (steady.on_front, jittery.on_front) == (False, True)
    mark_front([steady, jittery], "p99")
    assert (steady.on_front, jittery.on_front) == (True, False)


# -- tolerance: what the planner knew, never the name --------------------------------------------
@pytest.mark.parametrize(("precision", "structural", "expected"), [
    ("fp32", False, ("fp32", True)), ("fp16", False, ("fp16", True)),
    ("bf16", False, ("fp16", False)), ("int8", False, ("int8", False)),
    ("fp32", True, ("fp32", False)), ("int8", True, ("fp32", False)),
])
def test_the_parity_tolerance_follows_the_precision_class(
        precision: str, structural: bool, expected: tuple[str, bool]) -> None:
    assert tolerance(precision, structural) == expected
    planned = Planned.of(Recipe("x", (ExportStep(),)), precision, structural=structural)
    assert (planned.tolerance, planned.gated) == expected


def test_a_users_recipe_is_classed_by_its_steps_not_its_name() -> None:
    lying = Planned.from_recipe(Recipe("fp32-onnx", (QuantizeStep(mode="static"),)))
    assert (lying.precision, lying.tolerance, lying.gated) == ("int8", "int8", False)
    halves = Planned.from_recipe(Recipe("int8-openvino", (ExportStep(to="openvino",
                                                                      precision="fp16"),)))
    assert (halves.precision, halves.gated, halves.runs_on) == ("fp16", True, "openvino")
    hinted = Planned.from_recipe(Recipe("a", (ExportStep(to="openvino"),), precision="bf16"))
    assert (hinted.precision, hinted.tolerance, hinted.gated) == ("bf16", "fp16", False)
    pruned = Planned.from_recipe(Recipe("int8-x", (PruneStep(), DistillStep(),
                                                   ExportStep(to="onnx"))))
    assert (pruned.structural, pruned.gated) == (True, False)


def test_the_model_as_given_is_known_by_its_steps() -> None:
    given = Recipe("whatever", (ExportStep(to="onnx"),))
    assert Planned.from_recipe(given, "onnx").as_given
    assert Planned.from_recipe(given, "torch").as_given  # a torch model's own export
    assert not Planned.from_recipe(given, "openvino").as_given
    other_backend = Recipe("whatever", (ExportStep(to="onnx"),), backend="openvino")
    assert not Planned.from_recipe(other_backend, "onnx").as_given


def test_structural_candidates_go_to_the_fastest_engine_per_precision_class() -> None:
    cands = [
        _cand("a", 0.0, 4.0, precision="fp32", engine="onnx"),
        _cand("b", 0.0, 3.0, precision="fp32", engine="openvino"),
        _cand("c", 0.5, 2.0, precision="int8", engine="onnx"),
        _cand("d", 3.0, 1.0, precision="int8", engine="tflite"),  # lost accuracy: not a choice
        _cand("e", 0.0, 0.5, precision="bf16", engine="openvino"),  # neither fp32 nor int8
        _cand("f", 0.0, 0.4, precision="int8", engine="tflite", structural=True),
        _cand("g", 0.0, 0.3, precision="int8", engine=None),  # a user's recipe: no engine
    ]
    assert fastest_engines(cands) == {"fp32": "openvino", "int8": "onnx"}


# -- misses -------------------------------------------------------------------------------------
def test_misses_name_each_budget_with_its_margin() -> None:
    slow = _cand("slow", 0.5, 6.0, size_bytes=1_500_000)
    assert not slow.fits
    assert slow.verdict is not None
    assert misses(slow.verdict) == ("latency p50 6 ms > 5 ms (+1 ms, +20%); "
                                    "size 1.5 MB > 1 MB (+0.5 MB, +50%)")
    assert slow.status() == "misses " + misses(slow.verdict)


def test_no_fit_names_each_missed_budget_its_count_and_the_closest_miss() -> None:
    cands = [_cand("a", 0.5, 6.0), _cand("b", 0.5, 5.5), _cand("c", 1.5, 1.0)]
    message = no_fit_message(cands)
    assert message.startswith("no candidate meets every budget: ")
    assert "latency budget 5 ms missed by 2 of 3 (closest: b, latency p50 5.5 ms > 5 ms" in message
    assert "accuracy_drop budget 1 pt missed by 1 of 3 (closest: c," in message
    broken = [Candidate(Planned.of(Recipe("x", (ExportStep(),)), "fp32"), error="boom")]
    assert no_fit_message(broken) == "none of 1 candidates could be built and measured"


# -- the pick -----------------------------------------------------------------------------------
def test_prefer_picks_the_least_of_its_metric_among_those_that_fit() -> None:
    fast = _cand("fast", 0.5, 1.0, memory_mb=80.0, size_bytes=800_000)
    small = _cand("small", 0.5, 3.0, memory_mb=60.0, size_bytes=200_000)
    lean = _cand("lean", 0.5, 4.0, memory_mb=20.0, size_bytes=600_000)
    fastest = _cand("fastest", 1.5, 0.5, memory_mb=10.0, size_bytes=100_000)  # misses accuracy
    cands = [fast, small, lean, fastest]
    picks = {prefer: select(cands, prefer) for prefer in ("latency", "size", "memory")}
    assert {k: v.name if v else None for k, v in picks.items()} == {
        "latency": "fast", "size": "small", "memory": "lean"}


def test_prefer_breaks_ties_by_the_other_metrics_in_order() -> None:
    a = _cand("a", 0.5, 2.0, memory_mb=30.0, size_bytes=500_000)
    b = _cand("b", 0.5, 2.0, memory_mb=40.0, size_bytes=400_000)  # same latency, smaller
    assert select([a, b], "latency").name == "b"  # type: ignore[union-attr]  # then size
    c = _cand("c", 0.5, 1.0, memory_mb=30.0, size_bytes=500_000)
    assert select([a, c], "memory").name == "c"  # type: ignore[union-attr]  # then latency


def test_nothing_is_picked_when_nothing_fits() -> None:
    assert select([_cand("a", 2.0, 1.0), _cand("b", 0.1, 9.0)], "latency") is None
    assert select([], "size") is None

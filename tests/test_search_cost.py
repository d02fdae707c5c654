"""What a compress search costs and says about it: built candidates come from the cache on a
re-run (keyed by source, recipe, data and tools), ``time_budget`` skips what it cannot start,
every candidate emits start/end events with its timings, and every result names its judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeship.recipe import ExportStep, QuantizeStep, Recipe

from tests.fixtures.cli import run_cli_process

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "models" / "digits_cnn.onnx"
DIGITS_TEST = REPO / "examples" / "data" / "digits_test.npz"
TWO = [Recipe("fp32-onnx", (ExportStep(to="onnx"),), backend="onnxruntime"),
       Recipe("int8-onnx", (QuantizeStep(backend="onnxruntime"),), backend="onnxruntime")]
QUICK = {"runs": 5, "warmup": 1, "min_seconds": 0.0, "threads": 1, "progress": False}


def _compress(tmp: Path, cache: Path, **kwargs: object) -> object:
    import edgeship

    settings = {"data": DIGITS_TEST, **QUICK, **kwargs}
    return edgeship.compress(DIGITS, "x86-avx512-vnni", recipes=TWO, cache=cache,
                             **settings)  # type: ignore[arg-type]


def test_a_rerun_takes_built_candidates_from_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _compress(tmp_path, cache)
    events: list[dict] = []
    second = _compress(tmp_path, cache, events=events.append,
                       budget=__import__("edgeship").Budget(max_accuracy_drop=0.5))
    assert [c.cached for c in first.candidates] == [False, False]  # type: ignore[attr-defined]
    assert [c.cached for c in second.candidates] == [True, True]  # type: ignore[attr-defined]
    assert len(list(cache.iterdir())) == 2
    for a, b in zip(first.candidates, second.candidates):  # type: ignore[attr-defined]
        assert a.evaluation.fidelity.value == b.evaluation.fidelity.value
    assert [(e["event"], e["name"]) for e in events] == [
        ("candidate_start", "fp32-onnx"), ("candidate_end", "fp32-onnx"),
        ("candidate_start", "int8-onnx"), ("candidate_end", "int8-onnx")]
    assert events[-1]["timings"]["cached_build"] is True
    assert events[-1]["timings"]["measure_s"] > 0


def test_the_cache_key_changes_with_the_recipe_and_the_calibration_data(tmp_path: Path) -> None:
    from edgeship.compression.cache import CandidateCache

    a = CandidateCache(tmp_path, "sha-of-model", "sha-of-data")
    b = CandidateCache(tmp_path, "sha-of-model", "other-data")
    assert a.key(TWO[1]) != a.key(TWO[0])
    assert a.key(TWO[1]) != b.key(TWO[1])
    assert a.key(TWO[1]) != a.key(TWO[1], {"max_accuracy_drop": 1.0})
    assert a.key(TWO[1]) == CandidateCache(tmp_path, "sha-of-model", "sha-of-data").key(TWO[1])
    assert a.get(TWO[1], tmp_path / "into") is None  # nothing stored yet


def test_a_spent_time_budget_skips_the_candidates_not_started(tmp_path: Path) -> None:
    result = _compress(tmp_path, tmp_path / "cache", time_budget=1e-6)
    assert all(c.skipped == "the --time-budget was spent before it started"  # type: ignore[attr-defined]
               for c in result.candidates)  # type: ignore[attr-defined]
    assert result.pick is None  # type: ignore[attr-defined]


def test_labelled_data_is_judged_by_the_true_top1_drop(tmp_path: Path) -> None:
    result = _compress(tmp_path, tmp_path / "cache")
    from edgeship.compression.record import fidelity_record

    for c in result.candidates:  # type: ignore[attr-defined]
        record = fidelity_record(c)
        assert (record["judge"], record["metric"], record["estimated"]) == (
            "labelled classification", "top1_drop", False)
        assert record["decided_by"] == "accuracy_drop: top-1 drop (labelled)"
        assert c.evaluation.accuracy == pytest.approx(record["figures"]["accuracy"])


def test_every_candidate_record_names_its_judge_and_what_decided_it(
        tmp_path: Path, unlabelled: Path) -> None:
    result = _compress(tmp_path, tmp_path / "cache", data=unlabelled, output=tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["fidelity_judge"]["task"] == "classification"
    assert summary["fidelity_judge"]["metric"] == "estimated_drop"
    assert summary["candidates"][0]["accuracy"] is None  # nothing measured it without labels
    for cand in summary["candidates"]:
        f = cand["fidelity"]
        assert (f["judge"], f["tolerance"]) == ("unlabelled classification", 1.0)
        assert f["decided_by"] == "accuracy_drop: estimated drop (no labels)"
        assert set(cand["timings"]) == {"build_s", "evaluate_s", "measure_s", "cached_build"}
    assert result.ok  # type: ignore[attr-defined]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "unlabelled classification" in html  # the judge, in the candidate table
    assert "− estimated drop (no labels) (pt)" in html  # the plot's axis: no accuracy measured


@pytest.fixture()
def unlabelled(tmp_path: Path) -> Path:
    path = tmp_path / "digits_x.npz"
    np.savez(path, x=np.load(DIGITS_TEST)["x"])
    return path


def _cli(*args: str) -> Any:
    return run_cli_process("compress", str(DIGITS), "--device", "x86-avx512-vnni", "--data", str(DIGITS_TEST),
                    "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--threads", "1", *args,
                    timeout=600, columns=200)


def test_the_cli_names_task_and_output_error_budget(tmp_path: Path) -> None:
    recipes = tmp_path / "r.yaml"
    recipes.write_text("recipes:\n  - name: fp32-onnx\n    steps: [{step: export, to: onnx}]\n")
    proc = _cli("--task", "regression", "--min-snr-db", "40", "--recipes", str(recipes),
                "--cache-dir", str(tmp_path / "cache"), "--json", "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr

    def strict(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    summary = json.loads(proc.stdout, parse_constant=strict)  # identical outputs: no Infinity
    assert summary["candidates"][0]["fidelity"]["value"] == 200.0
    assert summary["fidelity_judge"] == {
        "task": "regression", "metric": "snr_db", "reason": "task regression named by --task; "
        "the labels are not used (they apply to class scores)"}
    (cand,) = summary["candidates"]
    assert cand["fidelity"]["judge"] == "output error" and cand["fidelity"]["tolerance"] == 40
    assert cand["fidelity"]["decided_by"] == "snr: SNR"
    assert "top1_agreement" not in cand["fidelity"]["figures"]
    assert cand["accuracy_drop"] is None and summary["budget"]["min_snr_db"] == 40
    assert "fidelity judge: regression, snr_db" in proc.stderr


def test_an_unknown_metric_is_one_line_exit_2(tmp_path: Path) -> None:
    proc = _cli("--metric", "f1", "--no-cache", "-o", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "unknown fidelity metric 'f1'" in lines[0], proc.stderr

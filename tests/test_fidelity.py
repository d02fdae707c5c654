"""Fidelity judges (converters/fidelity.py) and the budget/selection logic that uses them: each
judge's figures on hand-checkable outputs, the task inferred from the output shape and said so,
a real [N,1]-output model (Silero VAD) judged by output error and never by argmax, and the
search's rules for budgets, fallbacks and the pick."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from edgeship.budget import Budget
from edgeship.converters.fidelity import (
    Fidelity,
    FidelitySpec,
    box_agreement,
    classification_figures,
    judge,
    output_error_figures,
)
from edgeship.core.errors import ConfigError
from edgeship.runtime.results import MemoryUse, ModelFacts

from tests.fixtures.corpus import corpus_model

# three samples, three classes, as probabilities (rows sum to 1)
REF = np.array([[0.6, 0.3, 0.1],   # confident: class 0
                [0.4, 0.35, 0.25],  # near tie between 0 and 1
                [0.1, 0.2, 0.7]])   # confident: class 2
# the candidate flips sample 1 to class 1 (a near tie) and keeps the others
CAND = np.array([[0.55, 0.35, 0.1],
                 [0.34, 0.41, 0.25],
                 [0.1, 0.25, 0.65]])


def test_the_estimated_drop_charges_a_near_tie_flip_its_probability_gap() -> None:
    figures = classification_figures(REF, CAND)
    # only sample 1 changed its top-1: p_ref[0] - p_ref[1] = 0.05, over 3 samples = 1.667 pt
    assert figures["estimated_drop"] == pytest.approx(100 * 0.05 / 3)
    assert figures["top1_agreement"] == pytest.approx(200 / 3)
    assert figures["agreement_drop"] == pytest.approx(100 / 3)  # plain agreement: 33 pt "lost"
    assert figures["top5_agreement"] == 100.0
    assert figures["confident_share"] == pytest.approx(200 / 3)  # samples 0 and 2 (p > 0.5)
    assert figures["confident_agreement"] == 100.0
    assert figures["probabilities"] == "probabilities as given"
    kl = sum(p * math.log(p / q) for r, c in zip(REF, CAND) for p, q in zip(r, c)) / 3
    assert figures["kl_divergence"] == pytest.approx(kl, rel=1e-6)


def test_logits_are_turned_into_probabilities_by_softmax() -> None:
    logits = np.log(REF) + 3.0  # softmax(log p + c) == p
    figures = classification_figures(logits, np.log(CAND) - 1.0)
    assert figures["estimated_drop"] == pytest.approx(100 * 0.05 / 3)
    assert figures["probabilities"].startswith("softmax")


def test_labelled_classification_is_judged_by_the_top1_drop_on_the_labels() -> None:
    labels = np.array([0, 1, 2])  # the candidate's flip happens to be right
    spec = FidelitySpec.infer(REF.shape, labelled=True)
    f = judge([REF], [CAND], spec, labels)
    assert (f.judge, f.metric, f.estimated) == ("labelled classification", "top1_drop", False)
    assert f.figures["baseline_accuracy"] == pytest.approx(200 / 3)
    assert f.figures["accuracy"] == 100.0
    assert f.value == pytest.approx(-100 / 3)  # it gained a third


def test_without_labels_the_estimate_decides_and_is_labelled_as_an_estimate() -> None:
    spec = FidelitySpec.infer(REF.shape)
    f = judge([REF], [CAND], spec)
    assert (f.judge, f.metric, f.estimated) == ("unlabelled classification", "estimated_drop", True)
    assert f.label == "estimated drop (no labels)"
    assert spec.reason.startswith("inferred from the output shape (N, 3): 3 class scores")
    assert f.figures["estimated_drop_upper"] > f.value


@pytest.mark.parametrize("shape", [(8, 1), (8,), (8, 4, 16), (8, 3, 32, 32)])
def test_outputs_that_are_not_class_scores_are_judged_by_output_error(shape: tuple[int, ...]) -> None:
    spec = FidelitySpec.infer(shape)
    assert (spec.task, spec.metric) == ("regression", "snr_db")
    assert "not class scores" in spec.reason


def test_the_user_names_the_task_and_metric_and_bad_names_are_one_line_errors() -> None:
    spec = FidelitySpec.infer((8, 128), task="embedding")
    assert (spec.task, spec.metric, spec.reason) == ("embedding", "snr_db",
                                                     "task embedding named by --task")
    assert FidelitySpec.infer((8, 128), metric="cosine").task == "regression"
    with pytest.raises(ConfigError, match="unknown task 'segmentation'"):
        FidelitySpec.infer((8, 10), task="segmentation")
    with pytest.raises(ConfigError, match="metric snr_db does not apply to task classification"):
        FidelitySpec.infer((8, 10), task="classification", metric="snr_db")
    with pytest.raises(ConfigError, match="needs \\(N, classes\\) outputs"):
        FidelitySpec.infer((8, 1), task="classification")
    with pytest.raises(ConfigError, match="top1_drop needs labelled data"):
        FidelitySpec.infer((8, 10), metric="top1_drop")


def test_output_error_figures_are_snr_relative_error_and_cosine() -> None:
    ref = np.array([[3.0, 4.0], [0.0, 5.0]])
    cand = ref + np.array([[0.3, 0.4], [0.0, 0.5]])  # 10 % error on every sample
    figures = output_error_figures([ref], [cand])
    assert figures["rel_error"] == pytest.approx(0.1)
    assert figures["snr_db"] == pytest.approx(20.0)
    assert figures["cosine"] == pytest.approx(1.0)
    exact = output_error_figures([ref], [ref.copy()])
    assert exact["snr_db"] == 200.0 and exact["rel_error"] == 0.0  # finite: plain JSON


def test_one_score_per_sample_gets_a_cosine_over_the_samples_not_its_sign() -> None:
    ref = np.array([[0.1], [0.9], [0.2], [0.8]])
    flipped = ref[::-1].copy()  # every score moved, all still positive
    figures = output_error_figures([ref], [flipped])
    a, b = ref.ravel(), flipped.ravel()
    assert figures["cosine"] == pytest.approx(float(a @ b) / float(a @ a))
    assert figures["cosine"] < 0.7


def test_matched_boxes_count_confident_boxes_found_at_iou_half() -> None:
    ref = np.array([[[0, 0, 10, 10, 0.9], [20, 20, 30, 30, 0.8], [0, 0, 1, 1, 0.1]]], float)
    cand = np.array([[[1, 1, 10, 10, 0.9], [50, 50, 60, 60, 0.7], [0, 0, 1, 1, 0.1]]], float)
    # box 1 matches (IoU 0.81); box 2 has no partner; the 0.1-score box is below the threshold
    assert box_agreement(ref, cand) == pytest.approx(50.0)
    spec = FidelitySpec.infer(ref.shape, task="detection")
    f = judge([ref], [cand], spec)
    assert f.judge == "output error" and f.figures["box_agreement"] == pytest.approx(50.0)


# -- a real [N,1]-output model -----------------------------------------------------------------
def _vad_inputs() -> np.ndarray:
    """64 chunks of 512 samples at 16 kHz: seeded tones (every other chunk) over noise."""
    rng = np.random.default_rng(0)
    t = np.arange(512) / 16000
    return np.stack([0.3 * np.sin(2 * np.pi * (100 + 50 * i) * t) * (i % 2)
                     + 0.05 * rng.standard_normal(512) for i in range(64)]).astype(np.float32)


def _vad(path: Path, with_sr: bool = True) -> np.ndarray:
    import onnxruntime as ort

    x = _vad_inputs()
    feeds = {"input": x, "state": np.zeros((2, len(x), 128), np.float32)}
    if with_sr:
        feeds["sr"] = np.array(16000, np.int64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], feeds)[0]


@pytest.fixture(scope="module")
def vad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Silero VAD (PyPI silero-vad 6.2.3, MIT): the 16 kHz model, our fp16 conversion of it,
    and the package's own half-size model (a different network, not a drop-in)."""
    from edgeship.converters.quantize import quantize

    src = corpus_model("silero_vad_16k_op15")
    fp16 = quantize(src, tmp_path_factory.mktemp("vad") / "vad.fp16.onnx", mode="fp16",
                    backend="onnxruntime").path
    return {"ref": _vad(src), "fp16": _vad(fp16), "half": _vad(corpus_model("silero_vad_half"),
                                                                with_sr=False)}


def test_a_voice_activity_score_is_judged_by_output_error_not_argmax(vad: dict) -> None:
    ref = vad["ref"]
    assert ref.shape == (64, 1)
    spec = FidelitySpec.infer(ref.shape)
    budget = Budget(min_snr_db=20)
    good = judge([ref], [vad["fp16"]], spec)
    bad = judge([ref], [vad["half"]], spec)
    assert good.judge == bad.judge == "output error"
    assert "top1_agreement" not in good.figures  # argmax of one score agrees 100 %, always
    assert good.value > 40  # fp16 weights: ~60 dB
    assert bad.value < 0  # another network: its scores are off by more than they are
    assert budget.fidelity_check(good).ok is True  # type: ignore[union-attr]
    check = budget.fidelity_check(bad)
    assert check is not None and check.name == "snr" and check.ok is False
    assert check.relation == "<" and check.margin == pytest.approx(20 - bad.value)


# -- budgets and selection ---------------------------------------------------------------------
def _fidelity(metric: str, value: float, figures: dict | None = None) -> Fidelity:
    higher = metric in ("snr_db", "cosine")
    return Fidelity("x", "classification" if metric.endswith("drop") else "regression", metric,
                    value, "pt", higher, metric == "estimated_drop", 10, figures or {})


def test_max_accuracy_drop_holds_the_estimate_and_names_it() -> None:
    check = Budget(max_accuracy_drop=1.0).fidelity_check(_fidelity("estimated_drop", 0.8))
    assert check is not None
    assert (check.name, check.ok, check.detail) == ("accuracy_drop", True, "estimated drop (no labels)")
    assert Budget(max_accuracy_drop=1.0).fidelity_check(_fidelity("snr_db", 30)) is None


def test_output_error_gets_the_documented_default_and_the_budgeted_metric() -> None:
    from edgeship.compression.judge import DEFAULT_MIN_SNR_DB, fidelity_budget

    spec = FidelitySpec.infer((8, 1))
    budget, same = fidelity_budget(Budget(max_accuracy_drop=1.0), spec, metric_given=False)
    assert (budget.min_snr_db, same.metric) == (DEFAULT_MIN_SNR_DB, "snr_db")
    budget, rel = fidelity_budget(Budget(max_rel_error=0.05), spec, metric_given=False)
    assert (rel.metric, budget.min_snr_db, budget.max_rel_error) == ("rel_error", None, 0.05)
    classes = FidelitySpec.infer((8, 10))
    assert fidelity_budget(Budget(max_accuracy_drop=1.0), classes, False)[0].min_snr_db is None
    with pytest.raises(ConfigError, match="--min-snr-db hold outputs judged by output error"):
        fidelity_budget(Budget(min_snr_db=30), classes, False)  # never silently unused


def _measured(name: str, drop: float, latency: float, upper: float | None = None,
              budget: Budget | None = None) -> object:
    from edgeship.compression.candidate import Candidate, Planned
    from edgeship.compression.judge import Evaluation
    from edgeship.recipe import ExportStep, Recipe
    from edgeship.runtime.bench import BenchmarkResult

    figures = {"estimated_drop": drop, "estimated_drop_upper": upper if upper is not None else drop}
    fid = _fidelity("estimated_drop", drop, figures)
    bench = BenchmarkResult.__new__(BenchmarkResult)
    cand = Candidate(Planned.from_recipe(Recipe(name, (ExportStep(),))), evaluation=Evaluation(fid, 10, {}),
                     benchmark=bench)
    cand.latency = lambda percentile="p50": latency  # type: ignore[method-assign]
    cand.verdict = (budget or Budget(max_accuracy_drop=1.0)).evaluate(None, fidelity=fid)
    return cand


def test_an_accuracy_aware_search_runs_only_after_a_real_miss() -> None:
    from edgeship.compression.select import fallback_needed

    kept = _measured("int8-onnx", 0.5, 3.0)
    assert "already kept fidelity" in fallback_needed(kept, [kept], "p50")  # type: ignore[operator]
    near = _measured("int8-onnx", 1.2, 3.0)  # 0.2 pt over a 1 pt budget: within 25 %
    assert "by only 0.2 pt" in fallback_needed(near, [near], "p50")  # type: ignore[operator]
    noisy = _measured("int8-onnx", 1.4, 3.0, upper=2.0)  # over by 0.4, uncertainty 0.6
    assert "within 0.6 pt" in fallback_needed(noisy, [noisy], "p50")  # type: ignore[operator]
    real = _measured("int8-onnx", 3.0, 3.0, upper=3.2)
    assert fallback_needed(real, [real], "p50") is None
    faster = _measured("int8-openvino", 0.4, 2.0)
    reason = fallback_needed(real, [real, faster], "p50")
    assert reason is not None and reason.startswith("int8-openvino already fits every budget")
    slower = _measured("fp32-onnx", 0.0, 6.0)
    assert fallback_needed(real, [real, slower], "p50") is None


def test_the_pick_is_the_fastest_inside_every_budget() -> None:
    from edgeship.compression.select import select

    cands = [_measured("fp32", 0.0, 6.0), _measured("int8-a", 1.5, 1.0),
             _measured("int8-b", 0.6, 2.0), _measured("bf16", 0.1, 2.5)]
    for c in cands:
        c.benchmark.model = ModelFacts(size_bytes=1)  # type: ignore[attr-defined]
        c.benchmark.memory = MemoryUse(peak_rss_mb=1.0)  # type: ignore[attr-defined]
        c.benchmark.latency = c.latency  # type: ignore[attr-defined]
    pick = select(cands, "latency")  # type: ignore[arg-type]
    assert pick is not None and pick.name == "int8-b"  # int8-a is faster but misses 1 pt


def test_agreement_reports_no_argmax_agreement_for_one_score_per_sample() -> None:
    from edgeship.converters.evaluate import agreement_of

    ref = np.array([[0.1], [0.9], [0.2]], np.float32)
    assert agreement_of(ref, 1 - ref).top1 is None  # an argmax of one value always "agrees"
    assert agreement_of(REF, CAND).top1 == pytest.approx(2 / 3)


def test_quantizing_a_model_onnxruntime_cannot_shape_leaves_the_working_dir_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeship.converters.quantize import quantize

    from examples.models_zoo import magika_content_type as magika

    model = magika.prepare(tmp_path / "model" / "magika.onnx")
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    # Magika's symbolic shape inference is incomplete: onnxruntime then saves a debug copy
    # (sym_shape_infer_temp.onnx + external data) into the working directory
    quantize(model, tmp_path / "out" / "magika.fp16.onnx", mode="fp16", backend="onnxruntime")
    assert list(here.iterdir()) == []
    assert Path.cwd() == here


def test_static_int8_of_magika_quantizes_the_graph_onnxruntime_can_and_says_which(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """quant_pre_process's fusions of Magika trip onnxruntime's own per-channel bias check
    (it compares arrays): the model as given quantizes, and the warning says so."""
    from edgeship.converters.quantize import quantize
    from edgeship.runtime import load

    from examples.models_zoo import magika_content_type as magika

    model = magika.prepare(tmp_path / "model" / "magika.onnx")
    x = np.random.default_rng(0).integers(0, 257, (16, 2048)).astype(np.int32)
    result = quantize(model, tmp_path / "out" / "magika.int8.onnx", mode="static",
                      backend="onnxruntime", calib=x)
    assert "quantized the model without quant_pre_process" in capfd.readouterr().err
    probs = load(result.path).run({"bytes": x[:4]})["target_label"]
    assert probs.shape == (4, 214) and np.allclose(probs.sum(1), 1, atol=0.05)


def test_a_missed_floor_reads_as_a_floor() -> None:
    from edgeship.budget import Check, Verdict
    from edgeship.compression.select import misses

    snr = Check("snr", 20.0, 15.2, "dB", "SNR", higher_is_better=True)
    drop = Check("accuracy_drop", 1.0, 1.5, "pt", "estimated drop (no labels)")
    assert (snr.ok, snr.margin) == (False, pytest.approx(4.8))
    assert misses(Verdict([snr, drop])) == (
        "snr SNR 15.2 dB < 20 dB (-4.8 dB, -24%); "
        "accuracy_drop estimated drop (no labels) 1.5 pt > 1 pt (+0.5 pt, +50%)")

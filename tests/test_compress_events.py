"""The search emits events and draws nothing itself: a listener hears the setting, each
candidate's start, stages and end; the API with progress=False prints nothing; the default
progress=True prints plain lines (the CLI's bar is edgeship.cli.progress)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edgeship.compression.events import Listener
from edgeship.recipe import ExportStep, QuantizeStep, Recipe

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "models" / "digits_cnn.onnx"
DIGITS_TEST = REPO / "examples" / "data" / "digits_test.npz"
QUICK = {"runs": 3, "warmup": 0, "min_seconds": 0.0, "threads": 1, "cache": False}


class Record(Listener):
    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []

    def searching(self, where: Any) -> None:
        self.heard.append(("searching", where.kind))

    def started(self, cand: Any) -> None:
        self.heard.append(("started", cand.name))

    def stage(self, text: str) -> None:
        self.heard.append(("stage", text))

    def finished(self, cand: Any) -> None:
        self.heard.append(("finished", (cand.name, cand.fits)))

    def skipped(self, cand: Any) -> None:
        self.heard.append(("skipped", cand.name))

    def done(self) -> None:
        self.heard.append(("done", None))


def _compress(**kwargs: Any) -> Any:
    import edgeship

    recipes = [Recipe("fp32-onnx", (ExportStep(to="onnx"),)),
               Recipe("int8-onnx", (QuantizeStep(backend="onnxruntime"),)),
               # a fallback whose primary kept accuracy: skipped, never built
               Recipe("int8-aware", (QuantizeStep(backend="onnxruntime", accuracy_aware=True),),
                      only_if_missed="int8-onnx")]
    # an accuracy budget only: whether a candidate fits never depends on this host's speed
    return edgeship.compress(DIGITS, "x86-avx512-vnni", data=DIGITS_TEST, recipes=recipes,
                             budget=edgeship.Budget(max_accuracy_drop=1.0), **QUICK, **kwargs)


def test_a_listener_hears_the_whole_search_in_order(capfd: pytest.CaptureFixture[str]) -> None:
    heard = Record()
    events: list[dict[str, Any]] = []
    result = _compress(progress=heard, events=events.append)
    assert heard.heard[0] == ("searching", "host") and heard.heard[-1] == ("done", None)
    names = [(k, v) for k, v in heard.heard if k in ("started", "finished", "skipped")]
    assert names == [("started", "fp32-onnx"), ("finished", ("fp32-onnx", True)),
                     ("started", "int8-onnx"), ("finished", ("int8-onnx", True)),
                     ("skipped", "int8-aware")]
    stages = [v for k, v in heard.heard if k == "stage"]
    assert stages[:3] == ["building", "checking parity and accuracy",
                          "benchmarking on this host"]
    assert [(e["event"], e["name"]) for e in events] == [
        ("candidate_start", "fp32-onnx"), ("candidate_end", "fp32-onnx"),
        ("candidate_start", "int8-onnx"), ("candidate_end", "int8-onnx"),
        ("candidate_end", "int8-aware")]
    assert result.pick is not None
    assert capfd.readouterr().err == ""  # a listener given: nothing printed besides


def test_progress_false_prints_nothing_and_true_prints_lines(
        capfd: pytest.CaptureFixture[str]) -> None:
    _compress(progress=False)
    assert capfd.readouterr().err == ""
    _compress(progress=True)
    err = capfd.readouterr().err
    assert err.startswith("measured on THIS HOST")
    assert " 1. fp32-onnx: building…" in err and " 2. int8-onnx ✓ fits every budget" in err
    assert " 3. int8-aware – skipped: int8-onnx already kept fidelity" in err

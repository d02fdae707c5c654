"""The search loop: plan, then run each planned candidate (build and judge through an executor,
measure here), cheap first; fallbacks only when the candidate they answer missed; then the
structural candidates on the engines that measured fastest; finally the Pareto front.

Phases and their modules: ``facts`` (what the original is) -> ``plan`` (the candidates) ->
``executor``/``scaleout`` (build: ``build.Builder``, judge: ``judge``) ->
``measure`` (the benchmark on the target) -> ``select`` (misses, fallbacks, front, pick) ->
``write`` (summary.json, report.html, the pick).  Progress goes out as events (``events``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

from edgeship.budget import Budget
from edgeship.compression.build import Builder
from edgeship.compression.candidate import Candidate, Planned
from edgeship.compression.events import Listener
from edgeship.compression.judge import Judge, fidelity_budget
from edgeship.compression.original import Data, Original
from edgeship.compression.select import fallback_needed, fastest_engines, mark_front
from edgeship.recipe import Recipe


class Search:
    """Runs the candidates, cheap first, on one target; tells ``listener`` as it goes.

    What an executor reads: ``original``, ``data``, ``judge``, ``builder``, ``scratch``,
    ``where`` (the ``measure.Measurement``) and ``deadline_passed()``."""

    def __init__(self, original: Original, data: Data, profile: Any, budget: Budget, target: Any,
                 scratch: Path, *, threads: Optional[int], runs: int, warmup: int,
                 min_seconds: float, task: Optional[str] = None, metric: Optional[str] = None,
                 cache_dir: Optional[Path] = None, deadline: Optional[float] = None,
                 listener: Optional[Listener] = None, executor: Any = None,
                 lease: Optional[Callable[[], Any]] = None) -> None:
        from edgeship.compression.executor import InProcess
        from edgeship.compression.facts import original_facts
        from edgeship.compression.measure import Measurer

        self.executor = executor if executor is not None else InProcess()
        self.original, self.data, self.profile = original, data, profile
        self.scratch = scratch
        self.measurer = Measurer(target, profile, original, threads=threads, runs=runs,
                                 warmup=warmup, min_seconds=min_seconds, lease=lease)
        self.where = self.measurer.where
        self.facts = original_facts(original, scratch, self.data)
        self.judge = Judge(original, data, task, metric)
        self.budget, self.judge.spec = fidelity_budget(budget, self.judge.spec, metric is not None)
        spec = self.judge.spec
        self.original_facts = self.facts.to_dict(  # summary.json's "original"
            accuracy=self.judge.baseline,
            fidelity_judge={"task": spec.task, "metric": spec.metric, "reason": spec.reason})
        self.builder = Builder(original, data, scratch / "build", budget.max_accuracy_drop,
                               cache_dir)
        self.deadline = deadline
        self.listener = listener if listener is not None else Listener()

    def run(self, user: Optional[list[Recipe]]) -> tuple[list[Candidate], list[tuple[str, str]]]:
        """Every candidate's outcome (planned or the user's), and the planner's not-planned."""
        from edgeship.compression.facts import model_facts
        from edgeship.compression.plan import plan_recipes, structural_candidates

        facts = model_facts(self.original, self.facts, self.data,
                            self.budget.max_accuracy_drop,
                            class_scores=self.judge.spec.task == "classification")
        plan = plan_recipes(self.profile, facts, self.measurer.cpu_flags)
        if user is not None:
            first, skipped = [Planned.from_recipe(r, self.original.kind) for r in user], []
        else:
            first, skipped = sorted(plan.planned, key=lambda p: p.recipe.cost), plan.skipped
        done: list[Candidate] = []
        self.executor.open(self)
        interrupted = True
        try:
            self.listener.searching(self.where)
            self._phase(first, done)
            if user is None:
                fastest = fastest_engines(done, self.budget.percentile)
                self._phase(structural_candidates(plan, facts, fastest), done)
            interrupted = False
        finally:
            self.listener.done()
            self.executor.close(interrupted)
        mark_front(done, self.budget.percentile)
        return done, skipped

    def _phase(self, planned: list[Planned], done: list[Candidate]) -> None:
        """Run ``planned`` through the executor (``edgeship.compression.executor``) and measure
        each result here as it comes back; a fallback is decided only once every candidate
        before it is done, so the outcome is the same in process and on Ray."""
        slots: list[Optional[Candidate]] = [None] * len(planned)
        submitted: set[int] = set()

        def release() -> None:
            for i, p in enumerate(planned):
                if i in submitted:
                    continue
                if p.recipe.only_if_missed is not None:
                    if any(s is None for s in slots[:i]):
                        continue
                    why = self._not_now(p.recipe, [*done, *slots[:i]])  # type: ignore[list-item]
                    if why:
                        submitted.add(i)
                        slots[i] = self._skip(Candidate(p, skipped=why))
                        continue
                submitted.add(i)
                self.executor.submit(i, p)

        def started(i: int) -> None:
            self.listener.started(Candidate(planned[i]))

        release()
        while any(s is None for s in slots):
            i, outcome = self.executor.next(started, self.listener.stage)
            cand = Candidate(planned[i])
            if outcome.skipped:
                cand.skipped = outcome.skipped
                slots[i] = self._skip(cand)
            else:
                self._measure(cand, outcome)
                self.listener.finished(cand)
                slots[i] = cand
            release()
        done.extend(s for s in slots if s is not None)

    def _skip(self, cand: Candidate) -> Candidate:
        self.listener.skipped(cand)
        return cand

    def deadline_passed(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _not_now(self, recipe: Recipe, done: list[Candidate]) -> Optional[str]:
        """Why a candidate is skipped: the time budget is spent, or it is a fallback that has
        nothing to answer (see ``fallback_needed``)."""
        if self.deadline_passed():
            return "the --time-budget was spent before it started"
        primary = next((c for c in done if c.name == recipe.only_if_missed), None)
        return None if primary is None else fallback_needed(primary, done, self.budget.percentile)

    def _measure(self, cand: Candidate, outcome: Any) -> None:
        """A built and judged candidate, benchmarked on the target and held to the budget."""
        cand.path, cand.steps, cand.cached = outcome.path, outcome.steps or [], outcome.cached
        cand.macs = outcome.macs if outcome.macs is not None else self.facts.macs
        cand.evaluation = outcome.evaluation
        cand.seconds = dict(outcome.seconds or {})
        if outcome.error:
            cand.error = outcome.error
            return
        self.measurer.measure(cand, self.scratch, self.listener.stage, self.facts.input_shapes)
        if cand.error is None:
            assert cand.evaluation is not None
            cand.verdict = self.budget.evaluate(cand.benchmark,
                                                fidelity=cand.evaluation.fidelity)


__all__ = ["Search"]

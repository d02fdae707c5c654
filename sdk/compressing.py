"""``compress``: make a model fit a named device, and prove it with measurements.

From the device profile the planner (``edgeship.planner``) builds candidate recipes (formats
the device runs best x precisions its CPU/accelerators support, then structured pruning +
distillation); each candidate is built (converters), checked against the original (parity),
judged on the user's data by the fidelity judge for its outputs (``converters.fidelity``: the
top-1 drop with labels, the estimated drop without, output error for outputs that are not class
scores; built candidates come from ``edgeship.candidate_cache`` when it has them), and benchmarked on
the target: the device over SSH, or this host -- then labelled as the host's numbers, not the
device's.  A candidate that fails is recorded with its reason and the search goes on.  Builds
and evaluations run through an executor (``edgeship.search_exec``): in this process, or as Ray
tasks across a cluster (``ray=``, ``edgeship.scaleout``), with the same result.

Selection: the Pareto front over accuracy x latency x memory x size; the pick is the best
candidate inside every budget by ``prefer`` (latency by default, then size, then memory).
With no fit, the result says which budget each candidate missed and by how much.

Example:
    >>> import edgeship
    >>> r = edgeship.compress("examples/models/digits_cnn.onnx", "raspberry-pi-5",
    ...                       data="examples/data/digits_test.npz", output="out")  # doctest: +SKIP
    >>> r.pick.name, r.pick.latency()                                              # doctest: +SKIP
    ('int8-tflite', 0.0016)
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from edgeship.budget import Budget, Verdict
from edgeship.compress.build import Builder
from edgeship.compress.original import Data, Original, load_data
from edgeship.core.errors import ConfigError
from edgeship.judging import Judge
from edgeship.recipe import DistillStep, ExportStep, PruneStep, QuantizeStep, Recipe, load_recipes
from edgeship.selection import (
    FIDELITY_CHECKS,
    PREFER,
    Candidate,
    fallback_needed,
    mark_front,
    misses,
    select,
)

DEFAULT_MAX_ACCURACY_DROP = 1.0  # points; compress never picks a model without an accuracy guard
# Outputs that are not class scores: error RMS at most 10 % of the output RMS.  int8 post-training
# quantization of conv nets lands around 20-35 dB at the output, fp16 above 50 dB; below 20 dB a
# regression or score output is visibly another function.
DEFAULT_MIN_SNR_DB = 20.0
DEFAULT_OUTPUT_LIMITS = {"snr_db": ("min_snr_db", DEFAULT_MIN_SNR_DB),
                         "rel_error": ("max_rel_error", 0.1), "cosine": ("min_cosine", 0.99)}


@dataclass
class CompressResult:
    """What ``compress`` found; ``pick`` is None when no candidate fits every budget."""

    device: str
    budget: Budget
    prefer: str
    candidates: list[Candidate]
    pick: Optional[Candidate]
    measured_on: dict[str, Any]
    data: dict[str, Any]
    skipped: list[tuple[str, str]]
    wall_seconds: float
    original: dict[str, Any]
    output: Optional[Path] = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.pick is not None

    @property
    def front(self) -> list[Candidate]:
        return [c for c in self.candidates if c.on_front]

    def no_fit_message(self) -> str:
        """One line naming each budget that was missed, by how many candidates, and the
        closest miss."""
        measured = [c for c in self.candidates if c.measured and c.verdict is not None]
        if not measured:
            return f"none of {len(self.candidates)} candidates could be built and measured"
        parts = []
        for name in ("latency", "memory", "size", *FIDELITY_CHECKS):
            fails = [(chk, c) for c in measured for chk in c.verdict.failed  # type: ignore[union-attr]
                     if chk.name == name]
            if fails:
                chk, c = min(fails, key=lambda f: (f[0].margin is None, (f[0].margin or 0) / f[0].limit))
                parts.append(f"{name} budget {chk.limit:g} {chk.unit} missed by {len(fails)} of "
                             f"{len(measured)} (closest: {c.name}, {misses(Verdict([chk]))})")
        return "no candidate meets every budget: " + "; ".join(parts)


def compress(
    model: Any,
    device: str,
    *,
    target: Any = "local",
    data: Any = None,
    train_data: Any = None,
    budget: Optional[Budget] = None,
    prefer: str = "latency",
    threads: Optional[int] = None,
    recipes: Union[str, Path, list[Recipe], None] = None,
    output: Union[str, Path, None] = None,
    force: bool = False,
    runs: int = 100,
    warmup: int = 10,
    min_seconds: float = 1.0,
    example_input: Any = None,
    input_shapes: Optional[dict[str, tuple[int, ...]]] = None,
    input_fills: Optional[dict[str, Any]] = None,
    progress: bool = True,
    seed: int = 0,
    task: Optional[str] = None,
    metric: Optional[str] = None,
    time_budget: Optional[float] = None,
    cache: Union[str, Path, bool, None] = None,
    events: Optional[Callable[[dict[str, Any]], None]] = None,
    ray: Union[str, bool, None] = None,
    lab: Optional[str] = None,
) -> CompressResult:
    """Search compressed candidates of ``model`` for ``device`` and pick one inside ``budget``.

    Args:
        model: an .onnx file, a torch ``nn.Module`` (with ``example_input``), a .pt2/.pt file,
            or an OpenVINO .xml / .tflite file (fewer candidates: they cannot be re-exported).
        device: a device profile name (``edgeship profiles list``) or profile YAML file.
        target: ``"local"`` (measure on this host: labelled as such) or an SSH target/alias or
            ``Target`` (measure on the device).
        data: evaluation data (``edgeship.Dataset`` sources); with labels class scores are
            judged by the top-1 drop, without them by the drop estimated from the original's
            probabilities (``task``).  None: seeded random inputs.
        train_data: calibration/distillation samples; without it, ``data`` is split in two.
        budget: limits; None takes the profile's defaults.  ``max_accuracy_drop`` unset means
            ``DEFAULT_MAX_ACCURACY_DROP`` points.
        prefer: latency | size | memory: what "best" means among the candidates that fit.
        recipes: a YAML file or Recipe list to try instead of the planner's candidates.
        output: a directory to write (see ``edgeship.outdir``): the pick and its manifest,
            every candidate's benchmark JSON, report.html and summary.json.
        task, metric: the fidelity judge (``edgeship.converters.fidelity``): classification |
            regression | embedding | detection, and its metric; None infers them from the
            output shape (and the manifest's task) and says so in every result.
        time_budget: seconds for the whole search; candidates not started by then are skipped
            (and say so).
        cache: where built candidates are kept (``edgeship.candidate_cache``): None the default
            cache dir, a path, or False for none.
        events: called with ``{"event": "candidate_start" | "candidate_end", ...}`` per candidate.
        ray: build and evaluate the candidates as Ray tasks (``edgeship.scaleout``): ``"auto"``
            or True (``RAY_ADDRESS``, this machine's running cluster, or a new local one) or a
            cluster address;
            None searches in this process.  Needs ``pip install 'edgeship[ray]'``.
        lab: a Ray cluster address whose device lab (``edgeship.lab``) leases ``target``: no
            other measurement runs on that device meanwhile.
        input_shapes: ``{input name: shape}`` fixing dynamic dimensions (``--input-shape``), for
            every pass: random inputs, conversion, parity, evaluation and the benchmark.
        input_fills: ``{input name: runtime.inputs.InputFill}`` (``--input-value``/
            ``--input-range``): the values of random evaluation and parity inputs.
    """
    from edgeship.profiles import load_profile

    started = time.perf_counter()
    if prefer not in PREFER:
        raise ConfigError(f"unknown --prefer '{prefer}'", f"use one of {', '.join(PREFER)}")
    if runs < 1 or warmup < 0 or min_seconds < 0:
        raise ConfigError("--runs must be ≥ 1, --warmup and --min-seconds ≥ 0", "pass non-negative counts")
    if time_budget is not None and not time_budget > 0:
        raise ConfigError(f"--time-budget must be a positive number of seconds, got {time_budget}",
                          "pass e.g. --time-budget 180")
    profile = load_profile(device)
    budget = _budget(budget, profile)
    from edgeship.scaleout import search_plumbing

    executor, lease = search_plumbing(ray, lab, target)  # a missing Ray fails now, not later
    if output is not None:
        from edgeship.outdir import check_output_dir

        check_output_dir(output, force)  # refuse now, not after a long search
    user_recipes = recipes if isinstance(recipes, list) else (
        load_recipes(recipes) if recipes is not None else None)
    original = Original.open(model, example_input, input_shapes)
    original.input_fills = dict(input_fills or {})
    split = load_data(original, data, train_data, seed)
    with tempfile.TemporaryDirectory(prefix="edgeship-compress-") as scratch, \
            _open_target(target) as tgt:
        search = _Search(original, split, profile, budget, tgt, Path(scratch),
                         threads=threads, runs=runs, warmup=warmup, min_seconds=min_seconds,
                         task=task, metric=metric, cache_dir=_cache_dir(cache),
                         deadline=started + time_budget if time_budget else None, events=events,
                         executor=executor, lease=lease)
        candidates, skipped = search.run(user_recipes, progress)
        if ray is not None and ray is not False:
            search.measured_on["built_on"] = executor.describe()
        result = CompressResult(
            device=profile.name, budget=search.budget, prefer=prefer, candidates=candidates,
            pick=select(candidates, prefer, budget.percentile), measured_on=search.measured_on,
            data=split.describe(), skipped=skipped, wall_seconds=time.perf_counter() - started,
            original=search.original_facts)
        result.summary = build_summary(result)
        if output is not None:
            result.output = write_output(result, original, Path(output), force)
    return result


def _cache_dir(cache: Union[str, Path, bool, None]) -> Optional[Path]:
    from edgeship.candidate_cache import default_cache_dir

    if cache is False:
        return None
    return default_cache_dir() if cache is None or cache is True else Path(cache)


def fidelity_budget(budget: Budget, spec: Any, metric_given: bool) -> tuple[Budget, Any]:
    """The budget and judge spec a search holds candidates to: outputs judged by output error
    get the metric the user budgeted (``--max-rel-error`` alone means rel_error) and, with no
    limit for it, the documented default (``DEFAULT_OUTPUT_LIMITS``)."""
    if spec.task == "classification":
        unused = [f"--{name.replace('_', '-')}" for name, _ in DEFAULT_OUTPUT_LIMITS.values()
                  if getattr(budget, name) is not None]
        if unused:
            raise ConfigError(f"{', '.join(unused)} hold outputs judged by output error; these "
                              f"are class scores, judged by the accuracy drop ({spec.reason})",
                              "use --max-accuracy-drop, or pass --task regression")
        return budget, spec
    if not metric_given:
        given = [m for m, (name, _) in DEFAULT_OUTPUT_LIMITS.items()
                 if getattr(budget, name) is not None]
        if given:
            spec = dataclasses.replace(spec, metric=given[0])
    name, default = DEFAULT_OUTPUT_LIMITS[spec.metric]
    if getattr(budget, name) is None:
        budget = dataclasses.replace(budget, **{name: default})
    return budget, spec


def _budget(budget: Optional[Budget], profile: Any) -> Budget:
    if budget is None:
        budget = Budget(**profile.default_budget_dict())
    if budget.max_accuracy_drop is None:
        budget = dataclasses.replace(budget, max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP)
    return budget


class _open_target:  # noqa: N801 - a context manager used like a function
    """A Target for the whole search (one SSH connection), closed at the end if opened here."""

    def __init__(self, spec: Any) -> None:
        from edgeship.targets import Target, open_target

        self.owned = not isinstance(spec, Target)
        self.target = open_target(spec) if self.owned else spec

    def __enter__(self) -> Any:
        return self.target

    def __exit__(self, *exc: Any) -> None:
        if self.owned:
            self.target.close()


def _tolerance(recipe: Recipe) -> tuple[str, bool]:
    """The parity tolerance for a recipe, and whether it gates: a candidate meant to compute
    what the original computes (fp32, fp16) must match it within the converters' tolerance;
    int8, bf16 (8 mantissa bits: EfficientNet-Lite0's logits move by 0.5) and pruned/distilled
    models are judged by their accuracy instead (the parity figures are still recorded)."""
    if any(isinstance(s, (PruneStep, DistillStep)) for s in recipe.steps):
        return "fp32", False
    modes = {s.mode for s in recipe.steps if isinstance(s, QuantizeStep)}
    if modes & {"static", "dynamic"}:
        return "int8", False
    if recipe.precision == "bf16":
        return "fp16", False
    halves = "fp16" in modes or any(isinstance(s, ExportStep) and s.precision == "fp16"
                                    for s in recipe.steps)
    return ("fp16" if halves or recipe.precision == "fp16" else "fp32"), True


class _Search:
    """Runs the candidates, cheap first, on one target."""

    def __init__(self, original: Original, data: Data, profile: Any, budget: Budget, target: Any,
                 scratch: Path, *, threads: Optional[int], runs: int, warmup: int,
                 min_seconds: float, task: Optional[str] = None, metric: Optional[str] = None,
                 cache_dir: Optional[Path] = None, deadline: Optional[float] = None,
                 events: Optional[Callable[[dict[str, Any]], None]] = None,
                 executor: Any = None, lease: Optional[Callable[[], Any]] = None) -> None:
        from contextlib import nullcontext

        from edgeship.search_context import describe_measurement, original_facts
        from edgeship.search_exec import InProcess

        self.executor = executor if executor is not None else InProcess()
        self.lease = lease if lease is not None else nullcontext

        self.original, self.data, self.profile, self.budget = original, data, profile, budget
        self.target, self.scratch = target, scratch
        self.measured_on = describe_measurement(target, profile)
        self.cpu_flags = self.measured_on.pop("cpu_flags", None)
        self.measured_on["cpu_precisions"] = profile.cpu_precisions(self.cpu_flags)
        choice = profile.thread_choice()
        self.threads = threads if threads else (
            choice.threads if self.measured_on["kind"] == "device" else None)
        self.measured_on["threads"] = self.threads
        self.measured_on["threads_why"] = (
            "--threads" if threads else f"{choice.cores}: {choice.why}" if self.threads
            else "the backend's default on this host")
        self.bench_options = {"runs": runs, "warmup": warmup, "min_seconds": min_seconds}
        self.original_facts = original_facts(original, scratch, self.data)
        self.judge = Judge(original, data, task, metric)
        self.budget, self.judge.spec = fidelity_budget(budget, self.judge.spec, metric is not None)
        self.original_facts["accuracy"] = self.judge.baseline
        self.original_facts["fidelity_judge"] = {
            "task": self.judge.spec.task, "metric": self.judge.spec.metric,
            "reason": self.judge.spec.reason}
        self.builder = Builder(original, data, scratch / "build", budget.max_accuracy_drop,
                               cache_dir)
        self.deadline, self.events = deadline, events

    def run(self, user: Optional[list[Recipe]], progress: bool
            ) -> tuple[list[Candidate], list[tuple[str, str]]]:
        from edgeship.planner import ModelFacts, plan_recipes, structural_recipes
        from edgeship.search_context import Progress

        facts = ModelFacts(self.original.kind, self.original_facts.get("conv_share"),
                           self.data.labelled, self.data.training_samples,
                           self.budget.max_accuracy_drop,
                           params=self.original_facts.get("params"),
                           class_scores=self.judge.spec.task == "classification",
                           quantized=_quantized(self.original))
        plan = plan_recipes(self.profile, facts, self.cpu_flags)
        recipes = user if user is not None else plan.recipes
        skipped = [] if user is not None else plan.skipped
        done: list[Candidate] = []
        executor = self.executor
        executor.open(self)
        interrupted = True
        try:
            with Progress(progress, self.measured_on) as bar:
                self._phase(sorted(recipes, key=lambda r: r.cost) if user is None else recipes,
                            done, bar)
                if user is None:
                    fastest = self._fastest(done, plan)
                    self._phase(list(structural_recipes(plan, facts, fastest)), done, bar)
            interrupted = False
        finally:
            executor.close(interrupted)
        mark_front(done, self.budget.percentile)
        return done, skipped

    def _fastest(self, done: list[Candidate], plan: Any) -> dict[str, str]:
        """Per precision class, the engine tag of the fastest candidate that kept accuracy."""
        tags = {e.backend: e.tag for e in plan.engines}
        best: dict[str, tuple[float, str]] = {}
        for c in done:
            check = c.fidelity_check()
            if not c.measured or (check is not None and not check.ok):
                continue
            kind = "int8" if _tolerance(c.recipe)[0] == "int8" else (
                "fp32" if c.recipe.name.startswith("fp32") else None)
            tag = tags.get(c.recipe.runs_on)
            lat = c.latency(self.budget.percentile)
            if kind and tag and lat is not None and (kind not in best or lat < best[kind][0]):
                best[kind] = (lat, tag)
        return {k: v[1] for k, v in best.items()}

    def _phase(self, recipes: list[Recipe], done: list[Candidate], bar: Any) -> None:
        """Run ``recipes`` through the executor (``edgeship.search_exec``) and measure each
        result here as it comes back; a fallback is decided only once every candidate before it
        is done, so the outcome is the same in process and on Ray."""
        slots: list[Optional[Candidate]] = [None] * len(recipes)
        submitted: set[int] = set()

        def release() -> None:
            for i, recipe in enumerate(recipes):
                if i in submitted:
                    continue
                if recipe.only_if_missed is not None:
                    if any(s is None for s in slots[:i]):
                        continue
                    why = self._not_now(recipe, [*done, *slots[:i]])  # type: ignore[list-item]
                    if why:
                        submitted.add(i)
                        slots[i] = self._skip(Candidate(recipe, skipped=why), bar)
                        continue
                submitted.add(i)
                self.executor.submit(i, recipe)

        def started(i: int) -> None:
            bar.start(recipes[i])
            self._event("candidate_start", Candidate(recipes[i]))

        release()
        while any(s is None for s in slots):
            i, outcome = self.executor.next(started, bar.stage)
            cand = Candidate(recipes[i])
            if outcome.skipped:
                cand.skipped = outcome.skipped
                slots[i] = self._skip(cand, bar)
            else:
                self._measure(cand, outcome, bar)
                bar.finish(cand)
                self._event("candidate_end", cand)
                slots[i] = cand
            release()
        done.extend(s for s in slots if s is not None)

    def _skip(self, cand: Candidate, bar: Any) -> Candidate:
        bar.skip(cand)
        self._event("candidate_end", cand)
        return cand

    def deadline_passed(self) -> bool:
        return self.deadline is not None and time.perf_counter() > self.deadline

    def _bench_shapes(self, path: Path) -> Optional[dict[str, tuple[int, ...]]]:
        if _static_inputs(path):
            return None
        return self.original_facts.get("input_shapes") or self.original.input_shapes or None

    def _not_now(self, recipe: Recipe, done: list[Candidate]) -> Optional[str]:
        """Why a candidate is skipped: the time budget is spent, or it is a fallback that has
        nothing to answer (see ``fallback_needed``)."""
        if self.deadline_passed():
            return "the --time-budget was spent before it started"
        primary = next((c for c in done if c.name == recipe.only_if_missed), None)
        return None if primary is None else fallback_needed(primary, done, self.budget.percentile)

    def _event(self, kind: str, cand: Candidate) -> None:
        if self.events is not None:
            self.events({"event": kind, "name": cand.name, "status": cand.status(),
                         "fits": cand.fits, "timings": cand.timings()})

    def _measure(self, cand: Candidate, outcome: Any, bar: Any) -> None:
        """A built and judged candidate, benchmarked on the target (leased when in a lab)."""
        from edgeship.bench import benchmark
        from edgeship.search_exec import failure

        cand.path, cand.steps, cand.cached = outcome.path, outcome.steps or [], outcome.cached
        cand.macs = outcome.macs if outcome.macs is not None else self.original_facts.get("macs")
        cand.evaluation = outcome.evaluation
        cand.seconds = dict(outcome.seconds or {})
        if outcome.error:
            cand.error = outcome.error
            return
        recipe = cand.recipe
        t2 = time.perf_counter()
        bar.stage(f"benchmarking on {self.measured_on['label']}")
        try:
            with self.lease():
                cand.benchmark = benchmark(cand.path, self.target, backend=recipe.runs_on,
                                           threads=self.threads, precision=recipe.precision,
                                           input_shapes=self._bench_shapes(cand.path),
                                           fills=self.original.input_fills or None,
                                           **self.bench_options)
        except Exception as exc:  # a failed measurement is this candidate's, not the search's
            cand.error = failure(exc, recipe.name, self.scratch)
            return
        cand.verdict = self.budget.evaluate(cand.benchmark, fidelity=cand.evaluation.fidelity)
        cand.seconds["benchmark"] = time.perf_counter() - t2


def _static_inputs(path: Path) -> bool:
    """The candidate's manifest lists only fixed input dimensions (onnx2tf's TFLite, whose
    layout may also differ from the original's): it needs no --input-shape to be measured."""
    from edgeship.runtime.preprocess import read_manifest

    ins = (read_manifest(path) or {}).get("inputs") or []
    return bool(ins) and all(isinstance(d, int) and d > 0 for i in ins for d in i.get("shape") or [None])


def _quantized(original: Original) -> Optional[str]:
    """Why an ONNX original is integer-quantized already (its quantize candidates would be
    no-ops), else None."""
    if original.kind != "onnx" or original.path is None:
        return None
    import onnx
    from edgeship.converters.onnx_shapes import is_quantized
    from edgeship.converters.quantize.graph import int8_weights

    proto = onnx.load(str(original.path), load_external_data=False)
    return is_quantized(proto) or int8_weights(proto)



def build_summary(result: CompressResult) -> dict[str, Any]:
    """summary.json: what report.html is drawn from, and everything a script needs."""
    from edgeship.outdir import SUMMARY_SCHEMA

    b = result.budget
    return {
        "schema": SUMMARY_SCHEMA, "device": result.device,
        "budget": {"max_latency_ms": b.max_latency_ms, "max_memory_mb": b.max_memory_mb,
                   "max_size_mb": b.max_size_mb, "max_accuracy_drop": b.max_accuracy_drop,
                   "min_snr_db": b.min_snr_db, "max_rel_error": b.max_rel_error,
                   "min_cosine": b.min_cosine, "percentile": b.percentile},
        "fidelity_judge": result.original.get("fidelity_judge"),
        "prefer": result.prefer,
        "pick": result.pick.name if result.pick else None,
        "pick_reason": (f"fits every budget ({_fidelity_terms(result)}); least {result.prefer} "
                        f"among the {sum(c.fits for c in result.candidates)} that fit")
        if result.pick
        else result.no_fit_message(),
        "measured_on": result.measured_on, "original": result.original, "data": result.data,
        "candidates": [c.to_candidate_json() for c in result.candidates],
        "details": {c.name: c.details() for c in result.candidates},
        "pareto_front": [c.name for c in result.front],
        "not_planned": [{"name": n, "reason": r} for n, r in result.skipped],
        "wall_seconds": result.wall_seconds,
    }


def _fidelity_terms(result: CompressResult) -> str:
    check = result.pick.fidelity_check() if result.pick else None
    if check is None:
        return "no fidelity budget"
    return f"fidelity: {check.detail} {check.measured:.3g} {check.unit} " \
        f"{'>=' if check.higher_is_better else '<='} {check.limit:g} {check.unit}"


def write_output(result: CompressResult, original: Original, path: Path, force: bool) -> Path:
    """The output directory, staged and renamed into place (see ``edgeship.outdir``)."""
    import json

    from edgeship.compress.build import copy_model
    from edgeship.outdir import SUMMARY, OutputDir, disk_error
    from edgeship.reporting import render_report

    summary = result.summary
    try:
        with OutputDir(path, force) as out:
            assert out.staging is not None
            for c in result.candidates:
                if c.benchmark is not None:
                    out.write(f"candidates/{c.name}/benchmark.json", c.benchmark.to_json(indent=2))
            if result.pick is not None and result.pick.path is not None:
                copies = copy_model(result.pick.path, out.staging, original.stem)
                out.files += [f.name for f in copies]
                summary["artifact"] = copies[0].name
            out.write("report.html", render_report(
                [summary], title=f"edgeship compress: {original.stem} for {result.device}"))
            summary["files"] = sorted([*out.files, SUMMARY])
            out.write(SUMMARY, json.dumps(summary, indent=2))
            return out.commit()
    except OSError as exc:
        raise disk_error(exc, path) from None

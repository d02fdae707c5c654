"""``compress``: make a model fit a named device, and prove it with measurements.

From the device profile the planner (``edgeship.planner``) builds candidate recipes (formats
the device runs best x precisions its CPU/accelerators support, then structured pruning +
distillation); each candidate is built (converters), checked against the original (parity),
scored on the user's data (accuracy, or top-1 agreement without labels), and benchmarked on
the target: the device over SSH, or this host -- then labelled as the host's numbers, not the
device's.  A candidate that fails is recorded with its reason and the search goes on.

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
import errno
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from edgeship.budget import Budget, Verdict
from edgeship.candidate import Builder, Data, Evaluation, Judge, Original, load_data
from edgeship.errors import ConfigError, EdgeshipError
from edgeship.recipe import DistillStep, ExportStep, PruneStep, QuantizeStep, Recipe, load_recipes
from edgeship.runtime.bench import BenchmarkResult

DEFAULT_MAX_ACCURACY_DROP = 1.0  # points; compress never picks a model without an accuracy guard
PREFER = {"latency": ("latency", "size", "memory"), "size": ("size", "latency", "memory"),
          "memory": ("memory", "latency", "size")}
CANDIDATE_SCHEMA = "edgeship.candidate/1"


@dataclass
class Candidate:
    """One recipe's outcome: built, judged and measured, or why not."""

    recipe: Recipe
    error: Optional[str] = None
    skipped: Optional[str] = None  # a fallback that was not needed
    path: Optional[Path] = None  # the built model (in the search's scratch directory)
    steps: list[dict[str, Any]] = field(default_factory=list)
    macs: Optional[int] = None
    evaluation: Optional[Evaluation] = None
    benchmark: Optional[BenchmarkResult] = None
    verdict: Optional[Verdict] = None
    seconds: dict[str, float] = field(default_factory=dict)
    on_front: bool = False

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def measured(self) -> bool:
        return self.error is None and self.benchmark is not None and self.evaluation is not None

    @property
    def fits(self) -> bool:
        return self.measured and self.verdict is not None and self.verdict.ok

    def latency(self, percentile: str = "p50") -> Optional[float]:
        return self.benchmark.latency(percentile) if self.benchmark else None

    def metric(self, name: str, percentile: str = "p50") -> float:
        """latency (ms), memory (peak MB), size (bytes) or accuracy (percent) of a measured one."""
        assert self.benchmark is not None and self.evaluation is not None
        return float({"latency": self.benchmark.latency(percentile),
                      "memory": self.benchmark.memory.get("peak_rss_mb") or 0.0,
                      "size": self.benchmark.model["size_bytes"],
                      "accuracy": self.evaluation.accuracy}[name])

    def status(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        if self.error:
            return f"failed: {self.error}"
        if self.verdict is None:
            return "not measured"
        return "fits every budget" if self.verdict.ok else "misses " + misses(self.verdict)

    def to_candidate_json(self) -> dict[str, Any]:
        """The ``edgeship.candidate/1`` object the report reads (sdk/report.py)."""
        ev = self.evaluation
        return {
            "schema": CANDIDATE_SCHEMA, "name": self.name,
            "model": self.path.name if self.path else None,  # only the pick's file is kept
            "recipe": self.recipe.labels(),
            "accuracy": ev.accuracy if ev else None,
            "baseline_accuracy": ev.baseline if ev else None,
            "accuracy_drop": ev.drop if ev else None,
            "accuracy_metric": ev.metric if ev else None,
            "benchmark": self.benchmark.to_dict() if self.benchmark else None,
            "verdict": verdict_dict(self.verdict) if self.verdict else None,
            "error": self.error or (f"skipped: {self.skipped}" if self.skipped else None),
        }

    def details(self) -> dict[str, Any]:
        """What the candidate JSON has no field for: recipe, cost, parity, timings."""
        ev, bench = self.evaluation, self.benchmark
        return {
            "recipe": self.recipe.to_dict(), "status": self.status(), "format": _format(self),
            "backend": self.recipe.runs_on, "precision_hint": self.recipe.precision,
            "macs": self.macs, "flops": 2 * self.macs if self.macs is not None else None,
            "size_bytes": bench.model["size_bytes"] if bench else None,
            "latency_ms": {"p50": bench.latency_ms.p50, "p90": bench.latency_ms.p90,
                           "p99": bench.latency_ms.p99, "runs": bench.latency_ms.runs}
            if bench else None,
            "peak_memory_mb": bench.memory.get("peak_rss_mb") if bench else None,
            "backend_used": bench.backend if bench else None,
            "parity": ev.parity if ev else None, "steps": self.steps,
            "on_pareto_front": self.on_front, "seconds": self.seconds,
        }


def _format(c: Candidate) -> Optional[str]:
    try:
        return c.recipe.format
    except ConfigError:
        return None


def verdict_dict(verdict: Verdict) -> dict[str, Any]:
    return {"ok": verdict.ok, "checks": [
        {"name": c.name, "limit": c.limit, "measured": c.measured, "unit": c.unit,
         "detail": c.detail, "ok": c.ok} for c in verdict.checks]}


def misses(verdict: Verdict) -> str:
    """``latency p50 12.3 ms > 10 ms (+2.3 ms, +23%)`` for every failed check."""
    parts = []
    for c in verdict.failed:
        if c.measured is None:
            parts.append(f"{c.name} (not measured)")
            continue
        over = c.measured - c.limit
        parts.append(f"{c.name}{' ' + c.detail if c.name == 'latency' else ''} {c.measured:.4g} "
                     f"{c.unit} > {c.limit:g} {c.unit} (+{over:.3g} {c.unit}, "
                     f"+{100 * over / c.limit:.0f}%)")
    return "; ".join(parts)


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
        for name in ("latency", "memory", "size", "accuracy_drop"):
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
) -> CompressResult:
    """Search compressed candidates of ``model`` for ``device`` and pick one inside ``budget``.

    Args:
        model: an .onnx file, a torch ``nn.Module`` (with ``example_input``), a .pt2/.pt file,
            or an OpenVINO .xml / .tflite file (fewer candidates: they cannot be re-exported).
        device: a device profile name (``edgeship profiles list``) or profile YAML file.
        target: ``"local"`` (measure on this host: labelled as such) or an SSH target/alias or
            ``Target`` (measure on the device).
        data: evaluation data (``edgeship.Dataset`` sources); labels make it accuracy, without
            them top-1 agreement with the original.  None: seeded random inputs.
        train_data: calibration/distillation samples; without it, ``data`` is split in two.
        budget: limits; None takes the profile's defaults.  ``max_accuracy_drop`` unset means
            ``DEFAULT_MAX_ACCURACY_DROP`` points.
        prefer: latency | size | memory: what "best" means among the candidates that fit.
        recipes: a YAML file or Recipe list to try instead of the planner's candidates.
        output: a directory to write (see ``edgeship.outdir``): the pick and its manifest,
            every candidate's benchmark JSON, report.html and summary.json.
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
    profile = load_profile(device)
    budget = _budget(budget, profile)
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
                         threads=threads, runs=runs, warmup=warmup, min_seconds=min_seconds)
        candidates, skipped = search.run(user_recipes, progress)
        result = CompressResult(
            device=profile.name, budget=budget, prefer=prefer, candidates=candidates,
            pick=select(candidates, prefer, budget.percentile), measured_on=search.measured_on,
            data=split.describe(), skipped=skipped, wall_seconds=time.perf_counter() - started,
            original=search.original_facts)
        result.summary = build_summary(result)
        if output is not None:
            result.output = write_output(result, original, Path(output), force)
    return result


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
                 min_seconds: float) -> None:
        from edgeship.search_context import describe_measurement, original_facts

        self.original, self.data, self.profile, self.budget = original, data, profile, budget
        self.target, self.scratch = target, scratch
        self.measured_on = describe_measurement(target, profile)
        self.threads = threads if threads else (
            profile.cpu.cores if self.measured_on["kind"] == "device" else None)
        self.measured_on["threads"] = self.threads
        self.bench_options = {"runs": runs, "warmup": warmup, "min_seconds": min_seconds}
        self.original_facts = original_facts(original, scratch, self.data)
        self.judge = Judge(original, data)
        self.original_facts["accuracy"] = self.judge.baseline if data.labelled else None
        self.builder = Builder(original, data, scratch / "build", budget.max_accuracy_drop)

    def run(self, user: Optional[list[Recipe]], progress: bool
            ) -> tuple[list[Candidate], list[tuple[str, str]]]:
        from edgeship.planner import ModelFacts, plan_recipes, structural_recipes
        from edgeship.search_context import Progress

        facts = ModelFacts(self.original.kind, self.original_facts.get("conv_share"),
                           self.data.labelled, self.data.training_samples,
                           self.budget.max_accuracy_drop, quantized=_quantized(self.original))
        plan = plan_recipes(self.profile, facts)
        recipes = user if user is not None else plan.recipes
        skipped = [] if user is not None else plan.skipped
        done: list[Candidate] = []
        with Progress(progress, self.measured_on) as bar:
            for recipe in sorted(recipes, key=lambda r: r.cost) if user is None else recipes:
                done.append(self._one(recipe, done, bar))
            if user is None:
                fastest = self._fastest(done, plan)
                for recipe in structural_recipes(plan, facts, fastest):
                    done.append(self._one(recipe, done, bar))
        _mark_front(done, self.budget.percentile)
        return done, skipped

    def _fastest(self, done: list[Candidate], plan: Any) -> dict[str, str]:
        """Per precision class, the engine tag of the fastest candidate that kept accuracy."""
        tags = {e.backend: e.tag for e in plan.engines}
        best: dict[str, tuple[float, str]] = {}
        for c in done:
            if not c.measured or (c.verdict and any(x.name == "accuracy_drop" and not x.ok
                                                    for x in c.verdict.checks)):
                continue
            kind = "int8" if _tolerance(c.recipe)[0] == "int8" else (
                "fp32" if c.recipe.name.startswith("fp32") else None)
            tag = tags.get(c.recipe.runs_on)
            lat = c.latency(self.budget.percentile)
            if kind and tag and lat is not None and (kind not in best or lat < best[kind][0]):
                best[kind] = (lat, tag)
        return {k: v[1] for k, v in best.items()}

    def _one(self, recipe: Recipe, done: list[Candidate], bar: Any) -> Candidate:
        cand = Candidate(recipe)
        primary = next((c for c in done if c.name == recipe.only_if_missed), None)
        if primary is not None and primary.measured and primary.verdict is not None and all(
                c.ok for c in primary.verdict.checks if c.name == "accuracy_drop"):
            cand.skipped = f"{primary.name} already kept accuracy within the budget"
            bar.skip(cand)
            return cand
        bar.start(recipe)
        try:
            self._build_and_measure(cand, bar)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ConfigError(f"no space left on the device while building candidate "
                                  f"'{recipe.name}' in {self.scratch}",
                                  "free some space (or set TMPDIR to a disk with room)") from None
            cand.error = f"{type(exc).__name__}: {exc}"
        except EdgeshipError as exc:
            cand.error = exc.one_line()
        except Exception as exc:  # a converter bug must not end the search: record it
            cand.error = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        bar.finish(cand)
        return cand

    def _bench_shapes(self, path: Path) -> Optional[dict[str, tuple[int, ...]]]:
        if _static_inputs(path):
            return None
        return self.original_facts.get("input_shapes") or self.original.input_shapes or None

    def _build_and_measure(self, cand: Candidate, bar: Any) -> None:
        from edgeship.bench import benchmark
        from edgeship.candidate import finish_manifest

        recipe = cand.recipe
        t0 = time.perf_counter()
        bar.stage("building")
        built = self.builder.build(recipe)
        cand.path, cand.steps = built.path, built.steps
        cand.macs = built.macs if built.macs is not None else self.original_facts.get("macs")
        t1 = time.perf_counter()
        bar.stage("checking parity and accuracy")
        tolerance, gated = _tolerance(recipe)
        cand.evaluation = self.judge.evaluate(built.path, recipe.runs_on, recipe.precision,
                                              tolerance, gated)
        finish_manifest(built.path, self.original, built.steps, cand.evaluation)
        t2 = time.perf_counter()
        bar.stage(f"benchmarking on {self.measured_on['label']}")
        cand.benchmark = benchmark(built.path, self.target, backend=recipe.runs_on,
                                   threads=self.threads, precision=recipe.precision,
                                   input_shapes=self._bench_shapes(built.path),
                                   fills=self.original.input_fills or None, **self.bench_options)
        cand.verdict = self.budget.evaluate(cand.benchmark, cand.evaluation.drop)
        cand.seconds = {"build": t1 - t0, "evaluate": t2 - t1, "benchmark": time.perf_counter() - t2}


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


def _mark_front(cands: list[Candidate], percentile: str) -> None:
    """Pareto front over accuracy (higher) x latency x memory x size (lower)."""
    measured = [c for c in cands if c.measured]

    def objectives(c: Candidate) -> tuple[float, ...]:
        return (-c.metric("accuracy"), c.metric("latency", percentile), c.metric("memory"),
                c.metric("size"))

    for c in measured:
        mine = objectives(c)
        c.on_front = not any(
            all(o <= m for o, m in zip(objectives(other), mine)) and objectives(other) != mine
            for other in measured if other is not c)


def select(cands: list[Candidate], prefer: str, percentile: str = "p50") -> Optional[Candidate]:
    """The best candidate inside every budget: least ``prefer``, then the other two."""
    fits = [c for c in cands if c.fits]
    if not fits:
        return None
    order = PREFER[prefer]
    return min(fits, key=lambda c: tuple(c.metric(m, percentile) for m in order))


def build_summary(result: CompressResult) -> dict[str, Any]:
    """summary.json: what report.html is drawn from, and everything a script needs."""
    from edgeship.outdir import SUMMARY_SCHEMA

    b = result.budget
    return {
        "schema": SUMMARY_SCHEMA, "device": result.device,
        "budget": {"max_latency_ms": b.max_latency_ms, "max_memory_mb": b.max_memory_mb,
                   "max_size_mb": b.max_size_mb, "max_accuracy_drop": b.max_accuracy_drop,
                   "percentile": b.percentile},
        "prefer": result.prefer,
        "pick": result.pick.name if result.pick else None,
        "pick_reason": (f"fits every budget; least {result.prefer} among the "
                        f"{sum(c.fits for c in result.candidates)} that fit") if result.pick
        else result.no_fit_message(),
        "measured_on": result.measured_on, "original": result.original, "data": result.data,
        "candidates": [c.to_candidate_json() for c in result.candidates],
        "details": {c.name: c.details() for c in result.candidates},
        "pareto_front": [c.name for c in result.front],
        "not_planned": [{"name": n, "reason": r} for n, r in result.skipped],
        "wall_seconds": result.wall_seconds,
    }


def write_output(result: CompressResult, original: Original, path: Path, force: bool) -> Path:
    """The output directory, staged and renamed into place (see ``edgeship.outdir``)."""
    import json

    from edgeship.candidate import copy_model
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

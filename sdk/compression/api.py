"""``compress``: make a model fit a named device, and prove it with measurements.

From the device profile the planner (``edgeship.compression.plan``) builds candidate recipes
(formats the device runs best x precisions its CPU/accelerators support, then structured
pruning + distillation); each candidate is built (converters), checked against the original
(parity), judged on the user's data by the fidelity judge for its outputs
(``converters.fidelity``: the top-1 drop with labels, the estimated drop without, output error
for outputs that are not class scores; built candidates come from ``edgeship.compression.cache``
when it has them), and benchmarked on the target: the device over SSH, or this host -- then
labelled as the host's numbers, not the device's.  A candidate that fails is recorded with its
reason and the search goes on.  Builds and evaluations run through an executor
(``edgeship.compression.executor``): in this process, or as Ray tasks across a cluster (``ray=``,
``edgeship.compression.scaleout``), with the same result.  The phases, one module each, are
listed in ``edgeship.compression.search``.

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

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from edgeship.budget import Budget
from edgeship.compression.events import Listener
from edgeship.compression.result import CompressResult
from edgeship.core.errors import ConfigError
from edgeship.recipe import Recipe


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
    progress: Union[bool, Listener] = True,
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
        cache: where built candidates are kept (``edgeship.compression.cache``): None the default
            cache dir, a path, or False for none.
        progress: True prints plain progress lines on stderr (``events.Lines``), False nothing;
            or a ``edgeship.compression.events.Listener`` that hears the search (the CLI's bar).
        events: called with ``{"event": "candidate_start" | "candidate_end", ...}`` per candidate.
        ray: build and evaluate the candidates as Ray tasks (``edgeship.compression.scaleout``):
            ``"auto"`` or True (``RAY_ADDRESS``, this machine's running cluster, or a new local
            one) or a cluster address; None searches in this process.  Needs ``pip install 'edgeship[ray]'``.
        lab: a Ray cluster address whose device lab (``edgeship.lab``) leases ``target``: no
            other measurement runs on that device meanwhile.
        input_shapes: ``{input name: shape}`` fixing dynamic dimensions (``--input-shape``), for
            every pass: random inputs, conversion, parity, evaluation and the benchmark.
        input_fills: ``{input name: runtime.inputs.InputFill}`` (``--input-value``/
            ``--input-range``): the values of random evaluation and parity inputs.
    """
    from edgeship.compression.judge import search_budget
    from edgeship.compression.original import Original, load_data
    from edgeship.compression.scaleout import search_plumbing
    from edgeship.compression.search import Search
    from edgeship.compression.select import PREFER, select
    from edgeship.profiles import load_profile
    from edgeship.recipe import load_recipes

    started = time.perf_counter()
    if prefer not in PREFER:
        raise ConfigError(f"unknown --prefer '{prefer}'", f"use one of {', '.join(PREFER)}")
    if runs < 1 or warmup < 0 or min_seconds < 0:
        raise ConfigError("--runs must be ≥ 1, --warmup and --min-seconds ≥ 0", "pass non-negative counts")
    if time_budget is not None and not time_budget > 0:
        raise ConfigError(f"--time-budget must be a positive number of seconds, got {time_budget}",
                          "pass e.g. --time-budget 180")
    profile = load_profile(device)
    budget = search_budget(budget, profile)
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
        search = Search(original, split, profile, budget, tgt, Path(scratch),
                        threads=threads, runs=runs, warmup=warmup, min_seconds=min_seconds,
                        task=task, metric=metric, cache_dir=_cache_dir(cache),
                        deadline=started + time_budget if time_budget else None,
                        listener=_listener(progress, events), executor=executor, lease=lease)
        candidates, skipped = search.run(user_recipes)
        measured_on = search.where.to_dict()
        if ray is not None and ray is not False:
            measured_on["built_on"] = search.executor.describe()
        result = CompressResult(
            device=profile.name, budget=search.budget, prefer=prefer, candidates=candidates,
            pick=select(candidates, prefer, budget.percentile), measured_on=measured_on,
            data=split.describe(), skipped=skipped, wall_seconds=time.perf_counter() - started,
            original=search.original_facts)
        from edgeship.compression.write import build_summary, write_output

        result.summary = build_summary(result)
        if output is not None:
            result.output = write_output(result, original, Path(output), force)
    return result


def _listener(progress: Union[bool, Listener],
              events: Optional[Callable[[dict[str, Any]], None]]) -> Listener:
    """What hears the search: the progress display asked for, and the ``events`` callback."""
    from edgeship.compression.events import Callback, Lines, Listeners

    shown = progress if isinstance(progress, Listener) else Lines() if progress else None
    return Listeners(shown, Callback(events) if events is not None else None)


def _cache_dir(cache: Union[str, Path, bool, None]) -> Optional[Path]:
    from edgeship.compression.cache import default_cache_dir

    if cache is False:
        return None
    return default_cache_dir() if cache is None or cache is True else Path(cache)


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


__all__ = ["CompressResult", "compress"]

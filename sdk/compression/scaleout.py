"""Scale a compress search out on Ray: each candidate's build and evaluation is a Ray task.

``compress(..., ray="auto" | ADDRESS)`` / ``edgeship compress --ray [ADDRESS]`` swaps the
in-process executor (``edgeship.compression.executor``) for ``RayExecutor``; the search loop, the
measurements, the pick and the summary stay the same code.

What travels, and why:

- The search context (the original model's files as bytes, the data splits, the fidelity judge
  with the original's reference outputs) is put in the object store once (``ray.put``); every
  task reads it from there, so a worker on another machine needs no shared file system, only
  edgeship installed (``pip install 'edgeship[compress,ray]'`` on every node).
- The built model comes back as bytes and is measured here, on the search's target: the
  device (leased through the lab, ``edgeship.lab``) or this host.  Measuring here keeps one
  measurement at a time on a target, as in process.  On a device each result is measured as it
  finishes (``ray.wait``) while the others build; on this host the results are handed out once
  the builds in flight are done, because a build beside a timed run would slow it.
- The candidate cache (``edgeship.compression.cache``) stays this process's: a hit is shipped to
  the worker inside a throw-away cache of its own (so the worker skips the build only when its
  converter versions give the same key), and every fresh build is stored here.

Resources: each task asks for ``TaskResources`` (1 CPU and 2 GiB by default: EfficientNet-Lite0's
quantizers peak under that); recipes that train (prune fine-tune, distillation) may ask for a
GPU, but edgeship's converters run torch on the CPU today, so the default is none.  A worker that
dies mid-candidate is retried once (``max_retries=1``; an exception in edgeship code is not
retried: it is the candidate's result) and is then recorded as failed with Ray's reason.  Ctrl-C
cancels every task still running (``ray.cancel(force=True)``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

from edgeship.compression.executor import Outcome, Work
from edgeship.core.errors import ConfigError
from edgeship.raycluster import connect

TMP_PREFIX = "edgeship-ray-"  # a task's temp dir: edgeship-ray-<worker pid>-<random>


@dataclass(frozen=True)
class TaskResources:
    """What one candidate task asks Ray for."""

    num_cpus: float = 1.0
    memory_gb: float = 2.0
    train_gpus: float = 0.0  # for recipes that train; the converters use the CPU today

    def for_candidate(self, planned: Any) -> dict[str, Any]:
        trains = planned.structural  # pruned and distilled: the recipes that train
        opts: dict[str, Any] = {"num_cpus": self.num_cpus,
                                "memory": int(self.memory_gb * 1024 ** 3)}
        if trains and self.train_gpus:
            opts["num_gpus"] = self.train_gpus
        return opts


def search_plumbing(ray_address: Union[str, bool, None], lab: Optional[str], target: Any
                    ) -> tuple[Any, Optional[Callable[[], Any]]]:
    """The executor and the measurement lease a ``compress`` call asked for (None: the
    in-process defaults)."""
    executor = None
    if ray_address is not None and ray_address is not False:
        executor = RayExecutor(ray_address)
    lease = None
    if lab is not None:
        if not isinstance(target, str) or target == "local":
            raise ConfigError("--lab leases the device named by --target, and none was given",
                              "pass --target HOST (a device registered in the lab)")
        from edgeship.lab import lease as lab_lease

        def lease() -> Any:
            return lab_lease(lab, target)
    return executor, lease


# -- the task ---------------------------------------------------------------------------------
def _files_of(path: Path) -> dict[str, bytes]:
    from edgeship.runtime.manifest import files_with_manifest

    files = files_with_manifest(path)
    return {f.name: f.read_bytes() for f in files}


def _write(files: dict[str, bytes], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (directory / name).write_bytes(blob)


def build_and_evaluate(context: dict[str, Any], planned: Any,
                       cached: Optional[tuple[str, dict[str, bytes]]]) -> dict[str, Any]:
    """On a Ray worker: rebuild the search context in a private temp dir, build and judge
    ``planned`` (an ``edgeship.compression.candidate.Planned``), and return the built files as
    bytes (the temp dir is removed)."""
    import resource

    from edgeship.compression.build import Builder

    cpu0, wall0 = time.process_time(), time.perf_counter()
    sweep_stale()  # what killed workers on this node left behind
    with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}{os.getpid()}-") as tmp:
        root = Path(tmp)
        original = context["original"]
        if context["files"]:
            _write(context["files"], root / "source")
            path = root / "source" / original.path.name
            source = replace(original.source, path=path) if original.source is not None else None
            original = replace(original, path=path, source=source)
        judge = context["judge"]
        judge.original = original
        cache_dir = None
        if cached is not None:
            cache_dir = root / "cache"
            _write(cached[1], cache_dir / cached[0])
        builder = Builder(original, context["data"], root / "build",
                          context["max_accuracy_drop"], cache_dir)
        out = Work(original, builder, judge).run(planned)
        files = _files_of(out.path) if out.path is not None and out.error is None else {}
        return {"outcome": replace(out, path=Path(out.path.name) if out.path else None),
                "files": files, "pid": os.getpid(), "node": _node(),
                "stats": {"cpu_s": time.process_time() - cpu0,
                          "wall_s": time.perf_counter() - wall0,
                          # ru_maxrss: KiB on Linux; the worker's peak so far (workers are reused)
                          "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}


def sweep_stale(root: Optional[Path] = None) -> list[Path]:
    """Remove the temp dirs of candidate tasks whose worker is gone (SIGKILLed, cancelled with
    force): a worker that dies cannot clean up, the next task or the driver on its node does."""
    import shutil

    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{TMP_PREFIX}*-*"):
        pid = path.name[len(TMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _node() -> str:
    import socket

    return socket.gethostname()


# -- the executor -----------------------------------------------------------------------------
class RayExecutor:
    """Every ready candidate at once as a Ray task; results as they finish (``ray.wait``)."""

    def __init__(self, address: Union[str, bool], resources: Optional[TaskResources] = None
                 ) -> None:
        self.ray = connect(address)
        self.resources = resources or TaskResources()
        self._pending: dict[Any, tuple[int, Any]] = {}
        self._ready: list[tuple[int, Outcome]] = []
        self._remote = self.ray.remote(max_retries=1, retry_exceptions=False)(build_and_evaluate)
        self.workers: set[tuple[str, int]] = set()
        self.tasks: list[dict[str, Any]] = []
        self.quiet = False

    def open(self, search: Any) -> None:
        self._search = search
        # measured on this host (a Ray worker may be this host too): hand results out only
        # once every submitted build is done; on a device, measure each as it finishes
        self.quiet = search.where.kind == "host"
        original = search.original
        files = _files_of(original.path) if original.path is not None else {}
        self._context = self.ray.put({
            "original": original, "files": files, "data": search.data, "judge": search.judge,
            "max_accuracy_drop": search.builder.max_accuracy_drop})

    def _cached(self, recipe: Any) -> Optional[tuple[str, dict[str, bytes]]]:
        from edgeship.compression.cache import META

        cache = self._search.builder.built_cache
        if cache is None:
            return None
        key = cache.key(recipe, self._search.builder.cache_extra(recipe))
        entry = cache.root / key
        if not (entry / META).is_file():
            return None
        try:
            return key, {f.name: f.read_bytes() for f in entry.iterdir() if f.is_file()}
        except OSError:
            return None

    def submit(self, key: int, planned: Any) -> None:
        recipe = planned.recipe
        if self._search.deadline_passed():
            self._ready.append((key, Outcome(skipped="the --time-budget was spent before it "
                                                     "started")))
            return
        ref = self._remote.options(name=f"edgeship-build:{recipe.name}",
                                   **self.resources.for_candidate(planned)).remote(
            self._context, planned, self._cached(recipe))
        self._pending[ref] = (key, recipe)

    def next(self, started: Callable[[int], None], stage: Callable[[str], None]
             ) -> tuple[int, Outcome]:
        if self._ready:
            return self._ready.pop(0)
        refs = list(self._pending)
        if self.quiet:  # this host measures: no build may run beside a timed run
            self.ray.wait(refs, num_returns=len(refs))
            ref = refs[0]
        else:
            ref = self.ray.wait(refs, num_returns=1)[0][0]
        key, recipe = self._pending.pop(ref)
        started(key)
        try:
            reply = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # the worker died, twice
            return key, Outcome(error=f"the Ray worker building it died (retried once): "
                                      f"{_reason(exc)}")
        self.workers.add((reply["node"], reply["pid"]))
        self.tasks.append({"candidate": recipe.name, "node": reply["node"], "pid": reply["pid"],
                           **reply["stats"]})
        out: Outcome = reply["outcome"]
        if out.path is not None:
            directory = self._search.scratch / "ray" / f"{key:03d}-{recipe.name}"
            _write(reply["files"], directory)
            out.path = directory / out.path.name
            cache = self._search.builder.built_cache
            if cache is not None and not out.cached:
                cache.put(recipe, out.path, out.steps or [], out.macs,
                          self._search.builder.cache_extra(recipe))
        return key, out

    def close(self, interrupted: bool) -> None:
        if interrupted:
            for ref in list(self._pending):
                # already finished or gone: nothing left to stop
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
            # the cancelled workers die without cleaning up: on this node, do it for them
            deadline = time.monotonic() + 10
            while any(not self._gone(r) for r in self._pending) and time.monotonic() < deadline:
                time.sleep(0.1)
            while time.monotonic() < deadline and sweep_stale() is not None \
                    and list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*-*")):
                time.sleep(0.2)  # a force-cancelled worker takes a moment to die
        self._pending.clear()
        sweep_stale()

    def _gone(self, ref: Any) -> bool:
        return bool(self.ray.wait([ref], timeout=0)[0])

    def describe(self) -> dict[str, Any]:
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        return {"kind": "ray", "nodes": len(nodes),
                "cpus": self.ray.cluster_resources().get("CPU"),
                "task": {"num_cpus": self.resources.num_cpus,
                         "memory_gb": self.resources.memory_gb},
                "workers_used": len(self.workers), "tasks": self.tasks}


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:240]}"

"""Where a compress search builds and judges its candidates: the seam between the search loop
(``edgeship.compression.search``) and the machines that do the heavy work.

A candidate is two halves: *build and evaluate* (export, quantize, prune, distill, then the
fidelity judge on the evaluation split: CPU-heavy, independent per candidate) and *measure*
(the benchmark on the target: one device, one measurement at a time).  An executor runs the
first half; the search measures each result as it comes back and decides every fallback only
when all candidates before it are done, so the candidates, the pick and the summary are the same
whichever executor ran them.

- ``InProcess`` (the default): builds the next queued candidate when the search asks for it,
  exactly the sequential search it always was.
- ``edgeship.compression.scaleout.RayExecutor``: submits every ready candidate as a Ray task at once and
  hands results back as they finish (``ray.wait``).
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from edgeship.core.errors import ConfigError, EdgeshipError


@dataclass
class Outcome:
    """One candidate's build and evaluation: the results, or the one-line reason it failed."""

    path: Optional[Path] = None
    steps: Optional[list[dict[str, Any]]] = None
    macs: Optional[int] = None
    cached: bool = False
    evaluation: Any = None
    seconds: Optional[dict[str, float]] = None
    error: Optional[str] = None
    skipped: Optional[str] = None  # not started (the time budget was spent)


def failure(exc: BaseException, recipe_name: str, scratch: Any) -> str:
    """The one line a failed candidate records; a full disk ends the whole search instead.
    The search's scratch files are gone when the user reads it, so it never names them."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        raise ConfigError(f"no space left on the device while building candidate "
                          f"'{recipe_name}' in the temporary directory ({tempfile.gettempdir()})",
                          "free some space (or set TMPDIR to a disk with room)") from None
    if isinstance(exc, OSError):
        line = f"{type(exc).__name__}: {exc}"
    elif isinstance(exc, EdgeshipError):
        line = exc.one_line()
    else:
        line = f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return line.replace(f"{scratch}{os.sep}", "").replace(str(scratch), "the build directory")


class Work:
    """Build and evaluate one planned candidate with a Builder and a Judge (here, or on a Ray
    worker), held to the parity tolerance its planner gave it."""

    def __init__(self, original: Any, builder: Any, judge: Any) -> None:
        self.original, self.builder, self.judge = original, builder, judge

    def run(self, planned: Any, stage: Callable[[str], None] = lambda _: None) -> Outcome:
        from edgeship.compression.build import finish_manifest

        recipe = planned.recipe
        out = Outcome()
        try:
            t0 = time.perf_counter()
            stage("building")
            built = self.builder.build(recipe)
            out.path, out.steps, out.macs, out.cached = built.path, built.steps, built.macs, \
                built.cached
            t1 = time.perf_counter()
            stage("checking parity and accuracy")
            out.evaluation = self.judge.evaluate(built.path, planned.runs_on or recipe.runs_on,
                                                 recipe.precision, planned.tolerance,
                                                 planned.gated)
            finish_manifest(built.path, self.original, built.steps, out.evaluation)
            out.seconds = {"build": t1 - t0, "evaluate": time.perf_counter() - t1}
        except Exception as exc:  # a converter bug must not end the search: record it
            out.error = failure(exc, recipe.name, self.builder.scratch)
        return out


class Executor(Protocol):
    """Runs the build-and-evaluate half of candidates for one search."""

    def open(self, search: Any) -> None: ...
    def submit(self, key: int, planned: Any) -> None: ...
    def next(self, started: Callable[[int], None], stage: Callable[[str], None]
             ) -> tuple[int, Outcome]: ...
    def close(self, interrupted: bool) -> None: ...
    def describe(self) -> dict[str, Any]: ...


class InProcess:
    """Sequential, in this process: a candidate is built when the search asks for the next."""

    def __init__(self) -> None:
        self._queue: deque[tuple[int, Any]] = deque()
        self._search: Any = None

    def open(self, search: Any) -> None:
        self._search = search
        self._work = Work(search.original, search.builder, search.judge)

    def submit(self, key: int, planned: Any) -> None:
        self._queue.append((key, planned))

    def next(self, started: Callable[[int], None], stage: Callable[[str], None]
             ) -> tuple[int, Outcome]:
        key, planned = self._queue.popleft()
        if self._search.deadline_passed():
            return key, Outcome(skipped="the --time-budget was spent before it started")
        started(key)
        return key, self._work.run(planned, stage)

    def close(self, interrupted: bool) -> None:
        self._queue.clear()

    def describe(self) -> dict[str, Any]:
        return {"kind": "in-process"}

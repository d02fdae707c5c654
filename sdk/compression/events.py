"""What a compress search tells the outside while it runs: a listener gets the setting (where it
measures), each candidate as it starts, its stages, and its end.  The search only emits; how it
looks is the listener's business: the CLI draws a bar (``edgeship.cli.progress``), the API's
``progress=True`` prints plain lines (``Lines``), ``events=`` gets dicts (``Callback``).

Example:
    >>> class Count(Listener):
    ...     def finished(self, cand): self.n = getattr(self, "n", 0) + 1
    >>> edgeship.compress(model, device, progress=Count())  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Optional


class Listener:
    """Hears a search; every method does nothing unless overridden."""

    def searching(self, where: Any) -> None:
        """Before the first candidate: where latency and memory will come from (a
        ``measure.Measurement``: ``kind``, ``label``, ``note``...)."""

    def started(self, cand: Any) -> None:
        """A candidate's build begins."""

    def stage(self, text: str) -> None:
        """The started candidate enters a stage (``building``, ``benchmarking on …``)."""

    def finished(self, cand: Any) -> None:
        """A candidate is built, judged and measured, or failed."""

    def skipped(self, cand: Any) -> None:
        """A candidate was not run (a fallback not needed, the time budget spent)."""

    def done(self) -> None:
        """The search is over (or interrupted)."""


class Listeners(Listener):
    """Several listeners heard as one."""

    def __init__(self, *listeners: Optional[Listener]) -> None:
        self.listeners = [x for x in listeners if x is not None]

    def searching(self, where: Any) -> None:
        for x in self.listeners:
            x.searching(where)

    def started(self, cand: Any) -> None:
        for x in self.listeners:
            x.started(cand)

    def stage(self, text: str) -> None:
        for x in self.listeners:
            x.stage(text)

    def finished(self, cand: Any) -> None:
        for x in self.listeners:
            x.finished(cand)

    def skipped(self, cand: Any) -> None:
        for x in self.listeners:
            x.skipped(cand)

    def done(self) -> None:
        for x in self.listeners:
            x.done()


class Callback(Listener):
    """``compress(events=fn)``: ``fn({"event": "candidate_start" | "candidate_end", "name",
    "status", "fits", "timings"})`` per candidate."""

    def __init__(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self.fn = fn

    def _emit(self, kind: str, cand: Any) -> None:
        self.fn({"event": kind, "name": cand.name, "status": cand.status(), "fits": cand.fits,
                 "timings": cand.timings()})

    def started(self, cand: Any) -> None:
        self._emit("candidate_start", cand)

    def finished(self, cand: Any) -> None:
        self._emit("candidate_end", cand)

    def skipped(self, cand: Any) -> None:
        self._emit("candidate_end", cand)


def short(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mark(cand: Any) -> str:
    return "✓" if cand.fits else "✗" if cand.measured else "!"


def outcome(cand: Any) -> str:
    return "fits every budget" if cand.fits else cand.status()


class Lines(Listener):
    """Plain lines on stderr: the measurement note, then per candidate each stage as it starts
    and ends with its time, and the outcome (what CI logs keep)."""

    def __init__(self) -> None:
        self._count = 0
        self._name = ""
        self._phase: Optional[tuple[str, float]] = None
        self._started = 0.0

    def _line(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def searching(self, where: Any) -> None:
        self._line(where.note)

    def _end_phase(self) -> None:
        if self._phase is not None:
            name, t0 = self._phase
            self._line(f"{self._name}: {name} done in {time.perf_counter() - t0:.1f} s")
        self._phase = None

    def started(self, cand: Any) -> None:
        self._count += 1
        self._name = f"{self._count:>2}. {cand.name}"
        self._started = time.perf_counter()

    def stage(self, text: str) -> None:
        self._end_phase()
        self._phase = (text, time.perf_counter())
        self._line(f"{self._name}: {text}…")

    def finished(self, cand: Any) -> None:
        self._end_phase()
        self._line(f"{self._name} {mark(cand)} {short(outcome(cand))} "
                   f"({time.perf_counter() - self._started:.1f} s)")

    def skipped(self, cand: Any) -> None:
        self.started(cand)
        self._line(f"{self._name} – {short(cand.status())}")


__all__ = ["Callback", "Lines", "Listener", "Listeners", "mark", "outcome", "short"]

"""How `edgeship compress` shows a search's progress on stderr: a rich bar per candidate on a
terminal; elsewhere (CI logs) the plain lines of ``edgeship.compression.events.Lines``.  The
search itself only emits events (``edgeship.compression.events.Listener``)."""

from __future__ import annotations

import sys
from typing import Any

from edgeship.compression.events import Lines, Listener, mark, outcome, short


def search_progress() -> Listener:
    """The display for this stderr: the bar on a terminal, plain lines elsewhere."""
    return Bar() if sys.stderr.isatty() else Lines()


class Bar(Listener):
    """A rich progress bar per candidate (3 steps: built, judged, measured)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._count = 0
        self._name = ""

    def searching(self, where: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        style = "bold yellow" if where.kind == "host" else "bold"
        console.print(f"[{style}]{where.note}[/]", highlight=False)
        self._bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                             TimeElapsedColumn(), console=console)
        self._bar.start()

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def started(self, cand: Any) -> None:
        self._count += 1
        self._name = f"{self._count:>2}. {cand.name}"
        if self._bar is not None:
            self._task = self._bar.add_task(self._name, total=3)

    def stage(self, text: str) -> None:
        if self._bar is None:
            return
        self._bar.update(self._task, description=f"{self._name}: {text}")
        if not text.startswith("building"):
            self._bar.advance(self._task)

    def finished(self, cand: Any) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=3,
                             description=f"{self._name} {mark(cand)} {short(outcome(cand))}")

    def skipped(self, cand: Any) -> None:
        self.started(cand)
        if self._bar is not None:
            self._bar.update(self._task, completed=3,
                             description=f"{self._name} – {short(cand.status())}")

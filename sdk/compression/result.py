"""What ``compress`` returns: every candidate, the pick (None when none fits every budget), where
it was measured, and the summary written as summary.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgeship.budget import Budget
from edgeship.compression.candidate import Candidate


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

    @property
    def as_given(self) -> Optional[Candidate]:
        """The candidate that is the original model as it is (what speed-ups are against)."""
        return next((c for c in self.candidates if c.planned.as_given), None)

    def no_fit_message(self) -> str:
        """One line naming each budget that was missed, by how many candidates, and the
        closest miss."""
        from edgeship.compression.select import no_fit_message

        return no_fit_message(self.candidates)


__all__ = ["CompressResult"]

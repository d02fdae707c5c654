"""The Pareto front: the one rule compress selects by and the report marks with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pareto_front(items: Sequence[T], objectives: Callable[[T], tuple[float, ...]]) -> list[T]:
    """The items no other item dominates: at least as good on every objective (lower is
    better) and not equal on all of them.  Order is kept.

    Example:
        >>> pareto_front([(1, 3), (2, 2), (2, 3)], lambda p: p)
        [(1, 3), (2, 2)]
    """
    scored = [(item, objectives(item)) for item in items]
    return [item for item, mine in scored
            if not any(other is not item and theirs != mine
                       and all(t <= m for t, m in zip(theirs, mine))
                       for other, theirs in scored)]

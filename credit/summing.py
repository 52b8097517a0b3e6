"""Summing what banks release: the one rule every per-bank aggregate follows.

Each aggregate a bank releases (feature statistics, score summaries, per-bin counts,
calibration and fairness sums) adds with ``+``, and the sum over banks equals the same
aggregate of the pooled rows. :func:`sum_of` is that sum, for any of them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Protocol, Self, TypeVar

__all__ = ["Addable", "sum_of"]


class Addable(Protocol):
    """An aggregate that adds to another of its kind."""

    def __add__(self, other: Self, /) -> Self:
        """The aggregate of both parts' rows."""
        ...


A = TypeVar("A", bound=Addable)


def sum_of(parts: Sequence[A], *, what: str) -> A:
    """The sum of the banks' ``parts``; ``what`` names them in the error.

    Raises
    ------
    ValueError
        ``parts`` is empty.
    """
    if not parts:
        raise ValueError(f"no {what} to combine")
    total: A = functools.reduce(operator.add, parts)
    return total

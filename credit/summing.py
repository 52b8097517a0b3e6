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

import numpy as np
from numpy.typing import NDArray

__all__ = ["Addable", "counted", "sum_of", "uncounted"]


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


def counted(values: NDArray[np.floating] | None, length: int) -> NDArray[np.float64]:
    """What a bank adds to a counted sum: ``[values, 1]``, or ``length + 1`` zeros.

    A bank that releases nothing adds zeros, so the sum's last entry counts the banks
    whose values it holds (:func:`uncounted` reads it back).
    """
    if values is None:
        return np.zeros(length + 1)
    return np.append(np.asarray(values, dtype=np.float64), 1.0)


def uncounted(total: NDArray[np.floating]) -> tuple[NDArray[np.float64] | None, int]:
    """The summed values of a counted sum and how many banks they hold (None: no bank's)."""
    values = np.asarray(total, dtype=np.float64)
    banks = round(float(values[-1]))
    if banks < 1:
        return None, 0
    return values[:-1], banks

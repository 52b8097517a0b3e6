"""Counts per class over the positions of one feature: the shape every count release has.

A bank counts its rows per position (a grid cell, a level, a bin) and per class
(events: default rows; non-events: the others). Its vector is
``[events..., non-events...]``; banks' counts add position by position, so their sum
is the count of the pooled rows. :class:`ClassCounts` holds that rule once; the
set-up release's cells (:class:`credit.feature_cells.ClassCells`) and the WoE bins
(:class:`credit.governance.woe.BinCounts`) add what their positions mean.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ClassCounts", "halves"]


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class ClassCounts:
    """Events and non-events per position, two 1-D float64 arrays of one length.

    Whole numbers at a bank without a budget; real numbers, possibly negative, once a
    bank added noise (a subclass says how a sum is settled).

    Attributes
    ----------
    events, non_events : numpy.ndarray of float64
        Counts of default rows and of the other rows per position.
    """

    events: NDArray[np.float64]
    non_events: NDArray[np.float64]

    def __post_init__(self) -> None:
        events = np.array(self.events, dtype=np.float64)
        non_events = np.array(self.non_events, dtype=np.float64)
        if events.ndim != 1 or events.shape != non_events.shape:
            raise ValueError(
                f"{self._subject()}: events and non-events must be 1-D of one length; got "
                f"shapes {events.shape} and {non_events.shape}"
            )
        object.__setattr__(self, "events", events)
        object.__setattr__(self, "non_events", non_events)

    def _subject(self) -> str:
        """What the counts are of, for errors (a subclass names its feature)."""
        return type(self).__name__

    def _check_addable(self, other: Self) -> None:
        """Raise ValueError when ``other`` counts over other positions."""
        if other.events.size != self.events.size:
            raise ValueError(
                f"{self._subject()}: cannot add counts over {other.events.size} positions "
                f"to counts over {self.events.size}"
            )

    def __add__(self, other: Self) -> Self:
        self._check_addable(other)
        return self.with_counts(self.events + other.events, self.non_events + other.non_events)

    def with_counts(self, events: NDArray[np.float64], non_events: NDArray[np.float64]) -> Self:
        """The same positions with other counts."""
        return dataclasses.replace(self, events=events, non_events=non_events)

    @property
    def counts(self) -> NDArray[np.float64]:
        """Rows per position, both classes."""
        total: NDArray[np.float64] = self.events + self.non_events
        return total

    def to_vector(self) -> NDArray[np.float64]:
        """``[events per position..., non-events per position...]``."""
        return np.concatenate([self.events, self.non_events])


def halves(
    vector: ArrayLike, positions: int, *, unit: str = "positions"
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The events and non-events of a :meth:`ClassCounts.to_vector` over ``positions``.

    ``unit`` names the positions in the error (cells, bins).

    Raises
    ------
    ValueError
        ``vector`` does not hold ``2 * positions`` entries.
    """
    values = np.asarray(vector, dtype=np.float64)
    if values.shape != (2 * positions,):
        raise ValueError(
            f"a count vector of {positions} {unit} has {2 * positions} entries "
            f"(events, then non-events); got shape {values.shape}"
        )
    return values[:positions].copy(), values[positions:].copy()

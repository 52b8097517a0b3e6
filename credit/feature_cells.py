"""The cells a feature's values are counted in, and counts per class over them.

A numeric value is counted in a cell of a fixed grid spanning the schema's public
bounds in transformed space (:func:`grid_edges`), unless it is missing or a special
code (:func:`regular_values`); a categorical value in its level's cell, or the missing
cell (:func:`level_cells`). :class:`ClassCells` holds one feature's counts per class
(events: default rows; non-events) over its cells. Under a budget a bank noises a
grid on coarse runs of cells (:func:`coarse_cells`, :func:`merge_cells`,
:func:`spread_cells`). Nothing here knows a schema's list of inputs: that is
:mod:`credit.feature_stats`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.class_counts import ClassCounts, halves
from credit.schema import NumericFeature, Transform

__all__ = [
    "ClassCells",
    "coarse_cells",
    "grid_edges",
    "level_cells",
    "merge_cells",
    "raw_values",
    "regular_values",
    "spread_cells",
    "transform_values",
]


def transform_values(values: NDArray[np.float64], transform: Transform) -> NDArray[np.float64]:
    """Apply a schema transform (data-independent) to raw values."""
    if transform is Transform.ASINH:
        return np.asarray(np.arcsinh(values), dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def raw_values(values: NDArray[np.float64], transform: Transform) -> NDArray[np.float64]:
    """The inverse of :func:`transform_values`: transformed values back in raw units."""
    if transform is Transform.ASINH:
        return np.asarray(np.sinh(values), dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def regular_values(values: NDArray[np.float64], feature: NumericFeature) -> NDArray[np.bool_]:
    """Which raw values are regular: neither missing (NaN) nor one of the special codes."""
    regular: NDArray[np.bool_] = ~np.isnan(values) & ~np.isin(values, feature.special)
    return regular


def grid_edges(feature: NumericFeature, grid_bins: int) -> NDArray[np.float64]:
    """Equal-width grid edges in transformed space spanning the public bounds."""
    low, high = transform_values(np.array([feature.min, feature.max]), feature.transform)
    return np.linspace(low, high, grid_bins + 1)


def level_cells(
    values: NDArray[np.generic],
    *,
    name: str,
    levels: Sequence[int] | Sequence[str],
    allows_missing: bool,
) -> NDArray[np.int64]:
    """Each categorical value's cell: its level's position, ``len(levels)`` when missing.

    The one rule by which a bank counts a categorical column and an encoder bins it.

    Raises
    ------
    ValueError
        A value that is not a declared level (or a missing value where the schema
        refuses them): the frame was not validated against the schema.
    """
    index = np.full(values.size, -1, dtype=np.int64)
    for position, level in enumerate(levels):
        index[values == level] = position
    if allows_missing:
        index[np.asarray(pd.isna(values))] = len(levels)
    unplaced = np.flatnonzero(index < 0)
    if unplaced.size:
        raise ValueError(
            f"column '{name}' holds {unplaced.size} values that are not declared "
            f"levels{'' if allows_missing else ' or are missing'} (first: "
            f"'{values[unplaced[0]]}'; validate the frame against the run's schema)"
        )
    return index


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class ClassCells(ClassCounts):
    """One feature's counts per class over its cells (module docstring).

    Whole numbers at a bank without a budget; real numbers, possibly negative, once a
    bank added noise (settle a sum with :meth:`clipped`).

    Attributes
    ----------
    events, non_events : numpy.ndarray of float64
        Counts of default rows and of the other rows per cell, one shape.
    regular : int
        How many leading cells are regular (grid cells, or levels); the rest are
        the special-code cells and the missing cell.
    """

    regular: int

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.regular <= self.events.size:
            raise ValueError(f"regular cells must be in 1..{self.events.size}; got {self.regular}")

    def _check_addable(self, other: Self) -> None:
        if (self.regular, self.events.size) != (other.regular, other.events.size):
            raise ValueError(
                f"cells differ: {self.events.size} cells ({self.regular} regular) vs "
                f"{other.events.size} ({other.regular})"
            )

    @classmethod
    def from_vector(cls, vector: NDArray[np.float64], *, regular: int) -> ClassCells:
        """Inverse of :meth:`to_vector` (an even number of entries)."""
        events, non_events = halves(vector, vector.size // 2, unit="cells")
        return cls(events=events, non_events=non_events, regular=regular)

    def clipped(self) -> ClassCells:
        """Every count clipped at zero (only for a sum over banks: see the module)."""
        events, non_events = np.clip(self.events, 0.0, None), np.clip(self.non_events, 0.0, None)
        return self.with_counts(events, non_events)


def coarse_cells(grid_bins: int, max_cells: int) -> NDArray[np.int64]:
    """Boundaries of ``min(max_cells, grid_bins)`` runs of consecutive grid cells.

    Run ``k`` holds grid cells ``bounds[k]`` up to (not including) ``bounds[k + 1]``;
    the runs' sizes differ by at most one (``grid_bins // cells`` or one more), so a
    grid that ``cells`` does not divide is still covered evenly.

    Parameters
    ----------
    grid_bins : int
        Cells of the coordinator's grid, >= 1.
    max_cells : int
        Most runs wanted, >= 1; a coarser grid than that is kept cell by cell.

    Returns
    -------
    numpy.ndarray of int64
        ``cells + 1`` increasing indices from 0 to ``grid_bins``.
    """
    if grid_bins < 1 or max_cells < 1:
        raise ValueError(f"grid_bins and max_cells must be >= 1; got {grid_bins} and {max_cells}")
    cells = min(max_cells, grid_bins)
    return np.arange(cells + 1, dtype=np.int64) * grid_bins // cells


def merge_cells(histogram: NDArray[np.floating], bounds: NDArray[np.int64]) -> NDArray[np.float64]:
    """Counts of the coarse cells :func:`coarse_cells` bounds: sums of their grid cells."""
    counts = np.asarray(histogram, dtype=np.float64)
    if counts.shape != (int(bounds[-1]),):
        raise ValueError(f"a histogram of {bounds[-1]} cells was expected; got {counts.shape}")
    merged: NDArray[np.float64] = np.add.reduceat(counts, bounds[:-1])
    return merged


def spread_cells(coarse: NDArray[np.floating], bounds: NDArray[np.int64]) -> NDArray[np.float64]:
    """A grid histogram with each coarse count spread evenly over its grid cells.

    The inverse of :func:`merge_cells` up to how a count lies within its coarse cell:
    merging the result gives ``coarse`` back (up to rounding).
    """
    sizes = np.diff(bounds)
    spread: NDArray[np.float64] = np.repeat(np.asarray(coarse, dtype=np.float64) / sizes, sizes)
    return spread

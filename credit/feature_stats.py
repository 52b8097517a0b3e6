"""Per-bank feature aggregates and their exact combination at the coordinator.

A bank releases, for each numeric model input, a count, a sum and a sum of squares of
the transformed values plus a histogram over a fixed grid spanning the schema's public
bounds. Sums of these over banks are exactly what the same computation gives on the
pooled rows, so encoders fitted from the combined aggregate equal pooled encoders
(:func:`combine_feature_stats`), and no row ever leaves a bank.

Only a column's regular values enter its aggregates: a missing value (NaN, where the
schema allows them) or a special code is left out, so a row adds at most one count to
each feature's histogram (none when its value is missing or special) and the count
differs between features. The encoders give missing values and special codes bins of
their own (:mod:`credit.encoding`).

A bank under a privacy budget adds noise to its histograms (and derives its moments
from them), so histograms hold real numbers; they are clipped at zero only after
summing (:func:`settle_noisy`), which keeps the sum unbiased where the banks' noise
cancels. Under secure aggregation the banks' aggregates travel as one vector each
(:meth:`FeatureStats.to_vector`) inside a secure sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.schema import DatasetSchema, NumericFeature, Transform
from credit.summing import sum_of

__all__ = [
    "FeatureStats",
    "NumericStats",
    "coarse_cells",
    "combine_feature_stats",
    "compute_feature_stats",
    "grid_edges",
    "merge_cells",
    "numeric_inputs",
    "raw_values",
    "regular_values",
    "settle_noisy",
    "spread_cells",
    "stats_from_histogram",
    "transform_values",
]

DEFAULT_GRID_BINS = 1024
MAX_GRID_BINS = 65_536
"""Finest histogram grid a bank computes (a coordinator asking for more is refused)."""


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


@dataclass(frozen=True)
class NumericStats:
    """Aggregates of one numeric column (transformed values) at one or more banks.

    Attributes
    ----------
    count : int
        Number of regular values (missing values and special codes excluded).
    total : float
        Sum of transformed values.
    total_squares : float
        Sum of squared transformed values.
    histogram : numpy.ndarray of float64
        Counts over :func:`grid_edges` (last bin closed on the right); real numbers
        once a bank added noise.
    """

    count: int
    total: float
    total_squares: float
    histogram: NDArray[np.float64]

    def __add__(self, other: NumericStats) -> NumericStats:
        if self.histogram.shape != other.histogram.shape:
            raise ValueError(
                f"histograms differ in length: {self.histogram.size} vs {other.histogram.size}"
            )
        return NumericStats(
            count=self.count + other.count,
            total=self.total + other.total,
            total_squares=self.total_squares + other.total_squares,
            histogram=self.histogram + other.histogram,
        )

    @property
    def mean(self) -> float:
        """Mean of the transformed values (0 when there are none)."""
        return self.total / self.count if self.count > 0 else 0.0

    @property
    def std(self) -> float:
        """Population standard deviation of the transformed values (0 when there are none)."""
        if self.count <= 0:
            return 0.0
        variance = max(self.total_squares / self.count - self.mean**2, 0.0)
        return float(np.sqrt(variance))


@dataclass(frozen=True)
class FeatureStats:
    """Aggregates for every numeric model input, keyed by column name."""

    numeric: dict[str, NumericStats]
    grid_bins: int

    def __add__(self, other: FeatureStats) -> FeatureStats:
        if self.grid_bins != other.grid_bins or self.numeric.keys() != other.numeric.keys():
            raise ValueError("feature statistics come from different schemas or grids")
        return FeatureStats(
            numeric={name: self.numeric[name] + other.numeric[name] for name in self.numeric},
            grid_bins=self.grid_bins,
        )

    def to_vector(self) -> NDArray[np.float64]:
        """Every feature's ``[count, total, total_squares, histogram...]``, in key order."""
        parts = [
            np.concatenate(
                [[stats.count, stats.total, stats.total_squares], stats.histogram]
            ).astype(np.float64)
            for stats in self.numeric.values()
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    @classmethod
    def from_vector(
        cls, vector: NDArray[np.floating], *, features: list[str], grid_bins: int
    ) -> FeatureStats:
        """Inverse of :meth:`to_vector` for ``features`` (counts rounded to whole numbers)."""
        width = grid_bins + 3
        values = np.asarray(vector, dtype=np.float64)
        if values.shape != (width * len(features),):
            raise ValueError(
                f"a vector of {len(features)} features of {grid_bins} bins has "
                f"{width * len(features)} entries; got {values.shape}"
            )
        numeric = {}
        for index, name in enumerate(features):
            part = values[index * width : (index + 1) * width]
            numeric[name] = NumericStats(
                count=round(float(part[0])),
                total=float(part[1]),
                total_squares=float(part[2]),
                histogram=part[3:].copy(),
            )
        return cls(numeric=numeric, grid_bins=grid_bins)


def numeric_inputs(schema: DatasetSchema) -> list[str]:
    """The numeric model inputs whose statistics banks release, in schema order."""
    inputs = set(schema.input_features)
    return [feature.name for feature in schema.numeric if feature.name in inputs]


def compute_feature_stats(
    frame: pd.DataFrame, schema: DatasetSchema, grid_bins: int = DEFAULT_GRID_BINS
) -> FeatureStats:
    """Aggregate one bank's numeric model inputs (its training rows only).

    Only regular values count (:func:`regular_values`): missing values and special
    codes are left out of every aggregate.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated rows (see :func:`credit.loading.load_bank_csv`).
    schema : DatasetSchema
        The dataset contract; its public bounds fix the histogram grid.
    grid_bins : int, default 1024
        Number of equal-width grid cells between the transformed bounds.
    """
    inputs = set(numeric_inputs(schema))
    numeric = {}
    for feature in schema.numeric:
        if feature.name not in inputs:
            continue
        raw = frame[feature.name].to_numpy(dtype=np.float64)
        values = transform_values(raw[regular_values(raw, feature)], feature.transform)
        histogram, _ = np.histogram(values, bins=grid_edges(feature, grid_bins))
        numeric[feature.name] = NumericStats(
            count=int(values.size),
            total=float(values.sum()),
            total_squares=float(np.square(values).sum()),
            histogram=histogram.astype(np.float64),
        )
    return FeatureStats(numeric=numeric, grid_bins=grid_bins)


def combine_feature_stats(parts: Sequence[FeatureStats]) -> FeatureStats:
    """Sum per-bank aggregates; the result equals the aggregate of the pooled rows."""
    return sum_of(parts, what="feature statistics")


def stats_from_histogram(
    histogram: NDArray[np.floating], edges: NDArray[np.float64]
) -> NumericStats:
    """Count and moments of a (noisy) histogram via its bin centres: post-processing."""
    counts = np.asarray(histogram, dtype=np.float64)
    centres = (edges[:-1] + edges[1:]) / 2.0
    return NumericStats(
        count=max(round(float(counts.sum())), 1),
        total=float((counts * centres).sum()),
        total_squares=float((counts * centres**2).sum()),
        histogram=counts,
    )


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


def settle_noisy(stats: FeatureStats, schema: DatasetSchema) -> FeatureStats:
    """Summed noisy statistics made usable: histograms clipped at zero, moments from them.

    Only for sums that hold a bank's noise; clipping after summing (not at each bank)
    keeps the banks' noise from adding up to a positive bias in empty bins.
    """
    by_name = {feature.name: feature for feature in schema.numeric}
    return FeatureStats(
        numeric={
            name: stats_from_histogram(
                np.clip(numeric.histogram, 0.0, None), grid_edges(by_name[name], stats.grid_bins)
            )
            for name, numeric in stats.numeric.items()
        },
        grid_bins=stats.grid_bins,
    )

"""Per-bank feature aggregates and their exact combination at the coordinator.

A bank releases, for each numeric model input, a count, a sum and a sum of squares of
the transformed values plus a histogram over a fixed grid spanning the schema's public
bounds. Sums of these over banks are exactly what the same computation gives on the
pooled rows, so encoders fitted from the combined aggregate equal pooled encoders
(:func:`combine_feature_stats`), and no row ever leaves a bank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.schema import DatasetSchema, NumericFeature, Transform

__all__ = [
    "FeatureStats",
    "NumericStats",
    "combine_feature_stats",
    "compute_feature_stats",
    "grid_edges",
    "numeric_inputs",
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
        Number of values.
    total : float
        Sum of transformed values.
    total_squares : float
        Sum of squared transformed values.
    histogram : numpy.ndarray of int64
        Counts over :func:`grid_edges` (last bin closed on the right).
    """

    count: int
    total: float
    total_squares: float
    histogram: NDArray[np.int64]

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
        """Mean of the transformed values."""
        return self.total / self.count

    @property
    def std(self) -> float:
        """Population standard deviation of the transformed values."""
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


def numeric_inputs(schema: DatasetSchema) -> list[str]:
    """The numeric model inputs whose statistics banks release, in schema order."""
    inputs = set(schema.input_features)
    return [feature.name for feature in schema.numeric if feature.name in inputs]


def compute_feature_stats(
    frame: pd.DataFrame, schema: DatasetSchema, grid_bins: int = DEFAULT_GRID_BINS
) -> FeatureStats:
    """Aggregate one bank's numeric model inputs (its training rows only).

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
        values = transform_values(frame[feature.name].to_numpy(dtype=np.float64), feature.transform)
        histogram, _ = np.histogram(values, bins=grid_edges(feature, grid_bins))
        numeric[feature.name] = NumericStats(
            count=int(values.size),
            total=float(values.sum()),
            total_squares=float(np.square(values).sum()),
            histogram=histogram.astype(np.int64),
        )
    return FeatureStats(numeric=numeric, grid_bins=grid_bins)


def combine_feature_stats(parts: Sequence[FeatureStats]) -> FeatureStats:
    """Sum per-bank aggregates; the result equals the aggregate of the pooled rows."""
    if not parts:
        raise ValueError("no feature statistics to combine")
    combined = parts[0]
    for part in parts[1:]:
        combined = combined + part
    return combined

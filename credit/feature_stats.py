"""Per-bank feature aggregates, per class, and their exact combination at the coordinator.

A bank releases, for every model input, its training rows' counts per class (events:
default rows, label 1; non-events: the others) over the feature's **cells**:

* a numeric input's cells are the cells of a fixed grid spanning the schema's public
  bounds (in transformed space), then one cell per special code (schema order), then
  a missing cell if the schema allows missing values; beside them the count, sum and
  sum of squares of its regular values (neither missing nor special);
* a categorical input's cells are its declared levels, then a missing cell if allowed.

Each row adds exactly one count to one cell of each feature (its class's), so the
class-summed grid cells are the histogram of the regular values, and the per-class
counts give every bin's (events, non-events) on any bins whose edges are grid edges
(:mod:`credit.woe_binning`): WoE and IV with no exchange beyond the set-up release.

Sums of these over banks are exactly what the same computation gives on the pooled
rows, so encoders fitted from the combined aggregate equal pooled encoders
(:func:`combine_feature_stats`), and no row ever leaves a bank.

A bank under a privacy budget adds noise to its counts (and derives its moments from
them), so counts hold real numbers; they are clipped at zero only after summing
(:func:`settle_noisy`), which keeps the sum unbiased where the banks' noise cancels.
Under secure aggregation the banks' aggregates travel as one vector each
(:meth:`FeatureStats.to_vector`, layout in :func:`vector_length`) inside a secure sum.

The cells themselves (grid, levels, per-class counts, coarse runs) are
:mod:`credit.feature_cells`'s, re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.feature_cells import (
    ClassCells,
    coarse_cells,
    grid_edges,
    level_cells,
    merge_cells,
    raw_values,
    regular_values,
    spread_cells,
    transform_values,
)
from credit.schema import CategoricalFeature, DatasetSchema, NumericFeature
from credit.summing import sum_of

__all__ = [
    "ClassCells",
    "FeatureStats",
    "NumericStats",
    "categorical_inputs",
    "coarse_cells",
    "combine_feature_stats",
    "compute_feature_stats",
    "grid_edges",
    "level_cells",
    "merge_cells",
    "numeric_from_cells",
    "numeric_inputs",
    "raw_values",
    "regular_values",
    "released_features",
    "settle_noisy",
    "spread_cells",
    "transform_values",
    "vector_length",
]

DEFAULT_GRID_BINS = 1024
MAX_GRID_BINS = 65_536
"""Finest histogram grid a bank computes (a coordinator asking for more is refused)."""
_MOMENTS = 3


@dataclass(frozen=True)
class NumericStats:
    """Aggregates of one numeric column (transformed values) at one or more banks.

    Attributes
    ----------
    count : int
        Number of regular values (missing values and special codes excluded).
    total : float
        Sum of transformed regular values.
    total_squares : float
        Sum of squared transformed regular values.
    cells : ClassCells
        Counts per class over the grid cells (:func:`grid_edges`, last cell closed on
        the right), then each special code, then missing if the schema allows it.
    """

    count: int
    total: float
    total_squares: float
    cells: ClassCells

    def __add__(self, other: NumericStats) -> NumericStats:
        return NumericStats(
            count=self.count + other.count,
            total=self.total + other.total,
            total_squares=self.total_squares + other.total_squares,
            cells=self.cells + other.cells,
        )

    @property
    def histogram(self) -> NDArray[np.float64]:
        """Regular values over the grid, both classes summed."""
        return self.cells.counts[: self.cells.regular]

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

    def to_vector(self) -> NDArray[np.float64]:
        """``[count, total, total_squares, events..., non-events...]``."""
        moments = np.array([self.count, self.total, self.total_squares], dtype=np.float64)
        return np.concatenate([moments, self.cells.to_vector()])


@dataclass(frozen=True)
class FeatureStats:
    """Aggregates of every model input, keyed by column name (schema order).

    Attributes
    ----------
    numeric : dict of str to NumericStats
        The numeric model inputs.
    categorical : dict of str to ClassCells
        The categorical model inputs: counts per class over levels (then missing).
    grid_bins : int
        Cells of the numeric inputs' grid.
    """

    numeric: dict[str, NumericStats]
    categorical: dict[str, ClassCells]
    grid_bins: int

    def __add__(self, other: FeatureStats) -> FeatureStats:
        if (
            self.grid_bins != other.grid_bins
            or self.numeric.keys() != other.numeric.keys()
            or self.categorical.keys() != other.categorical.keys()
        ):
            raise ValueError("feature statistics come from different schemas or grids")
        return FeatureStats(
            numeric={name: self.numeric[name] + other.numeric[name] for name in self.numeric},
            categorical={
                name: self.categorical[name] + other.categorical[name] for name in self.categorical
            },
            grid_bins=self.grid_bins,
        )

    @property
    def features(self) -> int:
        """How many features have counts: F, the release's L2 sensitivity squared."""
        return len(self.numeric) + len(self.categorical)

    def to_vector(self) -> NDArray[np.float64]:
        """Every numeric input's vector, then every categorical input's, in key order.

        Numeric: ``[count, total, total_squares, events..., non-events...]`` over its
        cells; categorical: ``[events..., non-events...]`` over its cells.
        """
        parts = [stats.to_vector() for stats in self.numeric.values()]
        parts += [cells.to_vector() for cells in self.categorical.values()]
        return np.concatenate(parts) if parts else np.zeros(0)

    @classmethod
    def from_vector(
        cls, vector: NDArray[np.floating], *, schema: DatasetSchema, grid_bins: int
    ) -> FeatureStats:
        """Inverse of :meth:`to_vector` for ``schema``'s inputs (counts rounded to whole numbers).

        Raises
        ------
        ValueError
            The vector's length is not :func:`vector_length`.
        """
        values = np.asarray(vector, dtype=np.float64)
        expected = vector_length(schema, grid_bins)
        if values.shape != (expected,):
            raise ValueError(
                f"the feature statistics of schema '{schema.name}' on {grid_bins} grid cells "
                f"have {expected} entries; got {values.shape}"
            )
        numeric, categorical, start = {}, {}, 0
        for feature in _numeric_features(schema):
            width = _MOMENTS + 2 * _numeric_cells(feature, grid_bins)
            part = values[start : start + width]
            numeric[feature.name] = NumericStats(
                count=round(float(part[0])),
                total=float(part[1]),
                total_squares=float(part[2]),
                cells=ClassCells.from_vector(part[_MOMENTS:], regular=grid_bins),
            )
            start += width
        for categorical_feature in _categorical_features(schema):
            width = 2 * _level_cells(categorical_feature)
            categorical[categorical_feature.name] = ClassCells.from_vector(
                values[start : start + width], regular=len(categorical_feature.levels)
            )
            start += width
        return cls(numeric=numeric, categorical=categorical, grid_bins=grid_bins)


def _numeric_features(schema: DatasetSchema) -> list[NumericFeature]:
    inputs = set(schema.input_features)
    return [feature for feature in schema.numeric if feature.name in inputs]


def _categorical_features(schema: DatasetSchema) -> list[CategoricalFeature]:
    inputs = set(schema.input_features)
    return [feature for feature in schema.categorical if feature.name in inputs]


def _numeric_cells(feature: NumericFeature, grid_bins: int) -> int:
    return grid_bins + len(feature.special) + int(feature.allows_missing)


def _level_cells(feature: CategoricalFeature) -> int:
    return len(feature.levels) + int(feature.allows_missing)


def numeric_inputs(schema: DatasetSchema) -> list[str]:
    """The numeric model inputs whose statistics banks release, in schema order."""
    return [feature.name for feature in _numeric_features(schema)]


def categorical_inputs(schema: DatasetSchema) -> list[str]:
    """The categorical model inputs whose counts banks release, in schema order."""
    return [feature.name for feature in _categorical_features(schema)]


def released_features(schema: DatasetSchema) -> int:
    """F: how many features the set-up release has counts of (every model input)."""
    return len(_numeric_features(schema)) + len(_categorical_features(schema))


def vector_length(schema: DatasetSchema, grid_bins: int) -> int:
    """Entries of :meth:`FeatureStats.to_vector` for ``schema`` and ``grid_bins``.

    Per numeric input ``3 + 2 * (grid_bins + specials + missing)``, per categorical
    input ``2 * (levels + missing)`` (``missing`` is 1 where the schema allows it).
    """
    numeric = sum(_MOMENTS + 2 * _numeric_cells(f, grid_bins) for f in _numeric_features(schema))
    return numeric + sum(2 * _level_cells(f) for f in _categorical_features(schema))


def compute_feature_stats(
    frame: pd.DataFrame, schema: DatasetSchema, grid_bins: int = DEFAULT_GRID_BINS
) -> FeatureStats:
    """Aggregate one bank's model inputs per class (its training rows only).

    Moments count regular values only (:func:`regular_values`); every row adds one
    count to one cell of each feature: its regular value's grid cell, its special
    code's cell or the missing cell, in its class.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated rows with the schema's target (:func:`credit.loading.load_bank_csv`).
    schema : DatasetSchema
        The dataset contract; its public bounds fix the grid.
    grid_bins : int, default 1024
        Number of equal-width grid cells between the transformed bounds.
    """
    events = frame[schema.target].to_numpy() == 1
    numeric = {
        feature.name: _numeric_stats(
            frame[feature.name].to_numpy(np.float64), events, feature, grid_bins
        )
        for feature in _numeric_features(schema)
    }
    categorical = {}
    for feature in _categorical_features(schema):
        cells = level_cells(
            frame[feature.name].to_numpy(),
            name=feature.name,
            levels=feature.levels,
            allows_missing=feature.allows_missing,
        )
        categorical[feature.name] = _count_cells(
            cells, events, _level_cells(feature), len(feature.levels)
        )
    return FeatureStats(numeric=numeric, categorical=categorical, grid_bins=grid_bins)


def _numeric_stats(
    raw: NDArray[np.float64], events: NDArray[np.bool_], feature: NumericFeature, grid_bins: int
) -> NumericStats:
    regular = regular_values(raw, feature)
    values = transform_values(raw[regular], feature.transform)
    edges = grid_edges(feature, grid_bins)
    per_class = []
    for in_class in (events, ~events):
        histogram, _ = np.histogram(values[in_class[regular]], bins=edges)
        extra = [float((raw[in_class] == code).sum()) for code in feature.special]
        if feature.allows_missing:
            extra.append(float(np.isnan(raw[in_class]).sum()))
        per_class.append(np.concatenate([histogram.astype(np.float64), extra]))
    return NumericStats(
        count=int(values.size),
        total=float(values.sum()),
        total_squares=float(np.square(values).sum()),
        cells=ClassCells(events=per_class[0], non_events=per_class[1], regular=grid_bins),
    )


def _count_cells(
    cells: NDArray[np.int64], events: NDArray[np.bool_], n_cells: int, regular: int
) -> ClassCells:
    return ClassCells(
        events=np.bincount(cells[events], minlength=n_cells).astype(np.float64),
        non_events=np.bincount(cells[~events], minlength=n_cells).astype(np.float64),
        regular=regular,
    )


def combine_feature_stats(parts: Sequence[FeatureStats]) -> FeatureStats:
    """Sum per-bank aggregates; the result equals the aggregate of the pooled rows."""
    return sum_of(parts, what="feature statistics")


def numeric_from_cells(cells: ClassCells, edges: NDArray[np.float64]) -> NumericStats:
    """Count and moments of (noisy) cells via the grid cells' centres: post-processing."""
    counts = cells.counts[: cells.regular]
    centres = (edges[:-1] + edges[1:]) / 2.0
    return NumericStats(
        count=max(round(float(counts.sum())), 1),
        total=float((counts * centres).sum()),
        total_squares=float((counts * centres**2).sum()),
        cells=cells,
    )


def settle_noisy(stats: FeatureStats, schema: DatasetSchema) -> FeatureStats:
    """Summed noisy statistics made usable: counts clipped at zero, moments from them.

    Only for sums that hold a bank's noise; clipping after summing (not at each bank)
    keeps the banks' noise from adding up to a positive bias in empty cells. Every
    class's cell is clipped on its own; the moments come from the class-summed grid.
    """
    by_name = {feature.name: feature for feature in schema.numeric}
    return FeatureStats(
        numeric={
            name: numeric_from_cells(
                numeric.cells.clipped(), grid_edges(by_name[name], stats.grid_bins)
            )
            for name, numeric in stats.numeric.items()
        },
        categorical={name: cells.clipped() for name, cells in stats.categorical.items()},
        grid_bins=stats.grid_bins,
    )

"""Shared bin edges and the bin codes every bank computes from them.

A feature's regular bins come from its interior edges ``e_0 < e_1 < ... < e_{k-1}``
(float32 values in raw units): code ``i`` holds the values ``e_{i-1} <= x < e_i``
(``searchsorted(edges, x, side="right")`` in float32), so "code < b goes left" is the
same test as XGBoost's ``float32(x) < float32(split_condition)`` with the threshold
``e_{b-1}``. A missing value (NaN) takes the code :attr:`FeatureBins.missing_code`, the
last of :attr:`FeatureBins.n_bins`, whatever the feature.

The edges come from the encoder the consortium already fits from its federated (or
public) feature statistics (:func:`bins_from_encoder`): a binned encoder fitted with
``quantile_bins = max_bins`` has up to ``max_bins - 1`` interior quantile edges per
numeric column (snapped to the statistics' grid, transformed back to raw units here);
a categorical column gets one bin per declared level. Special codes are ordinary
values here (they lie inside the schema's bounds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.encoding import EncodingKind, FeatureEncoder
from credit.feature_stats import raw_values
from credit.gbdt.params import MAX_BINS

__all__ = ["FeatureBins", "bins_from_encoder", "matrix_card", "raw_matrix"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class FeatureBins:
    """The shared bin edges of the model's input features.

    Attributes
    ----------
    names : tuple of str
        The input features, in the column order of the raw and code matrices.
    edges : tuple of tuple of float
        Per feature, its strictly increasing interior edges in raw units, each a float32
        value; at most :data:`~credit.gbdt.params.MAX_BINS` - 1 of them (codes fit uint8).
    """

    names: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.edges) or not self.names:
            raise ValueError(
                f"FeatureBins needs one edge list per feature; got {len(self.names)} names "
                f"and {len(self.edges)} edge lists"
            )
        for name, edges in zip(self.names, self.edges, strict=True):
            values = np.asarray(edges, dtype=np.float64)
            if values.size > MAX_BINS - 1 or not np.all(np.isfinite(values)):
                raise ValueError(
                    f"feature '{name}': at most {MAX_BINS - 1} finite edges; got {list(edges)}"
                )
            if np.any(np.diff(values) <= 0) or np.any(values.astype(np.float32) != values):
                raise ValueError(
                    f"feature '{name}': edges must be strictly increasing float32 values; "
                    f"got {list(edges)}"
                )

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return len(self.names)

    @property
    def regular_bins(self) -> NDArray[np.int64]:
        """Per feature, its number of regular bins: ``len(edges) + 1``."""
        return np.array([len(edges) + 1 for edges in self.edges], dtype=np.int64)

    @property
    def n_bins(self) -> int:
        """Histogram width: the most regular bins of any feature, plus the missing code."""
        return int(self.regular_bins.max()) + 1

    @property
    def missing_code(self) -> int:
        """The code of a missing value, for every feature: ``n_bins - 1``."""
        return self.n_bins - 1

    def codes(self, values: NDArray[np.floating]) -> NDArray[np.uint8]:
        """Bin codes of a raw ``(rows, n_features)`` matrix (NaN: missing).

        Raises
        ------
        ValueError
            The matrix does not have one column per feature.
        """
        matrix = np.asarray(values, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(
                f"the raw matrix needs {self.n_features} columns ({', '.join(self.names)}); "
                f"got shape {matrix.shape}"
            )
        codes = np.empty(matrix.shape, dtype=np.uint8)
        for column, edges in enumerate(self.edges):
            x = matrix[:, column]
            bins = np.searchsorted(np.asarray(edges, dtype=np.float32), x, side="right")
            codes[:, column] = np.where(np.isnan(x), self.missing_code, bins)
        return codes

    def threshold(self, feature: int, split_bin: int) -> float:
        """The raw threshold of "code < ``split_bin``": ``edges[split_bin - 1]``.

        ``split_bin`` equal to the feature's regular bins (every regular value left,
        missing values right) reads as the largest float32.
        """
        edges = self.edges[feature]
        return edges[split_bin - 1] if split_bin <= len(edges) else _FLOAT32_MAX


def bins_from_encoder(encoder: FeatureEncoder) -> FeatureBins:
    """Shared bins from a fitted binned encoder (features in the encoder's order).

    A numeric column's edges are its encoder edges taken back to raw units and rounded
    to float32 (duplicates dropped); a categorical column's are its declared levels
    after the first (each level its own bin), or ``1, 2, ...`` for text levels, whose
    raw value is the level's position (:func:`raw_matrix`).

    Raises
    ------
    ValueError
        The encoder is not a binned one (a standardised encoder has no edges).
    """
    if encoder.kind is not EncodingKind.BINNED:
        raise ValueError(
            f"gradient-boosted trees need a binned encoder (its quantile edges); got "
            f"'{encoder.kind}'"
        )
    edges: list[tuple[float, ...]] = []
    for numeric in encoder.numeric:
        raw = raw_values(np.asarray(numeric.edges, dtype=np.float64), numeric.transform)
        edges.append(_float32_edges(raw))
    for categorical in encoder.categorical:
        edges.append(_float32_edges(_level_values(categorical.levels)[1:]))
    return FeatureBins(names=encoder.features, edges=tuple(edges))


def _float32_edges(values: NDArray[np.float64]) -> tuple[float, ...]:
    rounded = np.unique(np.asarray(values, dtype=np.float32))
    return tuple(float(v) for v in rounded[np.isfinite(rounded)])


def _level_values(levels: tuple[int, ...] | tuple[str, ...]) -> NDArray[np.float64]:
    if all(isinstance(level, int) for level in levels):
        return np.sort(np.asarray(levels, dtype=np.float64))
    return np.arange(len(levels), dtype=np.float64)


def raw_matrix(frame: pd.DataFrame, encoder: FeatureEncoder) -> NDArray[np.float32]:
    """The XGBoost input matrix of validated rows: one float32 column per feature.

    Numeric columns hold their raw values, integer-coded categorical columns their
    level, text-coded ones the level's position in the schema; missing values are NaN.
    Columns follow :attr:`FeatureEncoder.features` (numeric, then categorical).
    """
    columns = [frame[e.name].to_numpy(dtype=np.float64) for e in encoder.numeric]
    for categorical in encoder.categorical:
        values = frame[categorical.name]
        if all(isinstance(level, int) for level in categorical.levels):
            columns.append(values.to_numpy(dtype=np.float64))
        else:
            position = {level: float(i) for i, level in enumerate(categorical.levels)}
            columns.append(values.map(position).to_numpy(dtype=np.float64))
    return np.column_stack(columns).astype(np.float32)


def matrix_card(encoder: FeatureEncoder) -> dict[str, Any]:
    """How to build the model's input matrix from a bank's CSV: a JSON-ready document.

    For the model card next to an exported XGBoost model: one float32 column per
    feature in :func:`raw_matrix`'s order, what each column holds (the raw value, the
    level, or the level's position), the missing-value rule, and the bin edges with the
    rule that turns values into bin codes.
    """
    bins = bins_from_encoder(encoder)
    columns: list[dict[str, Any]] = []
    for numeric in encoder.numeric:
        columns.append({"name": numeric.name, "value": "the CSV value (raw units)"})
    for categorical in encoder.categorical:
        numbered = all(isinstance(level, int) for level in categorical.levels)
        columns.append(
            {
                "name": categorical.name,
                "value": "the level" if numbered else "the level's position in 'levels'",
                "levels": list(categorical.levels),
            }
        )
    for index, (column, edges) in enumerate(zip(columns, bins.edges, strict=True)):
        column["index"] = index
        column["edges"] = list(edges)
    return {
        "dtype": "float32",
        "missing": "NaN (an empty CSV cell)",
        "split_rule": "a row goes left when float32(value) < float32(split_condition)",
        "bin_code_rule": (
            "code = number of edges <= value (float32); a missing value has code "
            f"{bins.missing_code}"
        ),
        "columns": columns,
    }

"""Feature encoders: how a validated frame becomes the model's input matrix.

Two encodings, each fitted from one of two sources:

============  ===========================================  ==========================
kind          numeric columns                              categorical columns
============  ===========================================  ==========================
binned        one-hot of quantile (or public) bins         one-hot of declared levels
standardized  z-score of the transformed value, clipped    one-hot of declared levels
============  ===========================================  ==========================

``federated`` fits bins and moments from :class:`~credit.feature_stats.FeatureStats`
combined across banks; ``public`` uses only the schema's bounds and declared bins, so
it costs no privacy budget. The encoder is a frozen, JSON-serialisable object: it
travels to banks in the round configuration and into the model card.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from credit.feature_stats import FeatureStats, NumericStats, grid_edges, transform_values
from credit.schema import DatasetSchema, NumericFeature, Transform

__all__ = [
    "CategoricalEncoding",
    "EncodingKind",
    "FeatureEncoder",
    "NumericEncoding",
    "StatsSource",
    "fit_encoder",
]

Z_CLIP = 5.0


class EncodingKind(StrEnum):
    """How numeric columns are encoded."""

    BINNED = "binned"
    STANDARDIZED = "standardized"


class StatsSource(StrEnum):
    """Where encoder parameters come from."""

    FEDERATED = "federated"
    PUBLIC = "public"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NumericEncoding(_Frozen):
    """Encoding of one numeric column; ``edges`` and moments are in transformed space."""

    name: str
    transform: Transform
    edges: tuple[float, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def width(self) -> int:
        """Number of model inputs this column produces."""
        return len(self.edges) + 1 if self.edges else 1


class CategoricalEncoding(_Frozen):
    """One-hot encoding over the declared levels."""

    name: str
    levels: tuple[int, ...] | tuple[str, ...]

    @property
    def width(self) -> int:
        """Number of model inputs this column produces."""
        return len(self.levels)


class FeatureEncoder(_Frozen):
    """A fitted encoder from validated frame to float32 input matrix."""

    kind: EncodingKind
    source: StatsSource
    schema_hash: str
    numeric: tuple[NumericEncoding, ...]
    categorical: tuple[CategoricalEncoding, ...]

    @property
    def n_inputs(self) -> int:
        """Width of the encoded matrix."""
        return sum(e.width for e in self.numeric) + sum(e.width for e in self.categorical)

    @property
    def input_names(self) -> list[str]:
        """One readable name per encoded column, e.g. ``LIMIT_BAL[bin 3]``, ``SEX=2``."""
        names: list[str] = []
        for numeric in self.numeric:
            if self.kind is EncodingKind.BINNED:
                names.extend(f"{numeric.name}[bin {i}]" for i in range(numeric.width))
            else:
                names.append(numeric.name)
        for categorical in self.categorical:
            names.extend(f"{categorical.name}={level}" for level in categorical.levels)
        return names

    def transform(self, frame: pd.DataFrame) -> NDArray[np.float32]:
        """Encode validated rows into a dense ``(n_rows, n_inputs)`` float32 matrix."""
        blocks = [self._numeric_block(frame, e) for e in self.numeric]
        blocks += [_one_hot_levels(frame[e.name].to_numpy(), e.levels) for e in self.categorical]
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)

    def _numeric_block(self, frame: pd.DataFrame, encoding: NumericEncoding) -> NDArray[np.float32]:
        values = transform_values(
            frame[encoding.name].to_numpy(dtype=np.float64), encoding.transform
        )
        if self.kind is EncodingKind.BINNED:
            index = np.searchsorted(np.asarray(encoding.edges), values, side="right")
            block = np.zeros((values.size, encoding.width), dtype=np.float32)
            block[np.arange(values.size), index] = 1.0
            return block
        z = np.clip((values - encoding.mean) / encoding.std, -Z_CLIP, Z_CLIP)
        return z.astype(np.float32).reshape(-1, 1)


def _one_hot_levels(
    values: NDArray[np.generic], levels: tuple[int, ...] | tuple[str, ...]
) -> NDArray[np.float32]:
    block = np.zeros((values.size, len(levels)), dtype=np.float32)
    for column, level in enumerate(levels):
        block[:, column] = values == level
    return block


def fit_encoder(
    schema: DatasetSchema,
    *,
    kind: EncodingKind = EncodingKind.BINNED,
    source: StatsSource = StatsSource.FEDERATED,
    stats: FeatureStats | None = None,
    quantile_bins: int = 10,
) -> FeatureEncoder:
    """Fit an encoder for the schema's model inputs.

    Parameters
    ----------
    schema : DatasetSchema
        The dataset contract.
    kind : EncodingKind, default ``binned``
        Binned one-hot or standardised numeric columns.
    source : StatsSource, default ``federated``
        ``federated`` requires ``stats`` (combined across banks); ``public`` uses
        schema bounds and declared bins only.
    stats : FeatureStats, optional
        Combined per-bank aggregates; required when ``source`` is ``federated``.
    quantile_bins : int, default 10
        Target number of bins per numeric column (fewer when values repeat).

    Raises
    ------
    ValueError
        ``stats`` missing for a federated fit, or ``quantile_bins < 2``.
    """
    if quantile_bins < 2:
        raise ValueError(f"quantile_bins must be >= 2; got {quantile_bins}")
    if source is StatsSource.FEDERATED and stats is None:
        raise ValueError("a federated encoder needs combined feature statistics")
    inputs = set(schema.input_features)
    numeric = []
    for feature in schema.numeric:
        if feature.name not in inputs:
            continue
        column_stats = stats.numeric[feature.name] if stats is not None else None
        numeric.append(_fit_numeric(feature, kind, source, column_stats, quantile_bins))
    categorical = tuple(
        CategoricalEncoding(name=f.name, levels=f.levels)
        for f in schema.categorical
        if f.name in inputs
    )
    return FeatureEncoder(
        kind=kind,
        source=source,
        schema_hash=schema.schema_hash(),
        numeric=tuple(numeric),
        categorical=categorical,
    )


def _fit_numeric(
    feature: NumericFeature,
    kind: EncodingKind,
    source: StatsSource,
    stats: NumericStats | None,
    quantile_bins: int,
) -> NumericEncoding:
    low, high = transform_values(np.array([feature.min, feature.max]), feature.transform)
    if source is StatsSource.PUBLIC or stats is None:
        if feature.bins is not None:
            edges = transform_values(np.asarray(feature.bins, dtype=np.float64), feature.transform)
        else:
            edges = np.linspace(low, high, quantile_bins + 1)[1:-1]
        mean, std = (low + high) / 2.0, (high - low) / 4.0
    else:
        edges = _quantile_edges(
            stats.histogram, grid_edges(feature, stats.histogram.size), quantile_bins
        )
        mean, std = stats.mean, stats.std if stats.std > 0 else 1.0
    if kind is EncodingKind.STANDARDIZED:
        edges = np.array([])
    else:
        mean, std = 0.0, 1.0  # unused by binned columns; keeps float sums out of the encoder
    return NumericEncoding(
        name=feature.name,
        transform=feature.transform,
        edges=tuple(float(e) for e in edges),
        mean=float(mean),
        std=float(std),
    )


def _quantile_edges(
    histogram: NDArray[np.float64], grid: NDArray[np.float64], quantile_bins: int
) -> NDArray[np.float64]:
    """Interior bin edges at the grid edges where the cumulative count crosses k/q."""
    cumulative = np.cumsum(histogram)
    total = cumulative[-1]
    if total == 0:
        return grid[1:-1][:: max(1, (grid.size - 2) // quantile_bins)]
    targets = total * np.arange(1, quantile_bins) / quantile_bins
    cells = np.searchsorted(cumulative, targets, side="left")
    edges: NDArray[np.float64] = np.unique(grid[cells + 1])
    interior: NDArray[np.float64] = edges[(edges > grid[0]) & (edges < grid[-1])]
    return interior

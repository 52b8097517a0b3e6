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

The bin layout
--------------
Every model input feature has bins, in this order (:meth:`FeatureEncoder.bin_indices`
gives each row's bin, :meth:`FeatureEncoder.bin_labels` their names):

1. regular bins: a numeric column's intervals from its interior edges (``len(edges) +
   1`` bins ``(-inf, e0), [e0, e1), ..., [e_last, inf)`` in transformed space; one bin
   for a standardised column, which has no edges); a categorical column's declared
   levels;
2. one bin per special code of a numeric column, in schema order;
3. one ``missing`` bin if the schema allows missing values in the column.

A binned encoding is the one-hot of this layout. A standardised numeric column is the
z-score of its regular values (0 for a special code or a missing value) followed by
one indicator per special code and a missing indicator.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from credit.feature_stats import (
    FeatureStats,
    NumericStats,
    grid_edges,
    raw_values,
    transform_values,
)
from credit.schema import DatasetSchema, NumericFeature, Transform

__all__ = [
    "MISSING_LABEL",
    "CategoricalEncoding",
    "EncodingKind",
    "FeatureEncoder",
    "NumericEncoding",
    "StatsSource",
    "fit_encoder",
]

Z_CLIP = 5.0
MISSING_LABEL = "missing"
"""The label of a missing bin (:meth:`FeatureEncoder.bin_labels`)."""


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


def _number_text(value: float) -> str:
    """A number at six significant digits without exponent: ``96``, ``2000000``, ``3.2``."""
    return np.format_float_positional(value, precision=6, unique=False, fractional=False, trim="-")


class NumericEncoding(_Frozen):
    """Encoding of one numeric column; ``edges`` and moments are in transformed space.

    ``special`` are the column's special codes (raw units, schema order) and
    ``missing`` whether the schema allows missing values in it: both add bins (module
    docstring), so every bank encodes them alike.
    """

    name: str
    transform: Transform
    edges: tuple[float, ...] = ()
    mean: float = 0.0
    std: float = 1.0
    special: tuple[float, ...] = ()
    missing: bool = False

    @property
    def regular_bins(self) -> int:
        """Number of regular bins: ``len(edges) + 1``."""
        return len(self.edges) + 1

    @property
    def width(self) -> int:
        """Number of bins, and of model inputs this column produces."""
        return self.regular_bins + len(self.special) + int(self.missing)

    def bins(self, raw: NDArray[np.float64]) -> NDArray[np.int64]:
        """Each raw value's bin in the layout (module docstring)."""
        missing = np.isnan(raw)
        if missing.any() and not self.missing:
            raise ValueError(
                f"column '{self.name}' has {int(missing.sum())} missing values but its "
                "encoding allows none (validate the frame against the run's schema)"
            )
        values = transform_values(np.where(missing, 0.0, raw), self.transform)
        index = np.searchsorted(np.asarray(self.edges), values, side="right").astype(np.int64)
        for offset, code in enumerate(self.special):
            index[raw == code] = self.regular_bins + offset
        index[missing] = self.regular_bins + len(self.special)
        return index

    def labels(self) -> tuple[str, ...]:
        """Readable bin labels in raw units: ``(-inf, 3.2)``, ``special 96``, ``missing``."""
        edges = [_number_text(e) for e in raw_values(np.asarray(self.edges), self.transform)]
        lower, upper = ["-inf", *edges], [*edges, "inf"]
        regular = [
            f"{'(' if low == '-inf' else '['}{low}, {high})"
            for low, high in zip(lower, upper, strict=True)
        ]
        special = [f"special {_number_text(code)}" for code in self.special]
        return (*regular, *special, *([MISSING_LABEL] if self.missing else []))

    def extra_names(self) -> list[str]:
        """Input names of the special and missing bins: ``AGE[special 96]``, ``AGE[missing]``."""
        return [f"{self.name}[{label}]" for label in self.labels()[self.regular_bins :]]


class CategoricalEncoding(_Frozen):
    """One-hot encoding over the declared levels, then a missing bin if allowed."""

    name: str
    levels: tuple[int, ...] | tuple[str, ...]
    missing: bool = False

    @property
    def width(self) -> int:
        """Number of bins, and of model inputs this column produces."""
        return len(self.levels) + int(self.missing)

    def bins(self, values: NDArray[np.generic]) -> NDArray[np.int64]:
        """Each value's bin: its level's position, ``len(levels)`` when missing."""
        index = np.full(values.size, -1, dtype=np.int64)
        for position, level in enumerate(self.levels):
            index[values == level] = position
        if self.missing:
            index[np.asarray(pd.isna(values))] = len(self.levels)
        unplaced = np.flatnonzero(index < 0)
        if unplaced.size:
            raise ValueError(
                f"column '{self.name}' holds {unplaced.size} values that are not declared "
                f"levels{'' if self.missing else ' or are missing'} (first: "
                f"'{values[unplaced[0]]}'; validate the frame against the run's schema)"
            )
        return index

    def labels(self) -> tuple[str, ...]:
        """Readable bin labels: the levels as text, then ``missing`` if allowed."""
        return (*(str(level) for level in self.levels), *([MISSING_LABEL] if self.missing else []))


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
    def features(self) -> tuple[str, ...]:
        """The model input features in encoding order: numeric, then categorical."""
        return tuple(e.name for e in self._encodings())

    def _encodings(self) -> tuple[NumericEncoding | CategoricalEncoding, ...]:
        return (*self.numeric, *self.categorical)

    @property
    def input_names(self) -> list[str]:
        """One readable name per encoded column.

        ``LIMIT_BAL[bin 3]`` (binned) or ``LIMIT_BAL`` (standardised) for regular
        values, ``PAY_0=2`` for a level, ``AGE[special 96]`` and ``AGE[missing]`` for the
        special-code and missing bins.
        """
        names: list[str] = []
        for numeric in self.numeric:
            if self.kind is EncodingKind.BINNED:
                names.extend(f"{numeric.name}[bin {i}]" for i in range(numeric.regular_bins))
            else:
                names.append(numeric.name)
            names.extend(numeric.extra_names())
        for categorical in self.categorical:
            names.extend(f"{categorical.name}={level}" for level in categorical.levels)
            if categorical.missing:
                names.append(f"{categorical.name}[{MISSING_LABEL}]")
        return names

    def bin_indices(self, frame: pd.DataFrame) -> dict[str, NDArray[np.int64]]:
        """Each row's bin in the layout (module docstring), per model input feature.

        Parameters
        ----------
        frame : pandas.DataFrame
            Validated rows (:func:`credit.loading.load_bank_csv`).

        Returns
        -------
        dict of str to numpy.ndarray of int64
            Keyed by feature in :attr:`features` order; values in ``[0, width)``.

        Raises
        ------
        ValueError
            A value the encoding has no bin for (a missing value where the schema
            refuses them, an undeclared level): the frame was not validated.
        """
        indices = {e.name: e.bins(frame[e.name].to_numpy(dtype=np.float64)) for e in self.numeric}
        indices.update({e.name: e.bins(frame[e.name].to_numpy()) for e in self.categorical})
        return indices

    def bin_labels(self, name: str) -> tuple[str, ...]:
        """Readable labels of the feature's bins, in layout order.

        Regular numeric bins read as intervals in raw units (``(-inf, 3.2)``,
        ``[3.2, 7)``, ``[7, inf)``; six significant digits), categorical ones as the
        level; then ``special 96`` per special code and ``missing``.

        Raises
        ------
        KeyError
            ``name`` is not a model input feature.
        """
        for encoding in self._encodings():
            if encoding.name == name:
                return encoding.labels()
        raise KeyError(f"'{name}' is not a model input feature of this encoder")

    def transform(self, frame: pd.DataFrame) -> NDArray[np.float32]:
        """Encode validated rows into a dense ``(n_rows, n_inputs)`` float32 matrix."""
        bins = self.bin_indices(frame)
        blocks = [self._numeric_block(frame, e, bins[e.name]) for e in self.numeric]
        blocks += [_one_hot(bins[e.name], e.width) for e in self.categorical]
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)

    def _numeric_block(
        self, frame: pd.DataFrame, encoding: NumericEncoding, bins: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        one_hot = _one_hot(bins, encoding.width)
        if self.kind is EncodingKind.BINNED:
            return one_hot
        raw = frame[encoding.name].to_numpy(dtype=np.float64)
        regular = bins < encoding.regular_bins
        values = transform_values(np.where(regular, raw, 0.0), encoding.transform)
        z = np.clip((values - encoding.mean) / encoding.std, -Z_CLIP, Z_CLIP)
        z[~regular] = 0.0
        return np.hstack([z.astype(np.float32).reshape(-1, 1), one_hot[:, encoding.regular_bins :]])


def _one_hot(bins: NDArray[np.int64], width: int) -> NDArray[np.float32]:
    block = np.zeros((bins.size, width), dtype=np.float32)
    block[np.arange(bins.size), bins] = 1.0
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
        CategoricalEncoding(name=f.name, levels=f.levels, missing=f.allows_missing)
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
        special=feature.special,
        missing=feature.allows_missing,
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

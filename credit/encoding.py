"""Feature encoders: how a validated frame becomes the model's input matrix.

Three encodings:

============  ===========================================  ==========================
kind          numeric columns                              categorical columns
============  ===========================================  ==========================
binned        one-hot of quantile (or public) bins         one-hot of declared levels
standardized  z-score of the transformed value, clipped    one-hot of declared levels
woe           the weight of evidence of the row's bin      the WoE of the row's level
============  ===========================================  ==========================

``federated`` fits bins and moments from :class:`~credit.feature_stats.FeatureStats`
combined across banks; ``public`` uses only the schema's bounds and declared bins, so
it costs no privacy budget. A ``woe`` encoder is fitted by :mod:`credit.woe_binning`
from the banks' summed per-class counts (federated statistics only): one input per
feature, the WoE of the row's (merged) bin, special-code and missing bins included.
The encoder is a frozen, JSON-serialisable object: it travels to banks in the round
configuration and into the model card.

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
one indicator per special code and a missing indicator. A WoE encoding is one input
per feature: ``woe[bin]``, one value per bin of the layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Self

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, model_validator

from credit.feature_stats import (
    FeatureStats,
    NumericStats,
    grid_edges,
    level_cells,
    raw_values,
    transform_values,
)
from credit.schema import DatasetSchema, NumericFeature, Transform

__all__ = [
    "MAX_ABS_WOE",
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
MAX_ABS_WOE = 100.0
"""Largest WoE magnitude an encoder may carry.

A WoE from counts is ``ln((N_i / N) / (E_i / E))`` with every count at least 1 where it
is not 0, so ``|WoE| <= ln(N * E) <= 2 ln(rows)``: below 42 for a billion rows. A bank
refuses an encoder beyond this bound (not finite, or large enough to overflow float32
arithmetic in training) as malformed."""


class EncodingKind(StrEnum):
    """How numeric columns are encoded (and categorical ones, for ``woe``)."""

    BINNED = "binned"
    STANDARDIZED = "standardized"
    WOE = "woe"


class StatsSource(StrEnum):
    """Where encoder parameters come from."""

    FEDERATED = "federated"
    PUBLIC = "public"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _checked_woe(name: str, woe: tuple[float, ...], width: int) -> tuple[float, ...]:
    """``woe`` if it is empty or one finite value per bin within :data:`MAX_ABS_WOE`."""
    if woe and len(woe) != width:
        raise ValueError(f"column '{name}': woe needs one value per bin ({width}); got {len(woe)}")
    values = np.asarray(woe, dtype=np.float64)
    if not np.all(np.isfinite(values) & (np.abs(values) <= MAX_ABS_WOE)):
        raise ValueError(
            f"column '{name}': every woe value must be finite and within ±{MAX_ABS_WOE:g}; "
            f"got {list(woe)}"
        )
    return woe


def _number_text(value: float) -> str:
    """A number at six significant digits without exponent: ``96``, ``2000000``, ``3.2``."""
    return np.format_float_positional(value, precision=6, unique=False, fractional=False, trim="-")


class NumericEncoding(_Frozen):
    """Encoding of one numeric column; ``edges`` and moments are in transformed space.

    ``special`` are the column's special codes (raw units, schema order) and
    ``missing`` whether the schema allows missing values in it: both add bins (module
    docstring), so every bank encodes them alike. ``woe`` (a ``woe`` encoder only)
    holds one weight of evidence per bin, in layout order.
    """

    name: str
    transform: Transform
    edges: tuple[float, ...] = ()
    mean: float = 0.0
    std: float = 1.0
    special: tuple[float, ...] = ()
    missing: bool = False
    woe: tuple[float, ...] = ()

    @model_validator(mode="after")
    def _woe_per_bin(self) -> Self:
        _checked_woe(self.name, self.woe, self.width)
        return self

    @property
    def regular_bins(self) -> int:
        """Number of regular bins: ``len(edges) + 1``."""
        return len(self.edges) + 1

    @property
    def width(self) -> int:
        """Number of bins (the model inputs of a binned column)."""
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

    def z_scores(self, raw: NDArray[np.float64], bins: NDArray[np.int64]) -> NDArray[np.float32]:
        """A standardised column's input: the clipped z-score of each regular value, 0 else.

        ``bins``: the values' :meth:`bins`.
        """
        regular = bins < self.regular_bins
        values = transform_values(np.where(regular, raw, 0.0), self.transform)
        z = np.clip((values - self.mean) / self.std, -Z_CLIP, Z_CLIP)
        z[~regular] = 0.0
        return z.astype(np.float32)

    def edge_labels(self) -> tuple[str, ...]:
        """The interior edges in raw units, six significant digits: ``3.2``, ``2000000``."""
        raw = raw_values(np.asarray(self.edges, dtype=np.float64), self.transform)
        return tuple(_number_text(edge) for edge in raw)

    def labels(self) -> tuple[str, ...]:
        """Readable bin labels in raw units: ``(-inf, 3.2)``, ``special 96``, ``missing``."""
        edges = list(self.edge_labels())
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
    """One-hot encoding over the declared levels, then a missing bin if allowed.

    ``woe`` (a ``woe`` encoder only) holds one weight of evidence per bin.
    """

    name: str
    levels: tuple[int, ...] | tuple[str, ...]
    missing: bool = False
    woe: tuple[float, ...] = ()

    @model_validator(mode="after")
    def _woe_per_bin(self) -> Self:
        _checked_woe(self.name, self.woe, self.width)
        return self

    @property
    def width(self) -> int:
        """Number of bins (the model inputs of a one-hot column)."""
        return len(self.levels) + int(self.missing)

    def bins(self, values: NDArray[np.generic]) -> NDArray[np.int64]:
        """Each value's bin: its level's position, ``len(levels)`` when missing."""
        return level_cells(values, name=self.name, levels=self.levels, allows_missing=self.missing)

    def labels(self) -> tuple[str, ...]:
        """Readable bin labels: the levels as text, then ``missing`` if allowed."""
        return (*(str(level) for level in self.levels), *([MISSING_LABEL] if self.missing else []))


class FeatureEncoder(_Frozen):
    """A fitted encoder from validated frame to float32 input matrix.

    A ``woe`` encoder carries WoE values on every column, and only a ``woe`` encoder
    does (a bank refuses any other encoder as malformed).
    """

    kind: EncodingKind
    source: StatsSource
    schema_hash: str
    numeric: tuple[NumericEncoding, ...]
    categorical: tuple[CategoricalEncoding, ...]

    @model_validator(mode="after")
    def _woe_on_every_column(self) -> Self:
        woe = self.kind is EncodingKind.WOE
        wrong = [e.name for e in self._encodings() if bool(e.woe) != woe]
        if wrong:
            need = "needs woe values on" if woe else "carries woe values only with kind 'woe':"
            raise ValueError(f"a '{self.kind}' encoder {need} column(s) {', '.join(wrong)}")
        return self

    @property
    def n_inputs(self) -> int:
        """Width of the encoded matrix."""
        if self.kind is EncodingKind.WOE:
            return len(self.numeric) + len(self.categorical)
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
        special-code and missing bins; a WoE encoder's inputs are ``LIMIT_BAL[woe]``.
        """
        if self.kind is EncodingKind.WOE:
            return [f"{name}[woe]" for name in self.features]
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

    def transform(
        self, frame: pd.DataFrame, *, bins: Mapping[str, NDArray[np.int64]] | None = None
    ) -> NDArray[np.float32]:
        """Encode validated rows into a dense ``(n_rows, n_inputs)`` float32 matrix.

        ``bins``: the rows' :meth:`bin_indices`, when the caller has them already.
        """
        if bins is None:
            bins = self.bin_indices(frame)
        if self.kind is EncodingKind.WOE:
            columns = [np.asarray(e.woe, dtype=np.float32)[bins[e.name]] for e in self._encodings()]
            return np.ascontiguousarray(np.column_stack(columns), dtype=np.float32)
        blocks = [self._numeric_block(frame, e, bins[e.name]) for e in self.numeric]
        blocks += [_one_hot(bins[e.name], e.width) for e in self.categorical]
        return np.ascontiguousarray(np.hstack(blocks), dtype=np.float32)

    def _numeric_block(
        self, frame: pd.DataFrame, encoding: NumericEncoding, bins: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        one_hot = _one_hot(bins, encoding.width)
        if self.kind is EncodingKind.BINNED:
            return one_hot
        z = encoding.z_scores(frame[encoding.name].to_numpy(dtype=np.float64), bins)
        return np.hstack([z.reshape(-1, 1), one_hot[:, encoding.regular_bins :]])


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
        Binned one-hot or standardised numeric columns (a ``woe`` encoder is fitted
        from per-class counts: :func:`credit.woe_binning.fit_woe_encoder`).
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
        ``stats`` missing for a federated fit, ``quantile_bins < 2``, or kind ``woe``.
    """
    if kind is EncodingKind.WOE:
        raise ValueError(
            "a woe encoder is fitted from summed per-class counts: "
            "use credit.woe_binning.fit_woe_encoder"
        )
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

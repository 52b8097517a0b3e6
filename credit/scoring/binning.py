"""Applicant rows as one array per model input, and each row's bin, at a small per-call cost.

:meth:`credit.encoding.FeatureEncoder.bin_indices` bins a frame column by column; a
scoring service that scores one applicant at a time pays its per-column overhead
(pandas column access, a comparison per categorical level) on every request.
:class:`FeatureBinner` precomputes what depends on the encoder alone and bins every
numeric column in one pass; it gives exactly the encoder's bins (a test pins it):

* numeric: the count of interior edges at or below the transformed value (what
  ``searchsorted(edges, value, side="right")`` gives for sorted edges), then the
  special-code bins and the missing bin;
* categorical: the level's position, the missing bin for a missing value, looked up
  in a dictionary for a few rows and compared level by level for many.

A value the encoder has no bin for (a missing value where the schema refuses them, an
undeclared level) raises the encoder's own :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from credit.encoding import EncodingKind, FeatureEncoder
from credit.feature_cells import transform_values

__all__ = ["LOOKUP_ROWS", "Columns", "FeatureBinner", "bin_inputs"]

LOOKUP_ROWS = 64
"""Up to this many rows a categorical column is binned by dictionary lookup."""

Columns = Mapping[str, NDArray[Any]]
"""One array per model input feature (numeric: float64; categorical: the levels' type)."""


class FeatureBinner:
    """Bins rows of a fitted encoder's features (module docstring).

    Parameters
    ----------
    encoder : FeatureEncoder
        The package's encoder; its numeric edges must be sorted (a fitted encoder's are).

    Raises
    ------
    ValueError
        A numeric column's edges are not sorted.
    """

    def __init__(self, encoder: FeatureEncoder) -> None:
        self._encoder = encoder
        self.features = encoder.features
        numeric = encoder.numeric
        width = max((len(e.edges) for e in numeric), default=0)
        self._edges = np.full((len(numeric), 1, width), np.nan)  # NaN pads: never <= a value
        for k, encoding in enumerate(numeric):
            edges = np.asarray(encoding.edges, dtype=np.float64)
            if np.any(np.diff(edges) < 0):
                raise ValueError(f"column '{encoding.name}': the encoder's edges are not sorted")
            self._edges[k, 0, : edges.size] = edges
        self._transforms = [encoding.transform for encoding in numeric]
        self._special = [k for k, encoding in enumerate(numeric) if encoding.special]
        self._lookups = [
            {level: position for position, level in enumerate(encoding.levels)}
            for encoding in encoder.categorical
        ]

    def columns(self, rows: pd.DataFrame | Mapping[str, ArrayLike]) -> dict[str, NDArray[Any]]:
        """The model inputs of ``rows`` (a validated frame, or one array per column)."""
        if isinstance(rows, pd.DataFrame):
            return {name: rows[name].to_numpy() for name in self.features}
        return {name: np.asarray(rows[name]) for name in self.features}

    def bins(self, columns: Columns) -> dict[str, NDArray[np.int64]]:
        """Each row's bin per model input feature, in the encoder's feature order."""
        found = self._numeric_bins(columns)
        for encoding, lookup in zip(self._encoder.categorical, self._lookups, strict=True):
            values = columns[encoding.name]
            if values.size > LOOKUP_ROWS:
                found[encoding.name] = encoding.bins(values)
                continue
            index = np.array([lookup.get(value, -1) for value in values.tolist()], np.int64)
            if encoding.missing:
                index[np.asarray(pd.isna(values))] = len(encoding.levels)
            if np.any(index < 0):
                encoding.bins(values)  # raises the encoder's error naming the value
            found[encoding.name] = index
        return found

    def z_scores(
        self, columns: Columns, bins: Mapping[str, NDArray[np.int64]]
    ) -> dict[str, NDArray[np.float32]]:
        """A standardised encoder's z-score inputs per numeric feature (else empty)."""
        if self._encoder.kind is not EncodingKind.STANDARDIZED:
            return {}
        return {
            e.name: e.z_scores(np.asarray(columns[e.name], dtype=np.float64), bins[e.name])
            for e in self._encoder.numeric
        }

    def _numeric_bins(self, columns: Columns) -> dict[str, NDArray[np.int64]]:
        numeric = self._encoder.numeric
        if not numeric:
            return {}
        raw = np.stack([np.asarray(columns[e.name], dtype=np.float64) for e in numeric])
        missing = np.isnan(raw)
        values = np.where(missing, 0.0, raw)
        for k, transform in enumerate(self._transforms):
            values[k] = transform_values(values[k], transform)
        index = np.count_nonzero(self._edges <= values[:, :, np.newaxis], axis=2).astype(np.int64)
        for k in self._special:
            encoding = numeric[k]
            for offset, code in enumerate(encoding.special):
                index[k, raw[k] == code] = encoding.regular_bins + offset
        for k in np.flatnonzero(missing.any(axis=1)).tolist():
            encoding = numeric[k]
            if not encoding.missing:
                encoding.bins(raw[k])  # raises the encoder's error
            index[k, missing[k]] = encoding.regular_bins + len(encoding.special)
        return {encoding.name: index[k] for k, encoding in enumerate(numeric)}


def bin_inputs(encoder: FeatureEncoder) -> tuple[NDArray[np.float64], ...]:
    """Per feature (encoder order), the encoded block a value in each bin gets: (bins, width).

    Each row is what :meth:`~credit.encoding.FeatureEncoder.transform` writes (its
    float32 values as float64): a one-hot row, or the bin's WoE; a standardised
    column's regular bin has its z-score column left 0 (it depends on the value:
    :meth:`FeatureBinner.z_scores`).
    """
    blocks: list[NDArray[np.float64]] = []
    for numeric in encoder.numeric:
        if encoder.kind is EncodingKind.WOE:
            blocks.append(_as_input(numeric.woe).reshape(-1, 1))
        elif encoder.kind is EncodingKind.BINNED:
            blocks.append(np.eye(numeric.width))
        else:  # z-score column, then an indicator per special code and missing
            block = np.zeros((numeric.width, numeric.width - numeric.regular_bins + 1))
            block[numeric.regular_bins :, 1:] = np.eye(numeric.width - numeric.regular_bins)
            blocks.append(block)
    for categorical in encoder.categorical:
        if encoder.kind is EncodingKind.WOE:
            blocks.append(_as_input(categorical.woe).reshape(-1, 1))
        else:
            blocks.append(np.eye(categorical.width))
    return tuple(blocks)


def _as_input(values: tuple[float, ...]) -> NDArray[np.float64]:
    """Values as the encoded float32 matrix holds them, in float64."""
    return np.asarray(values, dtype=np.float32).astype(np.float64)

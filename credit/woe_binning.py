"""WoE/IV tables, the WoE encoder and the scorecard from the summed set-up release.

The set-up release (:mod:`credit.feature_stats`) carries each model input's counts
per class over its cells: a numeric input's grid cells, special codes and missing
cell, a categorical input's levels and missing cell. The coordinator sums the banks'
releases and, with no further exchange:

1. gets each feature's per-bin (events, non-events) on an encoder's bin layout
   (:func:`bin_counts`): a numeric bin's counts are the sums of the grid cells it
   covers, which is exact because the encoder's quantile edges are grid edges (checked:
   an edge off the grid is refused); special-code, missing and categorical bins are
   cells as they are;
2. settles noisy sums once per bin (:func:`credit.governance.woe.settle_counts`: the
   cells of a bin are summed before rounding and clipping, so the noise of empty cells
   cancels instead of adding up) and computes the WoE/IV tables (:func:`woe_tables`);
3. for ``--encoding woe``, merges each numeric input's adjacent regular bins
   (:func:`credit.governance.merging.merge_bins`, trend ``auto``, minimum bin share
   :data:`DEFAULT_MIN_BIN_SHARE`; special and missing bins stay apart, categorical
   levels are never merged) and fits the encoder whose input is the WoE of the row's
   bin (:func:`fit_woe_encoder`);
4. at the end of a run, turns the final logistic regression on WoE inputs into a
   scorecard (:func:`scorecard_of`).

Without DP noise the tables equal a pooled computation on the banks' training rows for
the same edges, to floating-point precision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from credit.encoding import (
    CategoricalEncoding,
    EncodingKind,
    FeatureEncoder,
    NumericEncoding,
)
from credit.feature_stats import ClassCells, FeatureStats, grid_edges
from credit.governance.bins import BinKind, BinLayout
from credit.governance.merging import MonotonicTrend, merge_bins
from credit.governance.scorecard import Scorecard, ScoreScaling, build_scorecard
from credit.governance.woe import BinCounts, WoeTable, settle_counts, woe_table
from credit.schema import DatasetSchema

__all__ = [
    "DEFAULT_MIN_BIN_SHARE",
    "WoeFit",
    "bin_counts",
    "fit_woe_encoder",
    "layout_of",
    "reported_woe_tables",
    "scorecard_of",
    "tables_from_document",
    "woe_iv_document",
    "woe_tables",
]

DEFAULT_MIN_BIN_SHARE = 0.05
"""Smallest share of a feature's rows a merged regular bin holds (5 %, the usual floor)."""


def layout_of(encoding: NumericEncoding | CategoricalEncoding) -> BinLayout:
    """A feature's bin layout with the encoder's own labels (and a numeric one's edges)."""
    labels = encoding.labels()
    if isinstance(encoding, CategoricalEncoding):
        return BinLayout.categorical(encoding.name, encoding.levels, has_missing=encoding.missing)
    regular = encoding.regular_bins
    return BinLayout(
        feature=encoding.name,
        regular_labels=labels[:regular],
        special_labels=labels[regular : regular + len(encoding.special)],
        has_missing=encoding.missing,
        edges=encoding.edges,
        edge_labels=encoding.edge_labels(),
    )


def bin_counts(
    stats: FeatureStats, encoder: FeatureEncoder, schema: DatasetSchema
) -> dict[str, BinCounts]:
    """Every model input's (events, non-events) per bin of ``encoder``'s layout.

    Parameters
    ----------
    stats : FeatureStats
        The banks' summed statistics, exact or noisy (not settled: settle per bin).
    encoder : FeatureEncoder
        A binned (or WoE) encoder fitted from ``stats``; its numeric edges must be
        edges of ``stats``' grid.
    schema : DatasetSchema
        The run's schema (its bounds give the grid).

    Raises
    ------
    ValueError
        An edge that is not a grid edge (the message names the feature), or cells
        that do not match the encoder's bins.
    """
    by_name = {feature.name: feature for feature in schema.numeric}
    counts = {}
    for numeric in encoder.numeric:
        grid = grid_edges(by_name[numeric.name], stats.grid_bins)
        cells = _numeric_bins(stats.numeric[numeric.name].cells, numeric, grid)
        counts[numeric.name] = _counts(cells, layout_of(numeric))
    for categorical in encoder.categorical:
        counts[categorical.name] = _counts(
            stats.categorical[categorical.name], layout_of(categorical)
        )
    return counts


def _numeric_bins(
    cells: ClassCells, encoding: NumericEncoding, grid: NDArray[np.float64]
) -> ClassCells:
    """The grid cells of each regular bin summed; special and missing cells kept."""
    edges = np.asarray(encoding.edges, dtype=np.float64)
    positions = np.searchsorted(grid, edges)
    inside = (positions > 0) & (positions < grid.size - 1)
    if not (np.all(inside) and np.array_equal(grid[np.clip(positions, 0, grid.size - 1)], edges)):
        raise ValueError(
            f"feature '{encoding.name}': the encoder's edges {edges.tolist()} are not all "
            f"interior edges of the {grid.size - 1}-cell grid, so its bins' counts cannot "
            "be summed from the grid cells"
        )
    starts = np.concatenate([[0], positions]).astype(np.int64)
    regular = cells.regular

    def per_bin(values: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.concatenate([np.add.reduceat(values[:regular], starts), values[regular:]])

    return ClassCells(
        events=per_bin(cells.events), non_events=per_bin(cells.non_events), regular=starts.size
    )


def _counts(cells: ClassCells, layout: BinLayout) -> BinCounts:
    if cells.events.size != layout.n_bins:
        raise ValueError(
            f"feature '{layout.feature}': {cells.events.size} cells for {layout.n_bins} bins"
        )
    return BinCounts(layout=layout, events=cells.events, non_events=cells.non_events)


def woe_tables(counts: Mapping[str, BinCounts]) -> dict[str, WoeTable]:
    """Each feature's WoE/IV table from its summed counts, settled once per bin."""
    return {name: woe_table(settle_counts(part)) for name, part in counts.items()}


def reported_woe_tables(counts: Mapping[str, BinCounts]) -> dict[str, WoeTable]:
    """:func:`woe_tables` for the report: a feature whose settled counts hold no event or
    no non-event (DP noise clipped at zero can leave one class empty) has no table.

    A run whose encoder does not need WoE values only reports them; it must not fail
    because the noise emptied one class of one feature.
    """
    tables = {}
    for name, part in counts.items():
        settled = settle_counts(part)
        if float(np.sum(settled.events)) > 0 and float(np.sum(settled.non_events)) > 0:
            tables[name] = woe_table(settled)
    return tables


@dataclass(frozen=True, eq=False)  # holds tables: compared by identity
class WoeFit:
    """A WoE encoder and the tables of its bins.

    Attributes
    ----------
    encoder : FeatureEncoder
        Kind ``woe``: each numeric input's merged bins, each categorical input's
        levels, every bin's WoE rounded to float32 (what the model sees).
    tables : dict of str to WoeTable
        Each feature's WoE/IV table on the encoder's bins (unrounded WoE).
    """

    encoder: FeatureEncoder
    tables: dict[str, WoeTable]


def fit_woe_encoder(
    binned: FeatureEncoder,
    tables: Mapping[str, WoeTable],
    *,
    trend: MonotonicTrend = MonotonicTrend.AUTO,
    min_bin_share: float = DEFAULT_MIN_BIN_SHARE,
) -> WoeFit:
    """The WoE encoder: numeric bins merged on the summed counts, every bin's WoE.

    Parameters
    ----------
    binned : FeatureEncoder
        The binned encoder fitted from the same statistics (its edges are merged).
    tables : mapping of str to WoeTable
        Its tables (:func:`woe_tables`), settled counts on its bins.
    trend : MonotonicTrend, default ``auto``
        Event-rate trend enforced over each numeric input's regular bins.
    min_bin_share : float, default :data:`DEFAULT_MIN_BIN_SHARE`
        Smallest share of a feature's rows a regular bin holds after merging.
    """
    numeric, fitted = [], {}
    for encoding in binned.numeric:
        merged = merge_bins(tables[encoding.name].counts, trend=trend, min_bin_share=min_bin_share)
        fitted[encoding.name] = merged.table
        numeric.append(
            encoding.model_copy(update={"edges": merged.edges, "woe": _float32(merged.table)})
        )
    categorical = []
    for level_encoding in binned.categorical:
        fitted[level_encoding.name] = tables[level_encoding.name]
        categorical.append(
            level_encoding.model_copy(update={"woe": _float32(tables[level_encoding.name])})
        )
    encoder = FeatureEncoder(
        kind=EncodingKind.WOE,
        source=binned.source,
        schema_hash=binned.schema_hash,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
    )
    return WoeFit(encoder=encoder, tables=fitted)


def _float32(table: WoeTable) -> tuple[float, ...]:
    """The table's WoE as the model's float32 inputs hold them."""
    return tuple(float(value) for value in table.woe.astype(np.float32))


def woe_iv_document(tables: Mapping[str, WoeTable]) -> dict[str, dict[str, object]]:
    """``metrics.json``'s ``woe_iv``: ``{feature: {"iv": float, "bins": [...]}}``."""
    return {name: table.to_dict() for name, table in tables.items()}


def tables_from_document(document: Mapping[str, Mapping[str, object]]) -> dict[str, WoeTable]:
    """Tables back from :func:`woe_iv_document` (bins, kinds and counts; edges not kept).

    Raises
    ------
    ValueError, KeyError, TypeError
        A document that is not a ``woe_iv`` section.
    """
    tables = {}
    for name, table in document.items():
        bins = table["bins"]
        if not isinstance(bins, list):
            raise TypeError(f"woe_iv '{name}': bins must be a list")
        kinds = [BinKind(row["kind"]) for row in bins]
        labels = [str(row["bin"]) for row in bins]
        pairs = list(zip(labels, kinds, strict=True))
        layout = BinLayout(
            feature=name,
            regular_labels=tuple(label for label, kind in pairs if kind is BinKind.REGULAR),
            special_labels=tuple(label for label, kind in pairs if kind is BinKind.SPECIAL),
            has_missing=BinKind.MISSING in kinds,
        )
        counts = BinCounts(
            layout=layout,
            events=np.array([row["events"] for row in bins], dtype=np.float64),
            non_events=np.array([row["non_events"] for row in bins], dtype=np.float64),
        )
        tables[name] = woe_table(counts)
    return tables


def scorecard_of(
    encoder: FeatureEncoder,
    tables: Mapping[str, WoeTable],
    *,
    weights: NDArray[np.floating],
    bias: float,
    scaling: ScoreScaling,
) -> Scorecard:
    """The scorecard of a logistic regression on ``encoder``'s WoE inputs.

    Each characteristic's WoE is the encoder's (float32, what the model saw), so an
    applicant's unrounded score is exactly the model's log-odds, rescaled.

    Parameters
    ----------
    encoder : FeatureEncoder
        The run's ``woe`` encoder.
    tables : mapping of str to WoeTable
        The tables of its bins (labels and counts).
    weights : numpy.ndarray
        The model's coefficients, one per input (``encoder.features`` order).
    bias : float
        The model's intercept.
    scaling : ScoreScaling
        PDO, base score and base odds.

    Raises
    ------
    ValueError
        Not a ``woe`` encoder, or a coefficient per input missing.
    """
    if encoder.kind is not EncodingKind.WOE:
        raise ValueError(f"a scorecard needs a woe encoder; got '{encoder.kind}'")
    coefficients = np.asarray(weights, dtype=np.float64).reshape(-1)
    features = encoder.features
    if coefficients.size != len(features):
        raise ValueError(
            f"the model has {coefficients.size} coefficients for {len(features)} WoE inputs"
        )
    woe = {e.name: e.woe for e in encoder.numeric} | {e.name: e.woe for e in encoder.categorical}
    characteristics = []
    for name in features:
        table = tables[name]
        seen = np.asarray(woe[name], dtype=np.float64)
        if seen.shape != table.woe.shape:
            raise ValueError(f"feature '{name}': the table's bins are not the encoder's")
        characteristics.append(
            WoeTable(
                counts=table.counts,
                event_rate=table.event_rate,
                woe=seen,
                iv_contribution=table.iv_contribution,
            )
        )
    return build_scorecard(
        characteristics,
        coefficients=dict(zip(features, coefficients.tolist(), strict=True)),
        intercept=float(bias),
        scaling=scaling,
    )

"""Merging adjacent regular bins of summed WoE counts: monotonic trend and minimum share.

The coordinator holds only the consortium's summed (and settled) per-bin counts, so
every rule here works on counts alone and is deterministic: the same counts give the
same bins at every run. Only adjacent **regular** bins of a numeric feature merge;
special-code and missing bins stay apart (as in optbinning), and a categorical
feature's levels, which have no order, are never merged.

The rules run in this order:

1. **Minimum bin share.** While the smallest regular bin (ties: the leftmost) holds
   fewer than ``min_bin_share`` of all the feature's rows (special and missing bins
   included, as optbinning's ``min_bin_size``) and more than one regular bin is left,
   it merges with the neighbour whose event rate is closest to its own (an empty bin
   is at distance 0 from anything; ties: the left neighbour).
2. **Monotonic trend** of the event rate over the regular bins, by pooling adjacent
   violators (PAV; Barlow et al. 1972, *Statistical Inference under Order
   Restrictions*): bins are added left to right and, while the last two bins break
   the trend, they merge. ``ascending`` leaves strictly increasing event rates
   (decreasing WoE), ``descending`` strictly decreasing ones; ties merge, and an
   empty bin merges with its neighbour. The merged rates are the isotonic
   regression of the bins' rates weighted by their counts. Merging two bins of a
   strictly monotonic sequence keeps it so, and merged bins only grow, so the
   result satisfies both rules.
3. ``auto`` runs step 2 both ways and keeps the direction whose merged table has
   the larger total IV (ties, which happen only when one regular bin is left:
   ``ascending``). ``none`` skips step 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray

from credit.errors import ConfigError
from credit.governance.bins import BinLayout, interval_labels
from credit.governance.woe import BinCounts, WoeTable, check_settled, woe_table

__all__ = ["MergedBins", "MonotonicTrend", "merge_bins"]


class MonotonicTrend(StrEnum):
    """The trend the event rate must follow over a feature's regular bins."""

    ASCENDING = "ascending"
    DESCENDING = "descending"
    AUTO = "auto"
    NONE = "none"


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class MergedBins:
    """The outcome of :func:`merge_bins`.

    Attributes
    ----------
    trend : MonotonicTrend
        The trend applied: ``ascending``, ``descending`` or ``none`` (what ``auto``
        chose, for ``auto``).
    counts : BinCounts
        The merged counts; their layout has the kept edges and new labels.
    table : WoeTable
        The WoE/IV table of the merged counts.
    bin_map : numpy.ndarray of int64
        For each bin of the input layout, its bin in the merged layout.
    kept_edges : numpy.ndarray of int64
        Positions, in the input layout's edges, of the edges kept.
    """

    trend: MonotonicTrend
    counts: BinCounts
    table: WoeTable
    bin_map: NDArray[np.int64]
    kept_edges: NDArray[np.int64]

    @property
    def layout(self) -> BinLayout:
        """The merged layout."""
        return self.counts.layout

    @property
    def edges(self) -> tuple[float, ...]:
        """The merged interior edges (a subset of the input edges)."""
        return self.layout.edges or ()

    @property
    def labels(self) -> tuple[str, ...]:
        """Every merged bin's label, in layout order."""
        return self.layout.labels


@dataclass
class _Run:
    """Consecutive regular bins being merged: where they start and what they hold."""

    start: int
    events: float
    rows: float


def merge_bins(
    counts: BinCounts,
    *,
    trend: MonotonicTrend = MonotonicTrend.NONE,
    min_bin_share: float = 0.0,
) -> MergedBins:
    """Merge a numeric feature's adjacent regular bins (rules in the module docstring).

    Parameters
    ----------
    counts : BinCounts
        The consortium's summed counts, settled if noisy (finite, >= 0).
    trend : MonotonicTrend, default ``none``
        The event-rate trend to enforce over the regular bins.
    min_bin_share : float, default 0
        Smallest share of the feature's rows a regular bin may hold, in [0, 1);
        0 turns the rule off.

    Returns
    -------
    MergedBins
        Merged counts, their table, the kept edges and the map from old to new bins.

    Raises
    ------
    ConfigError
        ``min_bin_share`` outside [0, 1), or merging asked of a categorical feature.
    ValueError
        Counts are negative or not finite, or have no event or no non-event.
    """
    trend = MonotonicTrend(trend)
    layout = counts.layout
    if not (math.isfinite(min_bin_share) and 0.0 <= min_bin_share < 1.0):
        raise ConfigError(f"min_bin_share must be in [0, 1); got {min_bin_share}")
    if layout.edges is None and (trend is not MonotonicTrend.NONE or min_bin_share > 0):
        raise ConfigError(
            f"feature '{layout.feature}' is categorical: its levels have no order, so its "
            f"bins are not merged; use trend 'none' and min_bin_share 0 for it"
        )
    check_settled(counts)
    n_regular = layout.n_regular
    events = counts.events[:n_regular]
    rows = counts.counts[:n_regular]
    starts = _merge_small(events, rows, min_bin_share * float(counts.counts.sum()))
    if trend is MonotonicTrend.NONE:
        return _merged(counts, starts, trend)
    if trend is not MonotonicTrend.AUTO:
        ascending = trend is MonotonicTrend.ASCENDING
        return _merged(counts, _pool_violators(events, rows, starts, ascending), trend)
    rising = _merged(counts, _pool_violators(events, rows, starts, True), MonotonicTrend.ASCENDING)
    falling = _merged(
        counts, _pool_violators(events, rows, starts, False), MonotonicTrend.DESCENDING
    )
    return rising if rising.table.iv >= falling.table.iv else falling


def _runs(events: NDArray[np.float64], rows: NDArray[np.float64], starts: list[int]) -> list[_Run]:
    bounds = np.asarray(starts, dtype=np.int64)
    run_events = np.add.reduceat(events, bounds)
    run_rows = np.add.reduceat(rows, bounds)
    return [
        _Run(start, float(e), float(r))
        for start, e, r in zip(starts, run_events, run_rows, strict=True)
    ]


def _merge_small(
    events: NDArray[np.float64], rows: NDArray[np.float64], min_rows: float
) -> list[int]:
    """Start positions of the runs left once no run holds fewer than ``min_rows``."""
    starts = list(range(rows.size))
    while len(starts) > 1:
        runs = _runs(events, rows, starts)
        smallest = int(np.argmin([run.rows for run in runs]))  # first minimum: leftmost
        if runs[smallest].rows >= min_rows:
            break
        neighbour = _closest_neighbour(runs, smallest)
        del starts[max(smallest, neighbour)]
    return starts


def _closest_neighbour(runs: list[_Run], index: int) -> int:
    """The adjacent run whose event rate is closest to run ``index``'s (ties: left)."""
    if index == 0:
        return 1
    if index == len(runs) - 1:
        return index - 1
    left = _rate_distance(runs[index], runs[index - 1])
    right = _rate_distance(runs[index], runs[index + 1])
    return index - 1 if left <= right else index + 1


def _rate_distance(first: _Run, second: _Run) -> float:
    if first.rows == 0 or second.rows == 0:
        return 0.0
    return abs(first.events / first.rows - second.events / second.rows)


def _pool_violators(
    events: NDArray[np.float64], rows: NDArray[np.float64], starts: list[int], ascending: bool
) -> list[int]:
    """Start positions of the runs left once event rates strictly follow the trend."""
    pooled: list[_Run] = []
    for run in _runs(events, rows, starts):
        pooled.append(run)
        while len(pooled) > 1 and _breaks_trend(pooled[-2], pooled[-1], ascending):
            last = pooled.pop()
            pooled[-1].events += last.events
            pooled[-1].rows += last.rows
    return [run.start for run in pooled]


def _breaks_trend(left: _Run, right: _Run, ascending: bool) -> bool:
    """Whether two adjacent runs' rates break the (strict) trend; empty runs always do."""
    if left.rows == 0 or right.rows == 0:
        return True
    # left.events / left.rows vs right.events / right.rows, without division.
    left_side, right_side = left.events * right.rows, right.events * left.rows
    return left_side >= right_side if ascending else left_side <= right_side


def _merged(counts: BinCounts, starts: list[int], trend: MonotonicTrend) -> MergedBins:
    """Counts, table and maps of the regular runs starting at ``starts``."""
    layout = counts.layout
    kept = np.asarray(starts[1:], dtype=np.int64) - 1
    merged_layout = layout  # a categorical layout (merge_bins left it whole)
    if layout.edges is not None and layout.edge_labels is not None:
        edge_labels = [layout.edge_labels[k] for k in kept]
        merged_layout = BinLayout(
            feature=layout.feature,
            regular_labels=interval_labels(edge_labels),
            special_labels=layout.special_labels,
            has_missing=layout.has_missing,
            edges=tuple(layout.edges[k] for k in kept),
            edge_labels=tuple(edge_labels),
        )
    n_regular = layout.n_regular
    bounds = np.asarray(starts, dtype=np.int64)
    merged_counts = BinCounts(
        layout=merged_layout,
        events=_merge_regular(counts.events, bounds, n_regular),
        non_events=_merge_regular(counts.non_events, bounds, n_regular),
    )
    regular_map = np.searchsorted(bounds, np.arange(n_regular), side="right") - 1
    other_map = np.arange(layout.n_bins - n_regular) + bounds.size
    return MergedBins(
        trend=trend,
        counts=merged_counts,
        table=woe_table(merged_counts),
        bin_map=np.concatenate([regular_map, other_map]).astype(np.int64),
        kept_edges=kept,
    )


def _merge_regular(
    values: NDArray[np.float64], bounds: NDArray[np.int64], n_regular: int
) -> NDArray[np.float64]:
    merged: NDArray[np.float64] = np.concatenate(
        [np.add.reduceat(values[:n_regular], bounds), values[n_regular:]]
    )
    return merged

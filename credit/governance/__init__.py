"""Statistics a credit committee signs off, computed from counts and sums only.

Everything here is pure (numpy, pandas, scipy) and works on per-bin counts and sums:
exactly what a secure sum over banks yields, never pooled rows. A bank turns its rows
into a fixed-length float vector (``to_vector()`` of a counts type) with the
function beside the one the coordinator applies to the sum, so each module owns one
statistic end to end. Sums may carry DP noise; each statistic says how it settles
them (clipped after summing, never per bank).

Modules
-------
``bins``
    The bin layout of a feature: regular bins, special codes, an optional missing bin.
``woe``
    Per-bin event/non-event counts (a bank's part, the sum, noise settling) and the
    WoE/IV table, with optbinning's conventions.
``merging``
    Merging adjacent regular bins of summed counts: monotonic trend, minimum share.
``scorecard``
    Points per bin from a logistic regression on WoE inputs (PDO scaling), scores,
    ``scorecard.csv`` and reason codes.
"""

from __future__ import annotations

from credit.governance.bins import MISSING_LABEL, BinKind, BinLayout, interval_labels
from credit.governance.merging import MergedBins, MonotonicTrend, merge_bins
from credit.governance.scorecard import (
    SCORECARD_COLUMNS,
    Characteristic,
    ReasonCode,
    Scorecard,
    ScoreScaling,
    build_scorecard,
    reason_codes,
    write_scorecard_csv,
)
from credit.governance.woe import (
    BinCounts,
    WoeTable,
    combine_counts,
    count_bins,
    counts_from_vector,
    counts_to_vector,
    settle_counts,
    woe_table,
)

__all__ = [  # noqa: RUF022 - plain sort, as every package door
    "BinCounts",
    "BinKind",
    "BinLayout",
    "Characteristic",
    "MISSING_LABEL",
    "MergedBins",
    "MonotonicTrend",
    "ReasonCode",
    "SCORECARD_COLUMNS",
    "ScoreScaling",
    "Scorecard",
    "WoeTable",
    "build_scorecard",
    "combine_counts",
    "count_bins",
    "counts_from_vector",
    "counts_to_vector",
    "interval_labels",
    "merge_bins",
    "reason_codes",
    "settle_counts",
    "woe_table",
    "write_scorecard_csv",
]

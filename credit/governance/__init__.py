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
``calibration``
    Per-bin sums of predictions and outcomes: reliability table, ECE, exact Brier.
``recalibration``
    Isotonic and Platt recalibration fitted on the summed bins, and the Brier change.
``groups``
    How a protected column's values map to groups (declared levels or public bands).
``fairness``
    Per-group confusion counts and score histograms: approval rates, adverse impact
    ratio, demographic parity, equal opportunity, equalised odds, per-group AUC.
``stability``
    Population counts per bin: PSI and CSI with the conventional levels and a
    sample-size-aware drift flag.
``release``
    The governance release: a bank's calibration and fairness sums in one vector
    (layout, sensitivity, the sum over banks) and the report of the sum.
"""

from __future__ import annotations

from credit.governance.bins import MISSING_LABEL, BinKind, BinLayout, interval_labels
from credit.governance.calibration import (
    CalibrationReport,
    CalibrationSums,
    calibration_report,
    calibration_sums,
)
from credit.governance.fairness import (
    ColumnFairness,
    FairnessSums,
    GroupFairness,
    fairness_report,
    fairness_sums,
)
from credit.governance.groups import Grouping, protected_groupings
from credit.governance.merging import MergedBins, MonotonicTrend, merge_bins
from credit.governance.recalibration import Recalibration, brier_change, fit_isotonic, fit_platt
from credit.governance.release import (
    GovernanceLayout,
    GovernanceReport,
    GovernanceSums,
    governance_from_sum,
    governance_report,
    governance_sensitivity,
    governance_sums,
    governance_vector,
    schema_groupings,
)
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
from credit.governance.stability import (
    PopulationCounts,
    StabilityLevel,
    StabilityResult,
    characteristic_stability,
    population_counts,
    population_stability_index,
    stability_report,
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
    "CalibrationReport",
    "CalibrationSums",
    "Characteristic",
    "ColumnFairness",
    "FairnessSums",
    "GovernanceLayout",
    "GovernanceReport",
    "GovernanceSums",
    "GroupFairness",
    "Grouping",
    "MISSING_LABEL",
    "MergedBins",
    "MonotonicTrend",
    "PopulationCounts",
    "ReasonCode",
    "Recalibration",
    "SCORECARD_COLUMNS",
    "ScoreScaling",
    "Scorecard",
    "StabilityLevel",
    "StabilityResult",
    "WoeTable",
    "brier_change",
    "build_scorecard",
    "calibration_report",
    "calibration_sums",
    "characteristic_stability",
    "combine_counts",
    "count_bins",
    "counts_from_vector",
    "counts_to_vector",
    "fairness_report",
    "fairness_sums",
    "fit_isotonic",
    "fit_platt",
    "governance_from_sum",
    "governance_report",
    "governance_sensitivity",
    "governance_sums",
    "governance_vector",
    "interval_labels",
    "merge_bins",
    "population_counts",
    "population_stability_index",
    "protected_groupings",
    "reason_codes",
    "schema_groupings",
    "settle_counts",
    "stability_report",
    "woe_table",
    "write_scorecard_csv",
]

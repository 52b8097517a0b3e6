"""Fairness by protected group from summed confusion counts and score histograms.

For each protected column a bank counts, per group and at the consortium's cut-off,
the confusion matrix of its declines, the sum of its predicted default probabilities
and the score histograms of defaulters and non-defaulters (:func:`fairness_sums`).
These add up exactly over banks; from the summed :class:`FairnessSums` the
coordinator reports per group the approval rate, true and false positive rates, AUC
and calibration, and per column the between-group differences
(:func:`fairness_report`), as Fairlearn's ``MetricFrame`` computes them on pooled
rows.

Conventions
-----------
* Decision: an applicant is **declined** when the predicted default probability is
  ``>= cutoff`` and approved otherwise. Positive means default (true label) and
  decline (prediction), so ``tpr`` is the share of defaulters declined, ``fpr`` the
  share of non-defaulters declined, and Fairlearn's selection rate is the decline
  rate (``1 - approval_rate``).
* Groups (:mod:`credit.governance.groups`): a categorical column's declared levels;
  a numeric column's public bands (interior edges in raw units, intervals closed on
  the left, labelled like ``[25, 35)``); a missing value is its own group,
  ``missing``, always the last.
* Undefined values are ``None``: ``tpr`` of a group without defaulters, ``fpr`` of a
  group without non-defaulters, ``auc`` of a group lacking either. A group with no
  rows is left out of the report, as Fairlearn only sees groups present in the data.
* Differences follow Fairlearn (``between_groups``): largest minus smallest group
  value, over the groups where the value is defined (Fairlearn itself reports an
  undefined rate as 0 through scikit-learn's confusion matrix; leaving it out is the
  meaningful choice). ``equalized_odds_difference`` is the larger of the ``tpr`` and
  ``fpr`` differences (Fairlearn's ``agg="worst_case"``), None unless both are defined.
* Adverse impact ratio: lowest approval rate over highest (the four-fifths rule
  flags it below 0.8); None when no group is approved at all.

Noise. Under differential privacy the summed sums are real numbers, possibly
negative. :meth:`FairnessSums.settled` (applied by :func:`fairness_report`) clips
every count and histogram at zero and each group's sum of predictions to [0, n]
after summing over banks, never at a bank; a denominator below half a row counts as
none (so the rate is None).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.governance.groups import Grouping
from credit.metrics import DEFAULT_SCORE_BINS, histogram_auc, score_bin_index
from credit.summing import sum_of

__all__ = [
    "ADVERSE_IMPACT_THRESHOLD",
    "FAIRNESS_SENSITIVITY",
    "ColumnFairness",
    "FairnessSums",
    "GroupFairness",
    "fairness_from_vector",
    "fairness_report",
    "fairness_sums",
    "fairness_vector",
]

ADVERSE_IMPACT_THRESHOLD = 0.8
"""The four-fifths rule: an adverse impact ratio below this is flagged."""
FAIRNESS_SENSITIVITY = float(np.sqrt(3.0))
"""L2 sensitivity of one column's :meth:`FairnessSums.to_vector` to one row.

A row adds 1 to one confusion count, at most 1 to its group's sum of predictions
and 1 to one histogram bin.
"""
_COUNTS = 5  # tp, fp, tn, fn, sum of predictions: the entries before each group's histograms
_EMPTY = 0.5
"""A denominator below half a row counts as no rows."""


@dataclass(frozen=True)
class FairnessSums:
    """One protected column's per-group sums at a bank (or summed over banks).

    Attributes
    ----------
    true_positives, false_positives, true_negatives, false_negatives : numpy.ndarray
        Per group: defaulters declined, non-defaulters declined, non-defaulters
        approved, defaulters approved.
    predicted : numpy.ndarray
        Per group: sum of predicted default probabilities.
    positives, negatives : numpy.ndarray
        Shape (groups, score bins): score histograms of defaulters / non-defaulters,
        equal-width bins on [0, 1] as in :mod:`credit.metrics`.
    """

    true_positives: NDArray[np.float64]
    false_positives: NDArray[np.float64]
    true_negatives: NDArray[np.float64]
    false_negatives: NDArray[np.float64]
    predicted: NDArray[np.float64]
    positives: NDArray[np.float64]
    negatives: NDArray[np.float64]

    def __post_init__(self) -> None:
        groups = self.true_positives.shape
        counts = (self.false_positives, self.true_negatives, self.false_negatives, self.predicted)
        if len(groups) != 1 or any(array.shape != groups for array in counts):
            raise ValueError("fairness counts must be 1-D arrays with one entry per group")
        if self.positives.ndim != 2 or self.positives.shape != self.negatives.shape:
            raise ValueError("fairness score histograms must be two arrays (groups, score bins)")
        if self.positives.shape[0] != groups[0]:
            raise ValueError(
                f"fairness histograms have {self.positives.shape[0]} groups, counts {groups[0]}"
            )

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return int(self.true_positives.size)

    @property
    def score_bins(self) -> int:
        """Number of score bins of the histograms."""
        return int(self.positives.shape[1])

    def _counts(self) -> NDArray[np.float64]:
        columns = (
            self.true_positives,
            self.false_positives,
            self.true_negatives,
            self.false_negatives,
            self.predicted,
        )
        return np.column_stack(columns).astype(np.float64)

    def to_vector(self) -> NDArray[np.float64]:
        """Per group ``[tp, fp, tn, fn, predicted, positives..., negatives...]``, group after group.

        ``n_groups * (5 + 2 * score_bins)`` entries; one row moves it by at most
        :data:`FAIRNESS_SENSITIVITY` in L2 norm.
        """
        return np.hstack([self._counts(), self.positives, self.negatives]).ravel()

    @classmethod
    def from_vector(
        cls, vector: NDArray[np.floating], *, n_groups: int, score_bins: int
    ) -> FairnessSums:
        """Inverse of :meth:`to_vector`."""
        width = _COUNTS + 2 * score_bins
        values = np.array(vector, dtype=np.float64)
        if values.shape != (n_groups * width,):
            raise ValueError(
                f"a fairness vector of {n_groups} groups and {score_bins} score bins has "
                f"{n_groups * width} entries; got shape {values.shape}"
            )
        rows = values.reshape(n_groups, width)
        return cls._from_counts(
            rows[:, :_COUNTS],
            positives=rows[:, _COUNTS : _COUNTS + score_bins].copy(),
            negatives=rows[:, _COUNTS + score_bins :].copy(),
        )

    @classmethod
    def _from_counts(
        cls,
        counts: NDArray[np.float64],
        *,
        positives: NDArray[np.float64],
        negatives: NDArray[np.float64],
    ) -> FairnessSums:
        """From the (groups, 5) array of :meth:`_counts` and the histograms."""
        return cls(
            true_positives=counts[:, 0].copy(),
            false_positives=counts[:, 1].copy(),
            true_negatives=counts[:, 2].copy(),
            false_negatives=counts[:, 3].copy(),
            predicted=counts[:, 4].copy(),
            positives=positives,
            negatives=negatives,
        )

    def __add__(self, other: FairnessSums) -> FairnessSums:
        if self.positives.shape != other.positives.shape:
            raise ValueError(
                "fairness sums differ in (groups, score bins): "
                f"{self.positives.shape} vs {other.positives.shape}"
            )
        return FairnessSums.from_vector(
            self.to_vector() + other.to_vector(), n_groups=self.n_groups, score_bins=self.score_bins
        )

    @classmethod
    def combine(cls, parts: Sequence[FairnessSums]) -> FairnessSums:
        """Sum the fairness sums of several banks."""
        return sum_of(parts, what="fairness sums")

    def settled(self) -> FairnessSums:
        """The summed (possibly noisy) sums clipped to values real rows can give.

        Counts and histograms are clipped at zero, each group's sum of predictions to
        [0, n]. Exact sums pass unchanged. Call this on the sum over banks, never on
        one bank's noisy sums before they are summed.
        """
        counts = np.clip(self._counts(), 0.0, None)
        counts[:, 4] = np.minimum(counts[:, 4], counts[:, :4].sum(axis=1))
        return FairnessSums._from_counts(
            counts,
            positives=np.clip(self.positives, 0.0, None),
            negatives=np.clip(self.negatives, 0.0, None),
        )


def fairness_sums(
    values: pd.Series | NDArray[Any],
    grouping: Grouping,
    predicted: NDArray[np.floating],
    observed: NDArray[np.integer],
    *,
    cutoff: float,
    score_bins: int = DEFAULT_SCORE_BINS,
) -> FairnessSums:
    """One bank's fairness sums for one protected column (bank side).

    Parameters
    ----------
    values : pandas.Series or numpy.ndarray
        The protected column, one value per scored row (missing values allowed).
    grouping : Grouping
        The column's public groups.
    predicted : numpy.ndarray
        Predicted default probabilities in [0, 1].
    observed : numpy.ndarray
        Outcomes in {0, 1} (1 = default).
    cutoff : float
        Decline when the predicted probability is ``>= cutoff``; in [0, 1].
    score_bins : int, default 100
        Equal-width score bins of the per-group histograms (the run's ``score-bins``).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    outcomes = np.asarray(observed)
    groups = grouping.indices(values)
    if not predicted.shape == outcomes.shape == groups.shape or predicted.ndim != 1:
        raise ValueError(
            f"column '{grouping.column}': values, predicted and observed must be 1-D and of "
            f"one length; got {groups.shape}, {predicted.shape}, {outcomes.shape}"
        )
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must lie in [0, 1]; got {cutoff}")
    if score_bins < 1:
        raise ValueError(f"score_bins must be >= 1; got {score_bins}")
    if not np.all((predicted >= 0.0) & (predicted <= 1.0)):
        raise ValueError("predicted probabilities must lie in [0, 1] (no NaN)")
    if not np.isin(outcomes, (0, 1)).all():
        raise ValueError("observed outcomes must be 0 or 1")
    default = outcomes == 1
    declined = predicted >= cutoff
    n_groups = grouping.n_groups

    def per_group(mask: NDArray[np.bool_]) -> NDArray[np.float64]:
        return np.bincount(groups[mask], minlength=n_groups).astype(np.float64)

    cells = score_bin_index(predicted, score_bins) + groups * score_bins
    histogram_size = n_groups * score_bins
    return FairnessSums(
        true_positives=per_group(default & declined),
        false_positives=per_group(~default & declined),
        true_negatives=per_group(~default & ~declined),
        false_negatives=per_group(default & ~declined),
        predicted=np.bincount(groups, weights=predicted, minlength=n_groups).astype(np.float64),
        positives=np.bincount(cells[default], minlength=histogram_size)
        .reshape(n_groups, score_bins)
        .astype(np.float64),
        negatives=np.bincount(cells[~default], minlength=histogram_size)
        .reshape(n_groups, score_bins)
        .astype(np.float64),
    )


def fairness_vector(sums: Sequence[FairnessSums]) -> NDArray[np.float64]:
    """Several protected columns' sums as one vector, in the order given."""
    return np.concatenate([part.to_vector() for part in sums]) if sums else np.zeros(0)


def fairness_from_vector(
    vector: NDArray[np.floating], groupings: Sequence[Grouping], score_bins: int
) -> tuple[FairnessSums, ...]:
    """Inverse of :func:`fairness_vector` for ``groupings`` (in the same order)."""
    widths = [grouping.n_groups * (_COUNTS + 2 * score_bins) for grouping in groupings]
    values = np.asarray(vector, dtype=np.float64)
    if values.shape != (sum(widths),):
        raise ValueError(
            f"a fairness vector of columns {[g.column for g in groupings]} and {score_bins} "
            f"score bins has {sum(widths)} entries; got shape {values.shape}"
        )
    starts = np.cumsum([0, *widths])
    return tuple(
        FairnessSums.from_vector(
            values[start : start + width], n_groups=grouping.n_groups, score_bins=score_bins
        )
        for grouping, start, width in zip(groupings, starts, widths, strict=False)
    )


@dataclass(frozen=True)
class GroupFairness:
    """Outcomes of one protected group at the cut-off (None: undefined, see the module)."""

    group: str
    n: int
    approval_rate: float
    tpr: float | None
    fpr: float | None
    auc: float | None
    mean_predicted: float
    observed_rate: float

    def as_dict(self) -> dict[str, float | int | None]:
        """The group's entry in ``metrics.json`` (its label is the key)."""
        return {name: value for name, value in self.__dict__.items() if name != "group"}


@dataclass(frozen=True)
class ColumnFairness:
    """The fairness report of one protected column."""

    column: str
    groups: tuple[GroupFairness, ...]
    adverse_impact_ratio: float | None
    adverse_impact_flag: bool
    demographic_parity_difference: float | None
    equal_opportunity_difference: float | None
    equalized_odds_difference: float | None

    def as_dict(self) -> dict[str, Any]:
        """The column's entry in ``metrics.json``."""
        report: dict[str, Any] = {"groups": {g.group: g.as_dict() for g in self.groups}}
        report.update({k: v for k, v in self.__dict__.items() if k not in ("column", "groups")})
        return report


def fairness_report(
    sums: FairnessSums,
    grouping: Grouping,
    *,
    adverse_impact_threshold: float = ADVERSE_IMPACT_THRESHOLD,
) -> ColumnFairness:
    """Per-group and between-group fairness of one protected column (coordinator side).

    The sums (summed over banks) are settled first; see the module for conventions.
    """
    if sums.n_groups != grouping.n_groups:
        raise ValueError(
            f"column '{grouping.column}' has {grouping.n_groups} groups; the sums have "
            f"{sums.n_groups}"
        )
    settled = sums.settled()
    groups = tuple(
        _group_fairness(settled, index, label)
        for index, label in enumerate(grouping.labels)
        if _rows(settled, index) >= _EMPTY
    )
    approvals = [group.approval_rate for group in groups]
    ratio = min(approvals) / max(approvals) if approvals and max(approvals) > 0 else None
    opportunity = _spread(group.tpr for group in groups)
    false_alarms = _spread(group.fpr for group in groups)
    odds = None if opportunity is None or false_alarms is None else max(opportunity, false_alarms)
    return ColumnFairness(
        column=grouping.column,
        groups=groups,
        adverse_impact_ratio=ratio,
        adverse_impact_flag=ratio is not None and ratio < adverse_impact_threshold,
        demographic_parity_difference=_spread(approvals),
        equal_opportunity_difference=opportunity,
        equalized_odds_difference=odds,
    )


def _rows(settled: FairnessSums, index: int) -> float:
    return float(
        settled.true_positives[index]
        + settled.false_positives[index]
        + settled.true_negatives[index]
        + settled.false_negatives[index]
    )


def _group_fairness(settled: FairnessSums, index: int, label: str) -> GroupFairness:
    tp, fp = settled.true_positives[index], settled.false_positives[index]
    tn, fn = settled.true_negatives[index], settled.false_negatives[index]
    rows = _rows(settled, index)
    try:
        auc: float | None = histogram_auc(settled.positives[index], settled.negatives[index])
    except ValueError:
        auc = None
    return GroupFairness(
        group=label,
        n=round(rows),
        approval_rate=float((tn + fn) / rows),
        tpr=_rate(tp, tp + fn),
        fpr=_rate(fp, fp + tn),
        auc=auc,
        mean_predicted=float(settled.predicted[index] / rows),
        observed_rate=float((tp + fn) / rows),
    )


def _rate(part: float, whole: float) -> float | None:
    return float(part / whole) if whole >= _EMPTY else None


def _spread(values: Iterable[float | None]) -> float | None:
    """Largest minus smallest of the defined values (None when none is defined)."""
    defined = [value for value in values if value is not None]
    return float(max(defined) - min(defined)) if defined else None

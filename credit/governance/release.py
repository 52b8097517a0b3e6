"""The governance release: a bank's calibration and fairness sums in one vector.

With its evaluation of the run's last model, a bank releases about its held-out rows,
besides its score summary (:mod:`credit.metrics`), its
:class:`~credit.governance.calibration.CalibrationSums` on public probability bins and,
for every protected column of the schema, its
:class:`~credit.governance.fairness.FairnessSums` at the run's decision cut-off.
:class:`GovernanceLayout` fixes what that vector holds: the number of calibration
bins, the score bins of the per-group histograms, the cut-off and the groups. The
groups come from the schema alone (a categorical column's declared levels, a numeric
column's public ``bands``; a numeric protected column without bands is left out), so
bank and coordinator, holding the same schema, agree on every entry.

A bank turns its held-out rows into :class:`GovernanceSums` (:func:`governance_sums`)
and adds :func:`governance_vector` to a sum over banks; the coordinator reads the sum
back (:func:`governance_from_sum`) and reports it (:func:`governance_report`).

Sensitivity. Adding or removing one held-out row moves the calibration part by at most
``CALIBRATION_SENSITIVITY = sqrt(5)`` and each protected column's part by at most
``FAIRNESS_SENSITIVITY = sqrt(3)`` in L2 norm, every part independently, so the whole
vector moves by at most ``sqrt(5 + 3 C)`` for C protected columns
(:attr:`GovernanceLayout.sensitivity`). Noisy sums are settled after summing over
banks, by the report functions of each statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from credit.governance.calibration import (
    CALIBRATION_SENSITIVITY,
    CalibrationReport,
    CalibrationSums,
    calibration_report,
    calibration_sums,
)
from credit.governance.fairness import (
    FAIRNESS_SENSITIVITY,
    ColumnFairness,
    FairnessSums,
    fairness_from_vector,
    fairness_report,
    fairness_sums,
    fairness_vector,
)
from credit.governance.groups import Grouping
from credit.governance.recalibration import (
    BinwiseMap,
    BrierChange,
    PlattMap,
    brier_change,
    fit_isotonic,
    fit_platt,
)
from credit.schema import DatasetSchema
from credit.summing import counted, sum_of, uncounted

__all__ = [
    "FittedRecalibration",
    "GovernanceLayout",
    "GovernanceReport",
    "GovernanceSums",
    "governance_from_sum",
    "governance_report",
    "governance_sensitivity",
    "governance_sums",
    "governance_vector",
    "schema_groupings",
]


def governance_sensitivity(protected_columns: int) -> float:
    """L2 sensitivity of a governance vector with ``protected_columns`` fairness parts.

    ``sqrt(CALIBRATION_SENSITIVITY^2 + C * FAIRNESS_SENSITIVITY^2) = sqrt(5 + 3 C)``.
    """
    if protected_columns < 0:
        raise ValueError(f"protected_columns must be >= 0; got {protected_columns}")
    return math.sqrt(CALIBRATION_SENSITIVITY**2 + protected_columns * FAIRNESS_SENSITIVITY**2)


def schema_groupings(schema: DatasetSchema) -> tuple[Grouping, ...]:
    """The groups of every protected column of ``schema`` that has public groups.

    A categorical column groups by its declared levels, a numeric one by its
    ``bands``; a numeric protected column without bands has no public groups and is
    left out. Schema order.
    """
    categorical = {feature.name: feature for feature in schema.categorical}
    bands = {feature.name: feature.bands for feature in schema.numeric}
    groupings = []
    for column in schema.protected:
        if column in categorical:
            groupings.append(Grouping(column=column, levels=categorical[column].levels))
        elif bands.get(column):
            groupings.append(Grouping(column=column, edges=tuple(map(float, bands[column] or ()))))
    return tuple(groupings)


@dataclass(frozen=True)
class GovernanceLayout:
    """What a governance vector holds.

    Attributes
    ----------
    calibration_bins : int
        Equal-width probability bins of the calibration sums, >= 1.
    score_bins : int
        Score bins of each group's histograms (the run's ``score-bins``), >= 1.
    cutoff : float
        Decision cut-off: decline when the predicted default probability is ``>=`` it.
    groupings : tuple of Grouping
        The protected columns' groups, in schema order (:func:`schema_groupings`).
    """

    calibration_bins: int
    score_bins: int
    cutoff: float
    groupings: tuple[Grouping, ...]

    def __post_init__(self) -> None:
        if self.calibration_bins < 1 or self.score_bins < 1:
            raise ValueError(
                "calibration_bins and score_bins must be >= 1; got "
                f"{self.calibration_bins} and {self.score_bins}"
            )
        if not 0.0 <= self.cutoff <= 1.0:
            raise ValueError(f"cutoff must lie in [0, 1]; got {self.cutoff}")

    @classmethod
    def of(
        cls, schema: DatasetSchema, *, calibration_bins: int, score_bins: int, cutoff: float
    ) -> GovernanceLayout:
        """The layout of ``schema``'s protected columns (:func:`schema_groupings`)."""
        return cls(
            calibration_bins=calibration_bins,
            score_bins=score_bins,
            cutoff=cutoff,
            groupings=schema_groupings(schema),
        )

    @property
    def length(self) -> int:
        """Entries of :meth:`GovernanceSums.to_vector` (without the bank count)."""
        per_group = 5 + 2 * self.score_bins
        return 5 * self.calibration_bins + per_group * sum(g.n_groups for g in self.groupings)

    @property
    def sensitivity(self) -> float:
        """L2 sensitivity of the vector to one held-out row (:func:`governance_sensitivity`)."""
        return governance_sensitivity(len(self.groupings))


@dataclass(frozen=True)
class GovernanceSums:
    """A bank's (or the consortium's) calibration sums and fairness sums per protected column."""

    calibration: CalibrationSums
    fairness: tuple[FairnessSums, ...]

    def to_vector(self) -> NDArray[np.float64]:
        """``[calibration sums, fairness sums of each column]`` (schema order)."""
        return np.concatenate([self.calibration.to_vector(), fairness_vector(self.fairness)])

    @classmethod
    def from_vector(cls, vector: NDArray[np.floating], layout: GovernanceLayout) -> GovernanceSums:
        """Inverse of :meth:`to_vector` for ``layout``."""
        values = np.asarray(vector, dtype=np.float64)
        if values.shape != (layout.length,):
            raise ValueError(
                f"a governance vector of this layout has {layout.length} entries; "
                f"got shape {values.shape}"
            )
        split = 5 * layout.calibration_bins
        return cls(
            calibration=CalibrationSums.from_vector(values[:split], layout.calibration_bins),
            fairness=fairness_from_vector(values[split:], layout.groupings, layout.score_bins),
        )

    def __add__(self, other: GovernanceSums) -> GovernanceSums:
        if len(self.fairness) != len(other.fairness):
            raise ValueError(
                f"governance sums of {len(self.fairness)} and {len(other.fairness)} protected "
                "columns do not add up"
            )
        return GovernanceSums(
            calibration=self.calibration + other.calibration,
            fairness=tuple(a + b for a, b in zip(self.fairness, other.fairness, strict=True)),
        )

    @classmethod
    def combine(cls, parts: Sequence[GovernanceSums]) -> GovernanceSums:
        """Sum the governance sums of several banks."""
        return sum_of(parts, what="governance sums")


def governance_sums(
    rows: pd.DataFrame,
    predicted: NDArray[np.floating],
    observed: NDArray[np.integer],
    layout: GovernanceLayout,
) -> GovernanceSums:
    """A bank's governance sums of its scored held-out rows (bank side).

    Parameters
    ----------
    rows : pandas.DataFrame
        The scored rows, with every protected column of ``layout`` (missing values allowed).
    predicted : numpy.ndarray
        The model's predicted default probabilities of ``rows``, in [0, 1].
    observed : numpy.ndarray
        Their outcomes in {0, 1}.
    layout : GovernanceLayout
        Bins, cut-off and groups of the release.
    """
    return GovernanceSums(
        calibration=calibration_sums(predicted, observed, layout.calibration_bins),
        fairness=tuple(
            fairness_sums(
                rows[grouping.column].to_numpy(),
                grouping,
                predicted,
                observed,
                cutoff=layout.cutoff,
                score_bins=layout.score_bins,
            )
            for grouping in layout.groupings
        ),
    )


def governance_vector(sums: GovernanceSums | None, layout: GovernanceLayout) -> NDArray[np.float64]:
    """What a bank adds to a sum over banks: ``[sums.to_vector(), 1]``, or zeros.

    A bank that releases no governance sums adds zeros, so the sum's last entry counts
    the banks whose sums it holds (as :func:`credit.metrics.evaluation_vector`).
    """
    return counted(None if sums is None else sums.to_vector(), layout.length)


def governance_from_sum(
    total: NDArray[np.floating], layout: GovernanceLayout
) -> tuple[GovernanceSums | None, int]:
    """The summed governance sums and how many banks they hold (None: no bank's).

    Inverse of summing :func:`governance_vector` over banks.
    """
    values = np.asarray(total, dtype=np.float64)
    if values.shape != (layout.length + 1,):
        raise ValueError(
            f"a summed governance vector has {layout.length + 1} entries; got {values.shape}"
        )
    summed, banks = uncounted(values)
    if summed is None:
        return None, 0
    return GovernanceSums.from_vector(summed, layout), banks


@dataclass(frozen=True)
class FittedRecalibration:
    """A recalibration fitted on the summed bins, and the Brier score before and after.

    ``parameters`` are the map's: an isotonic map's value per bin (``values``), Platt
    scaling's ``slope`` and ``intercept``.
    """

    change: BrierChange
    parameters: dict[str, float | list[float]]

    def as_dict(self) -> dict[str, Any]:
        """``{"brier_before", "brier_after", "exact", ...parameters}`` for ``metrics.json``."""
        return {
            "brier_before": self.change.before,
            "brier_after": self.change.after,
            "exact": self.change.exact,
            **self.parameters,
        }


@dataclass(frozen=True)
class GovernanceReport:
    """Calibration, recalibration and fairness of the run's last model.

    Attributes
    ----------
    calibration : CalibrationReport or None
        Reliability table, ECE and exact Brier score (None: the sums hold no rows).
    isotonic, platt : FittedRecalibration or None
        Isotonic recalibration (its Brier score after is exact) and Platt scaling (its
        Brier score after is estimated from the bins), fitted on the summed bins
        (None: it cannot be fitted, e.g. no rows or a single class).
    fairness : tuple of ColumnFairness
        One report per protected column with public groups.
    banks : int
        How many banks' sums the report holds.
    cutoff : float
        The decision cut-off of the fairness report.
    """

    calibration: CalibrationReport | None
    isotonic: FittedRecalibration | None
    platt: FittedRecalibration | None
    fairness: tuple[ColumnFairness, ...]
    banks: int
    cutoff: float

    def calibration_document(self) -> dict[str, Any] | None:
        """``metrics.json``'s ``calibration``: ECE, bins, Brier, banks and recalibrations."""
        if self.calibration is None:
            return None
        document = self.calibration.as_dict()
        document["banks"] = self.banks
        document["recalibration"] = {
            "isotonic": None if self.isotonic is None else self.isotonic.as_dict(),
            "platt": None if self.platt is None else self.platt.as_dict(),
        }
        return document

    def fairness_document(self) -> dict[str, Any]:
        """``metrics.json``'s ``fairness``: per protected column, its groups and differences."""
        return {column.column: column.as_dict() for column in self.fairness}


def governance_report(
    sums: GovernanceSums, layout: GovernanceLayout, *, banks: int
) -> GovernanceReport:
    """The report of summed governance sums (coordinator side).

    Each statistic settles the (possibly noisy) sums itself. Recalibration maps are
    fitted on the summed calibration bins (:mod:`credit.governance.recalibration`).
    """
    try:
        calibration: CalibrationReport | None = calibration_report(sums.calibration)
    except ValueError:  # no rows in the settled sums
        calibration = None
    return GovernanceReport(
        calibration=calibration,
        isotonic=_fitted(sums.calibration, _isotonic),
        platt=_fitted(sums.calibration, _platt),
        fairness=tuple(
            fairness_report(part, grouping)
            for part, grouping in zip(sums.fairness, layout.groupings, strict=True)
        ),
        banks=banks,
        cutoff=layout.cutoff,
    )


Fit = Callable[[CalibrationSums], tuple[BinwiseMap | PlattMap, dict[str, float | list[float]]]]


def _isotonic(sums: CalibrationSums) -> tuple[BinwiseMap, dict[str, float | list[float]]]:
    fitted = fit_isotonic(sums)
    return fitted, {"values": [float(value) for value in fitted.values]}


def _platt(sums: CalibrationSums) -> tuple[PlattMap, dict[str, float | list[float]]]:
    fitted = fit_platt(sums)
    return fitted, {"slope": fitted.slope, "intercept": fitted.intercept}


def _fitted(sums: CalibrationSums, fit: Fit) -> FittedRecalibration | None:
    """``fit``'s recalibration and its Brier change (None: it cannot be fitted)."""
    try:
        recalibration, parameters = fit(sums)
    except ValueError:
        return None
    return FittedRecalibration(change=brier_change(sums, recalibration), parameters=parameters)

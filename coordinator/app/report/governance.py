"""The governance sections of the model report, read from their documented forms.

Each reader takes one section as ``metrics.json`` (or ``scorecard.csv``) keeps it and
returns report rows; the forms are those of the issue's output contract, written by
:mod:`credit.governance` (``CalibrationReport.as_dict``, ``ColumnFairness.as_dict``
per protected column, ``WoeTable.to_dict`` per feature, ``write_scorecard_csv``).
Statistics a form may leave undefined (a rate of an empty group, an AUC of a group
with one class) are None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from credit.governance import SCORECARD_COLUMNS

__all__ = [
    "CalibrationSection",
    "FairnessColumn",
    "FairnessGroup",
    "FeatureWoe",
    "ReliabilityRow",
    "ScorecardRow",
    "WoeRow",
    "iv_strength",
    "read_calibration",
    "read_fairness",
    "read_scorecard",
    "read_woe_iv",
]


@dataclass(frozen=True)
class ReliabilityRow:
    """One bin of the reliability table (means None: an empty bin)."""

    lower: float
    upper: float
    count: float
    mean_predicted: float | None
    observed_rate: float | None


@dataclass(frozen=True)
class CalibrationSection:
    """Expected calibration error, Brier score and the reliability table."""

    ece: float
    brier: float | None
    n_rows: float | None
    bins: tuple[ReliabilityRow, ...]


@dataclass(frozen=True)
class FairnessGroup:
    """One protected group's outcomes at the cut-off."""

    group: str
    n: int
    approval_rate: float
    tpr: float | None
    fpr: float | None
    auc: float | None


@dataclass(frozen=True)
class FairnessColumn:
    """One protected column: its groups and the between-group differences."""

    column: str
    groups: tuple[FairnessGroup, ...]
    adverse_impact_ratio: float | None
    adverse_impact_flag: bool
    demographic_parity_difference: float | None
    equal_opportunity_difference: float | None
    equalized_odds_difference: float | None


@dataclass(frozen=True)
class WoeRow:
    """One bin of a feature's WoE/IV table."""

    label: str
    kind: str
    count: float
    events: float
    non_events: float
    event_rate: float | None
    woe: float
    iv: float


@dataclass(frozen=True)
class FeatureWoe:
    """One feature's information value and WoE table."""

    feature: str
    iv: float
    bins: tuple[WoeRow, ...]


@dataclass(frozen=True)
class ScorecardRow:
    """One row of ``scorecard.csv``."""

    feature: str
    label: str
    woe: float
    coefficient: float
    points: int


# The conventional reading of a feature's information value (Siddiqi, 2006).
_IV_STRENGTH = ((0.02, "not predictive"), (0.1, "weak"), (0.3, "medium"), (0.5, "strong"))


def iv_strength(iv: float) -> str:
    """``not predictive`` (< 0.02), ``weak``, ``medium``, ``strong`` or ``suspicious`` (>= 0.5)."""
    for bound, word in _IV_STRENGTH:
        if iv < bound:
            return word
    return "suspicious"


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def read_calibration(section: Mapping[str, Any]) -> CalibrationSection:
    """``metrics.json``'s ``calibration``: ``{"ece", "brier", "n_rows", "bins": [...]}``."""
    return CalibrationSection(
        ece=float(section["ece"]),
        brier=_optional(section.get("brier")),
        n_rows=_optional(section.get("n_rows")),
        bins=tuple(
            ReliabilityRow(
                lower=float(row["lower"]),
                upper=float(row["upper"]),
                count=float(row["count"]),
                mean_predicted=_optional(row.get("mean_predicted")),
                observed_rate=_optional(row.get("observed_rate")),
            )
            for row in section["bins"]
        ),
    )


def read_fairness(section: Mapping[str, Any]) -> tuple[FairnessColumn, ...]:
    """``metrics.json``'s ``fairness``: one entry per protected column."""
    return tuple(
        FairnessColumn(
            column=str(column),
            groups=tuple(
                FairnessGroup(
                    group=str(group),
                    n=int(values["n"]),
                    approval_rate=float(values["approval_rate"]),
                    tpr=_optional(values.get("tpr")),
                    fpr=_optional(values.get("fpr")),
                    auc=_optional(values.get("auc")),
                )
                for group, values in report["groups"].items()
            ),
            adverse_impact_ratio=_optional(report.get("adverse_impact_ratio")),
            adverse_impact_flag=bool(report.get("adverse_impact_flag", False)),
            demographic_parity_difference=_optional(report.get("demographic_parity_difference")),
            equal_opportunity_difference=_optional(report.get("equal_opportunity_difference")),
            equalized_odds_difference=_optional(report.get("equalized_odds_difference")),
        )
        for column, report in section.items()
    )


def read_woe_iv(section: Mapping[str, Any]) -> tuple[FeatureWoe, ...]:
    """``metrics.json``'s ``woe_iv``, the most informative feature first."""
    features = [
        FeatureWoe(
            feature=str(feature),
            iv=float(table["iv"]),
            bins=tuple(
                WoeRow(
                    label=str(row["bin"]),
                    kind=str(row.get("kind", "")),
                    count=float(row["count"]),
                    events=float(row["events"]),
                    non_events=float(row["non_events"]),
                    event_rate=_optional(row.get("event_rate")),
                    woe=float(row["woe"]),
                    iv=float(row["iv"]),
                )
                for row in table["bins"]
            ),
        )
        for feature, table in section.items()
    ]
    return tuple(sorted(features, key=lambda item: -item.iv))


def read_scorecard(path: Path) -> tuple[ScorecardRow, ...]:
    """The rows of ``scorecard.csv``.

    Raises
    ------
    ValueError
        The file lacks one of :data:`~credit.governance.SCORECARD_COLUMNS`.
    """
    frame = pd.read_csv(path, dtype={"feature": str, "bin": str}, keep_default_na=False)
    missing = [column for column in SCORECARD_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; a scorecard has "
            f"{', '.join(SCORECARD_COLUMNS)}"
        )
    return tuple(
        ScorecardRow(feature=feature, label=label, woe=woe, coefficient=coefficient, points=points)
        for feature, label, woe, coefficient, points in zip(
            frame["feature"].astype(str).tolist(),
            frame["bin"].astype(str).tolist(),
            frame["woe"].to_numpy(dtype=float).tolist(),
            frame["coefficient"].to_numpy(dtype=float).tolist(),
            frame["points"].to_numpy(dtype=int).tolist(),
            strict=True,
        )
    )

"""The governance release: one vector of calibration and fairness sums per bank."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit.governance.calibration import (
    CALIBRATION_SENSITIVITY,
    calibration_report,
    calibration_sums,
)
from credit.governance.fairness import FAIRNESS_SENSITIVITY, fairness_report, fairness_sums
from credit.governance.groups import Grouping
from credit.governance.release import (
    GovernanceLayout,
    GovernanceSums,
    governance_from_sum,
    governance_report,
    governance_sensitivity,
    governance_sums,
    governance_vector,
    schema_groupings,
)
from credit.schema import DatasetSchema

SCORE_BINS = 100


def _predicted(frame: pd.DataFrame) -> NDArray[np.float64]:
    """A fixed model's default probabilities (no training: a stand-in for the run's)."""
    linear = (-1.1 + 0.7 * frame["PAY_0"] - 0.3 * (np.arcsinh(frame["BILL_AMT1"]) - 10)).to_numpy()
    return 1.0 / (1.0 + np.exp(-linear))


@pytest.fixture(scope="module")
def layout(schema: DatasetSchema) -> GovernanceLayout:
    return GovernanceLayout.of(schema, calibration_bins=10, score_bins=SCORE_BINS, cutoff=0.3)


def test_the_groups_are_the_schemas_levels_and_bands(
    schema: DatasetSchema, layout: GovernanceLayout
) -> None:
    groupings = {grouping.column: grouping for grouping in layout.groupings}

    assert list(groupings) == list(schema.protected) == ["SEX", "EDUCATION", "MARRIAGE", "AGE"]
    assert groupings["SEX"].levels == (1, 2)
    assert groupings["AGE"].edges == (25.0, 35.0, 45.0, 55.0, 65.0)
    assert groupings["AGE"].labels[:2] == ("(-inf, 25)", "[25, 35)")
    groups = sum(grouping.n_groups for grouping in layout.groupings)
    assert layout.length == 5 * 10 + groups * (5 + 2 * SCORE_BINS)


def test_a_numeric_protected_column_without_bands_is_left_out(schema: DatasetSchema) -> None:
    numeric = tuple(
        feature.model_copy(update={"bands": None}) if feature.name == "AGE" else feature
        for feature in schema.numeric
    )
    unbanded = schema.model_copy(update={"numeric": numeric})

    assert [grouping.column for grouping in schema_groupings(unbanded)] == [
        "SEX",
        "EDUCATION",
        "MARRIAGE",
    ]


def test_the_sensitivity_adds_the_parts_in_l2() -> None:
    assert governance_sensitivity(0) == pytest.approx(CALIBRATION_SENSITIVITY) == math.sqrt(5)
    assert governance_sensitivity(4) == pytest.approx(
        math.sqrt(CALIBRATION_SENSITIVITY**2 + 4 * FAIRNESS_SENSITIVITY**2)
    )
    assert governance_sensitivity(4) == pytest.approx(math.sqrt(17))
    with pytest.raises(ValueError, match="protected_columns must be >= 0; got -1"):
        governance_sensitivity(-1)


def test_one_row_moves_the_vector_by_at_most_the_sensitivity(
    pooled: pd.DataFrame, labels: NDArray[np.int64], layout: GovernanceLayout
) -> None:
    rows = pooled.iloc[:300]
    predicted, observed = _predicted(rows), labels[:300]
    base = governance_sums(rows, predicted, observed, layout).to_vector()
    worst = 0.0
    for extra in range(300, 340):  # one more row: every kind the data has
        more = pooled.iloc[[*range(300), extra]]
        predicted_more = np.append(predicted, 1.0)  # the largest per-row sums
        observed_more = np.append(observed, 1)
        moved = governance_sums(more, predicted_more, observed_more, layout).to_vector() - base
        worst = max(worst, float(np.linalg.norm(moved)))

    assert worst == pytest.approx(layout.sensitivity)  # reached: p = y = 1 in every part


def test_the_sum_over_banks_is_the_pooled_release(
    pooled: pd.DataFrame,
    labels: NDArray[np.int64],
    bank_rows: list[NDArray[np.int64]],
    layout: GovernanceLayout,
) -> None:
    predicted = _predicted(pooled)
    vectors = [
        governance_vector(
            governance_sums(pooled.iloc[rows], predicted[rows], labels[rows], layout), layout
        )
        for rows in bank_rows
    ]
    declined = governance_vector(None, layout)  # a bank that releases nothing adds zeros

    summed, banks = governance_from_sum(np.sum([*vectors, declined], axis=0), layout)

    assert banks == 3 and summed is not None
    whole = governance_sums(pooled, predicted, labels, layout)
    np.testing.assert_allclose(summed.to_vector(), whole.to_vector(), rtol=1e-12, atol=1e-9)
    assert not declined.any() and declined.size == layout.length + 1
    assert governance_from_sum(declined, layout) == (None, 0)


def test_the_report_equals_the_statistics_of_the_pooled_rows(
    pooled: pd.DataFrame, labels: NDArray[np.int64], layout: GovernanceLayout
) -> None:
    predicted = _predicted(pooled)
    sums = governance_sums(pooled, predicted, labels, layout)
    report = governance_report(sums, layout, banks=3)

    calibration = report.calibration_document()
    direct = calibration_report(calibration_sums(predicted, labels, 10))
    assert calibration is not None
    assert calibration["ece"] == direct.ece and calibration["banks"] == 3
    assert calibration["bins"] == [row.as_dict() for row in direct.bins]
    isotonic = calibration["recalibration"]["isotonic"]
    platt = calibration["recalibration"]["platt"]
    assert isotonic["exact"] is True and platt["exact"] is False
    assert isotonic["brier_before"] == pytest.approx(np.mean((predicted - labels) ** 2), abs=1e-12)
    assert isotonic["brier_after"] <= isotonic["brier_before"]
    assert len(isotonic["values"]) == 10 and {"slope", "intercept"} <= set(platt)
    fairness = report.fairness_document()
    for grouping in layout.groupings:
        values = pooled[grouping.column]
        column = fairness_sums(values, grouping, predicted, labels, cutoff=0.3)
        assert fairness[grouping.column] == fairness_report(column, grouping).as_dict()


def test_a_vector_of_another_layout_is_refused(layout: GovernanceLayout) -> None:
    with pytest.raises(ValueError, match=f"has {layout.length} entries; got shape"):
        GovernanceSums.from_vector(np.zeros(layout.length - 1), layout)
    with pytest.raises(ValueError, match=f"has {layout.length + 1} entries"):
        governance_from_sum(np.zeros(layout.length), layout)
    with pytest.raises(ValueError, match=r"cutoff must lie in \[0, 1\]; got 1\.5"):
        GovernanceLayout(calibration_bins=10, score_bins=100, cutoff=1.5, groupings=())


def test_sums_without_rows_report_no_calibration() -> None:
    grouping = Grouping(column="G", levels=("a",))
    layout = GovernanceLayout(calibration_bins=4, score_bins=2, cutoff=0.5, groupings=(grouping,))

    report = governance_report(
        GovernanceSums.from_vector(np.zeros(layout.length), layout), layout, banks=1
    )

    assert report.calibration is None and report.calibration_document() is None
    assert report.isotonic is None and report.platt is None
    assert report.fairness_document() == {
        "G": {
            "groups": {},
            "adverse_impact_ratio": None,
            "adverse_impact_flag": False,
            "demographic_parity_difference": None,
            "equal_opportunity_difference": None,
            "equalized_odds_difference": None,
        }
    }

"""Fairness by protected group from summed sums equals pooled computations and Fairlearn."""

from __future__ import annotations

from dataclasses import dataclass

import fairlearn.metrics as fm
import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from credit.datasets import embedded_data_path
from credit.governance.fairness import (
    FAIRNESS_SENSITIVITY,
    ColumnFairness,
    FairnessSums,
    fairness_from_vector,
    fairness_report,
    fairness_sums,
    fairness_vector,
)
from credit.governance.groups import MISSING_GROUP, Grouping, protected_groupings
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema

SCORE_BINS = 100
CUTOFF = 0.3
AGE_BANDS = (25.0, 35.0, 45.0, 55.0)
PROTECTED = ("SEX", "EDUCATION", "MARRIAGE", "AGE")


@dataclass(frozen=True)
class Pooled:
    """The embedded data's protected columns, outcomes and a fixed model's predictions."""

    frame: pd.DataFrame
    predicted: NDArray[np.float64]
    observed: NDArray[np.int64]
    groupings: dict[str, Grouping]

    @property
    def declined(self) -> NDArray[np.int64]:
        return (self.predicted >= CUTOFF).astype(np.int64)


@pytest.fixture(scope="module")
def pooled(schema: DatasetSchema) -> Pooled:
    frame = load_bank_csv(embedded_data_path(), schema).frame
    linear = (
        -1.1
        + 0.7 * frame["PAY_0"]
        + 0.2 * frame["PAY_2"]
        - 0.3 * (np.arcsinh(frame["LIMIT_BAL"]) - 12.0)
        - 0.05 * np.arcsinh(frame["PAY_AMT1"])
    ).to_numpy()
    probability = 1.0 / (1.0 + np.exp(-linear))
    # At the centres of the score bins: no bin holds two different scores, so the
    # histogram AUC is the exact AUC.
    predicted = (np.floor(probability * SCORE_BINS) + 0.5) / SCORE_BINS
    groupings = protected_groupings(schema, {"AGE": AGE_BANDS})
    return Pooled(
        frame=frame,
        predicted=predicted,
        observed=frame[schema.target].to_numpy(),
        groupings={grouping.column: grouping for grouping in groupings},
    )


def _summed_over_three_banks(pooled: Pooled, column: str) -> FairnessSums:
    order = np.random.default_rng(5).permutation(len(pooled.frame))
    banks = np.split(order, [4_000, 15_000])
    return FairnessSums.combine(
        [
            fairness_sums(
                pooled.frame[column].iloc[rows],
                pooled.groupings[column],
                pooled.predicted[rows],
                pooled.observed[rows],
                cutoff=CUTOFF,
                score_bins=SCORE_BINS,
            )
            for rows in banks
        ]
    )


def _group_labels(pooled: Pooled, column: str) -> NDArray[np.str_]:
    """Each row's group label, found without :meth:`Grouping.indices`."""
    grouping = pooled.groupings[column]
    values = pooled.frame[column]
    if column == "AGE":
        index = pd.cut(values, [-np.inf, *AGE_BANDS, np.inf], right=False, labels=False)
    else:
        index = values.map({level: i for i, level in enumerate(grouping.levels)})
    return np.array(grouping.labels)[index.to_numpy(dtype=np.int64)]


@pytest.fixture(scope="module", params=PROTECTED)
def column_report(request: pytest.FixtureRequest, pooled: Pooled) -> tuple[str, ColumnFairness]:
    column = str(request.param)
    return column, fairness_report(
        _summed_over_three_banks(pooled, column), pooled.groupings[column]
    )


def test_the_summed_sums_equal_the_pooled_sums(pooled: Pooled) -> None:
    for column in PROTECTED:
        whole = fairness_sums(
            pooled.frame[column],
            pooled.groupings[column],
            pooled.predicted,
            pooled.observed,
            cutoff=CUTOFF,
            score_bins=SCORE_BINS,
        )
        total = _summed_over_three_banks(pooled, column)
        np.testing.assert_allclose(total.to_vector(), whole.to_vector(), rtol=1e-12)


def test_per_group_metrics_equal_a_direct_pooled_computation(
    pooled: Pooled, column_report: tuple[str, ColumnFairness]
) -> None:
    column, report = column_report
    labels = _group_labels(pooled, column)
    default = pooled.observed == 1
    declined = pooled.declined == 1

    assert [group.group for group in report.groups] == [
        label for label in pooled.groupings[column].labels if (labels == label).any()
    ]
    for group in report.groups:
        rows = labels == group.group
        assert group.n == rows.sum()
        assert group.approval_rate == pytest.approx(1 - declined[rows].mean(), abs=1e-12)
        assert group.mean_predicted == pytest.approx(pooled.predicted[rows].mean(), abs=1e-12)
        assert group.observed_rate == pytest.approx(default[rows].mean(), abs=1e-12)
        if default[rows].any():
            assert group.tpr == pytest.approx(declined[rows & default].mean(), abs=1e-12)
        else:
            assert group.tpr is None
        assert group.fpr == pytest.approx(declined[rows & ~default].mean(), abs=1e-12)
        if default[rows].any():
            exact_auc = roc_auc_score(pooled.observed[rows], pooled.predicted[rows])
            assert group.auc == pytest.approx(exact_auc, abs=1e-9)
        else:
            assert group.auc is None


def test_the_undefined_case_occurs_in_the_embedded_data(pooled: Pooled) -> None:
    """EDUCATION level 0 has 14 rows and no defaulter: its tpr and AUC are undefined."""
    report = fairness_report(
        _summed_over_three_banks(pooled, "EDUCATION"), pooled.groupings["EDUCATION"]
    )

    level_zero = report.groups[0]
    assert (level_zero.group, level_zero.n) == ("0", 14)
    assert level_zero.tpr is None and level_zero.auc is None
    assert level_zero.fpr is not None


def test_group_rates_equal_fairlearns_metric_frame(
    pooled: Pooled, column_report: tuple[str, ColumnFairness]
) -> None:
    column, report = column_report
    frame = fm.MetricFrame(
        metrics={
            "selection_rate": fm.selection_rate,
            "tpr": fm.true_positive_rate,
            "fpr": fm.false_positive_rate,
            "count": fm.count,
        },
        y_true=pooled.observed,
        y_pred=pooled.declined,
        sensitive_features=_group_labels(pooled, column),
    )
    by_group = frame.by_group

    assert sorted(group.group for group in report.groups) == sorted(by_group.index)
    for group in report.groups:
        reference = by_group.loc[group.group]
        assert group.n == reference["count"]
        assert 1 - group.approval_rate == pytest.approx(reference["selection_rate"], abs=1e-9)
        assert group.fpr == pytest.approx(reference["fpr"], abs=1e-9)
        if group.tpr is None:  # no defaulters: Fairlearn reports 0, we report None
            assert reference["tpr"] == 0.0
        else:
            assert group.tpr == pytest.approx(reference["tpr"], abs=1e-9)


def test_differences_and_ratio_equal_fairlearns(
    pooled: Pooled, column_report: tuple[str, ColumnFairness]
) -> None:
    column, report = column_report
    labels = _group_labels(pooled, column)
    truth, declined = pooled.observed, pooled.declined
    # Groups whose tpr is defined (they have defaulters): Fairlearn would count the
    # others as a tpr of 0.
    with_defaulters = np.isin(labels, np.unique(labels[truth == 1]))

    assert report.demographic_parity_difference == pytest.approx(
        fm.demographic_parity_difference(truth, declined, sensitive_features=labels), abs=1e-9
    )
    opportunity = fm.equal_opportunity_difference(
        truth[with_defaulters],
        declined[with_defaulters],
        sensitive_features=labels[with_defaulters],
    )
    assert report.equal_opportunity_difference == pytest.approx(opportunity, abs=1e-9)
    false_alarms = fm.MetricFrame(
        metrics=fm.false_positive_rate,
        y_true=truth,
        y_pred=declined,
        sensitive_features=labels,
    ).difference()
    assert report.equalized_odds_difference == pytest.approx(
        max(opportunity, false_alarms), abs=1e-9
    )
    if with_defaulters.all():
        assert report.equalized_odds_difference == pytest.approx(
            fm.equalized_odds_difference(truth, declined, sensitive_features=labels), abs=1e-9
        )
    # Fairlearn's demographic parity ratio of approvals is the adverse impact ratio.
    ratio = fm.demographic_parity_ratio(truth, 1 - declined, sensitive_features=labels)
    assert report.adverse_impact_ratio == pytest.approx(ratio, abs=1e-9)
    assert report.adverse_impact_flag == (ratio < 0.8)


def test_the_report_as_a_dict_follows_the_metrics_json_contract(
    column_report: tuple[str, ColumnFairness],
) -> None:
    _, report = column_report

    values = report.as_dict()

    assert set(values) >= {
        "groups",
        "adverse_impact_ratio",
        "demographic_parity_difference",
        "equal_opportunity_difference",
        "equalized_odds_difference",
    }
    for group in report.groups:
        assert set(values["groups"][group.group]) >= {"n", "approval_rate", "tpr", "fpr", "auc"}


# -- undefined values -----------------------------------------------------------------------


def _report(values: list[object], predicted: list[float], observed: list[int]) -> ColumnFairness:
    grouping = Grouping(column="G", levels=("a", "b", "c"))
    sums = fairness_sums(
        pd.Series(values), grouping, np.array(predicted), np.array(observed), cutoff=0.5
    )
    return fairness_report(sums, grouping)


def test_a_group_without_defaulters_or_non_defaulters_has_undefined_rates() -> None:
    report = _report(
        values=["a", "a", "a", "b", "b", "c", "c", None],
        predicted=[0.1, 0.7, 0.6, 0.2, 0.9, 0.3, 0.8, 0.55],
        observed=[0, 1, 0, 0, 0, 1, 1, 1],
    )
    groups = {group.group: group for group in report.groups}

    assert list(groups) == ["a", "b", "c", MISSING_GROUP]
    assert groups["b"].tpr is None and groups["b"].auc is None  # no defaulters
    assert groups["b"].fpr == 0.5
    assert groups["c"].fpr is None and groups["c"].auc is None  # no non-defaulters
    assert groups["c"].tpr == 0.5
    assert groups["a"].auc == 1.0 and groups["a"].tpr == 1.0 and groups["a"].fpr == 0.5
    # Differences over the groups where the rate is defined.
    assert report.equal_opportunity_difference == pytest.approx(1.0 - 0.5)  # a, c, missing
    assert report.equalized_odds_difference == pytest.approx(0.5)
    assert report.demographic_parity_difference == pytest.approx(0.5)  # b or c, missing
    assert report.adverse_impact_ratio == 0.0 and report.adverse_impact_flag


def test_no_group_with_defaulters_leaves_opportunity_and_odds_undefined() -> None:
    report = _report(values=["a", "b", "b"], predicted=[0.6, 0.2, 0.7], observed=[0, 0, 0])

    assert report.equal_opportunity_difference is None
    assert report.equalized_odds_difference is None
    assert report.demographic_parity_difference == pytest.approx(0.5)
    assert [group.group for group in report.groups] == ["a", "b"]  # c and missing: no rows


def test_nobody_approved_leaves_the_adverse_impact_ratio_undefined() -> None:
    report = _report(values=["a", "b"], predicted=[0.6, 0.7], observed=[0, 1])

    assert report.adverse_impact_ratio is None
    assert not report.adverse_impact_flag


def test_the_adverse_impact_ratio_is_flagged_below_four_fifths() -> None:
    approvals = ["a"] * 5 + ["b"] * 5
    # a: 5 of 5 approved; b: 4 of 5 (ratio 0.8, not flagged), then 3 of 5 (0.6, flagged).
    at_limit = _report(approvals, [0.1] * 5 + [0.1] * 4 + [0.9], [0] * 10)
    below = _report(approvals, [0.1] * 5 + [0.1] * 3 + [0.9] * 2, [0] * 10)

    assert at_limit.adverse_impact_ratio == pytest.approx(0.8) and not at_limit.adverse_impact_flag
    assert below.adverse_impact_ratio == pytest.approx(0.6) and below.adverse_impact_flag


def test_a_score_at_the_cutoff_is_declined() -> None:
    report = _report(
        values=["a", "a"], predicted=[0.5, float(np.nextafter(0.5, 0))], observed=[1, 0]
    )

    assert report.groups[0].tpr == 1.0 and report.groups[0].fpr == 0.0


# -- vectors and noise ----------------------------------------------------------------------


def test_vectors_round_trip_and_name_their_length(pooled: Pooled) -> None:
    groupings = [pooled.groupings["SEX"], pooled.groupings["AGE"]]
    parts = [_summed_over_three_banks(pooled, g.column) for g in groupings]

    vector = fairness_vector(parts)
    back = fairness_from_vector(vector, groupings, SCORE_BINS)

    assert vector.size == (3 + 6) * (5 + 2 * SCORE_BINS)
    for part, restored in zip(parts, back, strict=True):
        np.testing.assert_array_equal(restored.to_vector(), part.to_vector())
    with pytest.raises(ValueError, match="of 3 groups and 100 score bins has 615 entries"):
        FairnessSums.from_vector(parts[0].to_vector()[:-1], n_groups=3, score_bins=100)
    with pytest.raises(ValueError, match="has 1845 entries; got shape \\(1844,\\)"):
        fairness_from_vector(vector[:-1], groupings, SCORE_BINS)


def test_one_row_moves_a_columns_vector_by_at_most_the_sensitivity() -> None:
    grouping = Grouping(column="G", levels=("a", "b"))

    def vector(values: list[str], predicted: list[float], observed: list[int]) -> np.ndarray:
        return fairness_sums(
            pd.Series(values), grouping, np.array(predicted), np.array(observed), cutoff=0.5
        ).to_vector()

    base = vector(["a", "b"], [0.2, 0.7], [0, 1])
    added = vector(["a", "b", "b"], [0.2, 0.7, 1.0], [0, 1, 1])

    assert np.linalg.norm(added - base) == pytest.approx(FAIRNESS_SENSITIVITY)
    assert pytest.approx(np.sqrt(3)) == FAIRNESS_SENSITIVITY


def test_noisy_sums_are_settled_after_summing() -> None:
    grouping = Grouping(column="G", levels=("a", "b"))
    rows = np.array(
        [
            # tp, fp, tn, fn, predicted, then 2 score bins of positives and of negatives
            [4.0, -1.0, 10.0, 0.3, 20.0, 1.0, 3.3, -0.5, 10.0],
            [-0.4, 0.2, 0.1, 0.1, 3.0, 0.1, -0.2, 0.1, 0.1],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # missing: no rows
        ]
    )
    noisy = FairnessSums.from_vector(rows.ravel(), n_groups=3, score_bins=2)

    settled = noisy.settled()
    report = fairness_report(noisy, grouping)

    np.testing.assert_allclose(settled.false_positives, [0.0, 0.2, 0.0])
    np.testing.assert_allclose(settled.predicted, [14.3, 0.4, 0.0])  # at most n
    assert [group.group for group in report.groups] == ["a"]  # b: 0.4 rows, none
    (group,) = report.groups
    assert group.n == 14
    assert group.tpr == pytest.approx(4.0 / 4.3)
    assert group.fpr == 0.0
    assert group.auc is not None
    assert group.mean_predicted == 1.0


def test_sums_of_another_grouping_are_refused(pooled: Pooled) -> None:
    sums = _summed_over_three_banks(pooled, "SEX")
    with pytest.raises(ValueError, match="column 'AGE' has 6 groups; the sums have 3"):
        fairness_report(sums, pooled.groupings["AGE"])


@pytest.mark.parametrize(
    ("cutoff", "predicted", "observed", "message"),
    [
        (1.5, [0.2, 0.4], [0, 1], "cutoff must lie in \\[0, 1\\]; got 1.5"),
        (0.5, [0.2, -0.1], [0, 1], "must lie in \\[0, 1\\]"),
        (0.5, [0.2, 0.4], [0, 3], "must be 0 or 1"),
        (0.5, [0.2], [0, 1], "must be 1-D and of one length"),
    ],
)
def test_bad_bank_inputs_are_refused(
    cutoff: float, predicted: list[float], observed: list[int], message: str
) -> None:
    grouping = Grouping(column="G", levels=("a",))
    with pytest.raises(ValueError, match=message):
        fairness_sums(
            pd.Series(["a", "a"]), grouping, np.array(predicted), np.array(observed), cutoff=cutoff
        )

"""Calibration from summed per-bin sums equals the pooled computation and scikit-learn's."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.calibration import calibration_curve

from credit.governance.calibration import (
    CALIBRATION_SENSITIVITY,
    CalibrationSums,
    calibration_report,
    calibration_sums,
)

Rows = tuple[NDArray[np.float64], NDArray[np.int64]]


def _miscalibrated(seed: int, n: int = 6_000) -> Rows:
    """Predictions too high by a third, outcomes drawn from the true probabilities."""
    rng = np.random.default_rng(seed)
    truth = 1.0 / (1.0 + np.exp(-rng.normal(-1.4, 1.1, n)))
    outcomes = (rng.random(n) < truth).astype(np.int64)
    return np.clip(truth * 1.35, 0.0, 1.0), outcomes


@pytest.fixture(scope="module")
def pooled() -> Rows:
    return _miscalibrated(seed=11)


def _banks(rows: Rows, n_bins: int = 10) -> list[CalibrationSums]:
    predicted, outcomes = rows
    cuts = [0, 700, 2_900, predicted.size]  # three banks of unequal size
    return [
        calibration_sums(predicted[low:high], outcomes[low:high], n_bins)
        for low, high in itertools.pairwise(cuts)
    ]


def test_summed_bank_sums_equal_the_pooled_sums(pooled: Rows) -> None:
    total = CalibrationSums.combine(_banks(pooled))
    whole = calibration_sums(*pooled)

    np.testing.assert_allclose(total.to_vector(), whole.to_vector(), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n_bins", [10, 7, 20])
def test_reliability_table_ece_and_brier_equal_a_direct_pooled_computation(
    pooled: Rows, n_bins: int
) -> None:
    predicted, outcomes = pooled
    report = calibration_report(CalibrationSums.combine(_banks(pooled, n_bins)))

    bins = np.minimum((predicted * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for index, row in enumerate(report.bins):
        members = bins == index
        assert row.count == members.sum()
        assert (row.lower, row.upper) == pytest.approx((index / n_bins, (index + 1) / n_bins))
        if not members.any():
            assert row.mean_predicted is None and row.observed_rate is None
            continue
        assert row.mean_predicted == pytest.approx(predicted[members].mean(), abs=1e-12)
        assert row.observed_rate == pytest.approx(outcomes[members].mean(), abs=1e-12)
        ece += members.mean() * abs(predicted[members].mean() - outcomes[members].mean())
    assert report.ece == pytest.approx(ece, abs=1e-12)
    assert report.brier == pytest.approx(np.mean((predicted - outcomes) ** 2), abs=1e-12)
    assert report.n_rows == predicted.size


def test_the_reliability_table_equals_sklearns_calibration_curve(pooled: Rows) -> None:
    predicted, outcomes = pooled
    report = calibration_report(CalibrationSums.combine(_banks(pooled)))

    observed_rate, mean_predicted = calibration_curve(outcomes, predicted, n_bins=10)

    filled = [row for row in report.bins if row.count > 0]
    assert len(filled) == observed_rate.size
    np.testing.assert_allclose([row.observed_rate for row in filled], observed_rate, atol=1e-12)
    np.testing.assert_allclose([row.mean_predicted for row in filled], mean_predicted, atol=1e-12)


def test_a_calibrated_score_has_a_small_ece_and_a_miscalibrated_one_a_large_one() -> None:
    rng = np.random.default_rng(4)
    truth = rng.random(20_000)
    outcomes = (rng.random(truth.size) < truth).astype(np.int64)

    calibrated = calibration_report(calibration_sums(truth, outcomes))
    too_high = calibration_report(calibration_sums(np.sqrt(truth), outcomes))

    assert calibrated.ece < 0.02
    assert too_high.ece > 0.1


def test_the_report_as_a_dict_holds_ece_and_the_bins(pooled: Rows) -> None:
    report = calibration_report(calibration_sums(*pooled))

    values = report.as_dict()

    assert values["ece"] == report.ece
    assert len(values["bins"]) == 10
    assert values["bins"][0] == report.bins[0].as_dict()
    assert set(values["bins"][0]) == {"lower", "upper", "count", "mean_predicted", "observed_rate"}


# -- the vector that goes through secure aggregation ---------------------------------------


def test_the_vector_round_trips_and_names_its_length(pooled: Rows) -> None:
    sums = calibration_sums(*pooled, n_bins=10)

    vector = sums.to_vector()

    assert vector.shape == (50,)
    np.testing.assert_array_equal(CalibrationSums.from_vector(vector, 10).to_vector(), vector)
    with pytest.raises(ValueError, match="of 10 bins has 50 entries; got shape \\(49,\\)"):
        CalibrationSums.from_vector(vector[:-1], 10)


def test_one_row_moves_the_vector_by_at_most_the_sensitivity_and_reaches_it() -> None:
    predicted = np.array([0.2, 0.35, 0.9])
    outcomes = np.array([0, 1, 0])
    without = calibration_sums(predicted, outcomes).to_vector()

    for row, outcome in [(0.0, 0), (0.5, 1), (0.99, 0), (1.0, 1)]:
        added = calibration_sums(np.append(predicted, row), np.append(outcomes, outcome))
        distance = np.linalg.norm(added.to_vector() - without)
        assert distance <= CALIBRATION_SENSITIVITY + 1e-12
    assert distance == pytest.approx(CALIBRATION_SENSITIVITY)  # p = 1, y = 1
    assert pytest.approx(np.sqrt(5.0)) == CALIBRATION_SENSITIVITY


def test_sums_of_different_bins_do_not_add() -> None:
    predicted, outcomes = np.array([0.1, 0.8]), np.array([0, 1])
    with pytest.raises(ValueError, match="different bins: 10 vs 20"):
        calibration_sums(predicted, outcomes, 10) + calibration_sums(predicted, outcomes, 20)
    with pytest.raises(ValueError, match="no calibration sums to combine"):
        CalibrationSums.combine([])


@pytest.mark.parametrize(
    ("predicted", "outcomes", "message"),
    [
        ([0.2, 1.2], [0, 1], "must lie in \\[0, 1\\]"),
        ([0.2, np.nan], [0, 1], "must lie in \\[0, 1\\]"),
        ([0.2, 0.3], [0, 2], "must be 0 or 1"),
        ([0.2, 0.3], [0, 1, 1], "1-D arrays of one shape"),
    ],
)
def test_bad_bank_inputs_are_refused(
    predicted: list[float], outcomes: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        calibration_sums(np.array(predicted), np.array(outcomes))


# -- noisy sums: settled after summing -------------------------------------------------------


def test_exact_sums_pass_settling_unchanged(pooled: Rows) -> None:
    sums = CalibrationSums.combine(_banks(pooled))

    np.testing.assert_allclose(sums.settled().to_vector(), sums.to_vector(), rtol=1e-15)


def test_noisy_sums_are_clipped_to_what_rows_can_give() -> None:
    noisy = CalibrationSums(
        count=np.array([-3.0, 0.3, 10.0, 20.0]),
        predicted=np.array([1.0, 0.1, -2.0, 19.0]),  # bin [0.75, 1]: at most 20
        observed=np.array([2.0, 0.2, 12.0, -1.0]),
        predicted_squares=np.array([0.5, 0.0, 9.0, 30.0]),
        predicted_observed=np.array([0.1, 0.0, 4.0, 3.0]),
    )

    settled = noisy.settled()

    np.testing.assert_allclose(settled.count, [0.0, 0.0, 10.0, 20.0])  # 0.3 rows: empty
    np.testing.assert_allclose(settled.predicted, [0.0, 0.0, 5.0, 19.0])  # bin [0.5, 0.75)
    np.testing.assert_allclose(settled.observed, [0.0, 0.0, 10.0, 0.0])
    np.testing.assert_allclose(settled.predicted_squares, [0.0, 0.0, 5.625, 20.0])
    np.testing.assert_allclose(settled.predicted_observed, [0.0, 0.0, 5.0, 0.0])
    report = calibration_report(noisy)
    assert report.n_rows == 30.0
    assert report.bins[1].mean_predicted is None
    assert 0.0 <= report.brier <= 1.0


def test_a_report_of_noisy_summed_sums_stays_close_to_the_exact_one(pooled: Rows) -> None:
    rng = np.random.default_rng(8)
    banks = _banks(pooled)
    noisy = [
        CalibrationSums.from_vector(
            bank.to_vector() + rng.normal(0.0, 2.0, bank.to_vector().size), 10
        )
        for bank in banks
    ]

    exact = calibration_report(CalibrationSums.combine(banks))
    report = calibration_report(CalibrationSums.combine(noisy))

    assert report.ece == pytest.approx(exact.ece, abs=0.01)
    assert report.brier == pytest.approx(exact.brier, abs=0.01)


def test_sums_without_rows_have_no_report() -> None:
    empty = calibration_sums(np.array([]), np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="hold no rows"):
        calibration_report(empty)

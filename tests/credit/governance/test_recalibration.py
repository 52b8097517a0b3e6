"""Isotonic and Platt recalibration on summed bins against scikit-learn, and their Brier."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from credit.governance.calibration import CalibrationSums, calibration_sums
from credit.governance.recalibration import (
    BinwiseMap,
    PlattMap,
    brier_change,
    fit_isotonic,
    fit_platt,
)

Rows = tuple[NDArray[np.float64], NDArray[np.int64]]


@pytest.fixture(scope="module")
def pooled() -> Rows:
    """Overconfident, too high predictions; outcomes drawn from the true probabilities."""
    rng = np.random.default_rng(11)
    true_logit = rng.normal(-1.4, 1.1, 6_000)
    outcomes = (rng.random(true_logit.size) < 1.0 / (1.0 + np.exp(-true_logit))).astype(np.int64)
    return 1.0 / (1.0 + np.exp(-(1.5 * true_logit + 0.6))), outcomes


@pytest.fixture(scope="module")
def total(pooled: Rows) -> CalibrationSums:
    """The pooled rows' sums, summed over three banks."""
    predicted, outcomes = pooled
    banks = np.split(np.arange(predicted.size), [700, 2_900])
    return CalibrationSums.combine(
        [calibration_sums(predicted[rows], outcomes[rows]) for rows in banks]
    )


def test_isotonic_recalibration_is_sklearns_weighted_isotonic_fit_on_the_bins(
    total: CalibrationSums,
) -> None:
    mapping = fit_isotonic(total)

    filled = total.count > 0
    mean_predicted = total.predicted[filled] / total.count[filled]
    rates = total.observed[filled] / total.count[filled]
    reference = IsotonicRegression().fit(mean_predicted, rates, sample_weight=total.count[filled])

    np.testing.assert_allclose(
        mapping.values[filled], reference.predict(mean_predicted), atol=1e-12
    )
    assert np.all(np.diff(mapping.values) >= 0)


def test_the_isotonic_map_is_constant_within_each_bin_and_its_brier_is_exact(
    pooled: Rows, total: CalibrationSums
) -> None:
    predicted, outcomes = pooled
    mapping = fit_isotonic(total)

    recalibrated = mapping(predicted)
    change = brier_change(total, mapping)

    bins = np.minimum((predicted * 10).astype(int), 9)
    np.testing.assert_array_equal(recalibrated, mapping.values[bins])
    assert change.exact
    assert change.before == pytest.approx(np.mean((predicted - outcomes) ** 2), abs=1e-12)
    assert change.after == pytest.approx(np.mean((recalibrated - outcomes) ** 2), abs=1e-12)
    assert change.after < change.before  # the scores were overconfident and too high


def test_an_empty_bin_takes_the_isotonic_value_of_its_neighbour_below() -> None:
    predicted = np.array([0.05, 0.06, 0.31, 0.33, 0.72, 0.74])
    outcomes = np.array([0, 0, 0, 1, 1, 1])

    mapping = fit_isotonic(calibration_sums(predicted, outcomes, n_bins=10))

    np.testing.assert_allclose(mapping.values, [0, 0, 0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1])


def test_isotonic_values_of_bins_below_the_first_filled_one_are_its_value() -> None:
    mapping = fit_isotonic(calibration_sums(np.array([0.55, 0.95]), np.array([1, 0]), n_bins=4))

    np.testing.assert_allclose(mapping.values, [0.5, 0.5, 0.5, 0.5])  # pooled: 1 then 0


def test_a_map_fitted_on_other_bins_is_refused(pooled: Rows) -> None:
    mapping = BinwiseMap(values=np.linspace(0.0, 1.0, 5))
    with pytest.raises(ValueError, match="fitted on 5 bins; the sums have 10"):
        brier_change(calibration_sums(*pooled), mapping)


def test_platt_scaling_is_a_weighted_logistic_fit_of_the_bins(total: CalibrationSums) -> None:
    mapping = fit_platt(total)

    filled = total.count > 0
    mean_predicted = total.predicted[filled] / total.count[filled]
    logit = np.log(mean_predicted / (1 - mean_predicted))
    features = np.concatenate([logit, logit])[:, None]
    targets = np.concatenate([np.ones(logit.size), np.zeros(logit.size)])
    weights = np.concatenate([total.observed[filled], (total.count - total.observed)[filled]])
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(
        features, targets, sample_weight=weights
    )

    assert mapping.slope == pytest.approx(reference.coef_[0, 0], abs=1e-6)
    assert mapping.intercept == pytest.approx(reference.intercept_[0], abs=1e-6)


def test_platt_scaling_is_monotone_and_its_brier_is_estimated_closely(
    pooled: Rows, total: CalibrationSums
) -> None:
    predicted, outcomes = pooled
    mapping = fit_platt(total)

    grid = np.linspace(0.0, 1.0, 1001)
    change = brier_change(total, mapping)

    assert isinstance(mapping, PlattMap) and mapping.slope > 0
    assert np.all(np.diff(mapping(grid)) >= 0)
    assert not change.exact
    exact_after = np.mean((mapping(predicted) - outcomes) ** 2)
    assert change.after == pytest.approx(exact_after, abs=1e-4)
    assert change.after < change.before


def test_platt_scaling_converges_where_the_optimiser_cannot_improve_in_float64() -> None:
    """A one-round run's bins: scipy's trust-exact stops with a gradient of 2e-9 (above
    its 1e-10 target) as no float64 step improves the objective; that is the optimum."""
    count = np.array([69.0, 3717.0, 1166.0, 393.0, 209.0, 179.0, 162.0, 54.0, 0.0, 0.0])
    observed = np.array([2.0, 427.0, 302.0, 170.0, 126.0, 112.0, 112.0, 43.0, 0.0, 0.0])
    mean_predicted = np.array(
        [
            0.0945289160894311,
            0.1486588880792561,
            0.24245567417880887,
            0.34294269050047294,
            0.4451374206246371,
            0.550379155401411,
            0.6476510288538756,
            0.7215239096570898,
        ]
    )
    predicted = np.append(mean_predicted * count[:8], [0.0, 0.0])
    sums = CalibrationSums(
        count=count,
        predicted=predicted,
        observed=observed,
        predicted_squares=predicted**2 / np.maximum(count, 1.0),
        predicted_observed=predicted * observed / np.maximum(count, 1.0),
    )

    mapping = fit_platt(sums)

    logit = np.log(mean_predicted / (1 - mean_predicted))
    fitted = 1 / (1 + np.exp(-(mapping.slope * logit + mapping.intercept)))
    gradient = [((count[:8] * fitted - observed[:8]) * x).sum() for x in (logit, 1.0)]
    assert np.abs(gradient).max() / count.sum() < 1e-7


def test_platt_scaling_needs_both_outcomes() -> None:
    sums = calibration_sums(np.array([0.1, 0.4, 0.8]), np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="needs defaults and non-defaults; got 0 defaults"):
        fit_platt(sums)

"""PSI and CSI from summed bin counts, levels, and the sample-size-aware drift flag."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from credit.governance.stability import (
    EMPTY_SHARE,
    PopulationCounts,
    StabilityLevel,
    characteristic_stability,
    noisy_critical_value,
    population_counts,
    population_from_vector,
    population_stability_index,
    population_vector,
    psi_critical_value,
    stability_level,
    stability_report,
)


def _counts(*values: float) -> PopulationCounts:
    return PopulationCounts(np.array(values, dtype=np.float64))


def test_bank_counts_add_up_to_the_pooled_counts() -> None:
    rng = np.random.default_rng(1)
    indices = rng.integers(0, 8, 1_000)

    banks = [population_counts(part, 8) for part in np.split(indices, [150, 610])]

    np.testing.assert_array_equal(
        PopulationCounts.combine(banks).counts, np.bincount(indices, minlength=8)
    )


@pytest.mark.parametrize(
    ("indices", "message"),
    [([0, 3, 4], "must lie in \\[0, 4\\); got 0 to 4"), ([-1, 2], "got -1 to 2")],
)
def test_bin_indices_outside_the_bins_are_refused(indices: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        population_counts(np.array(indices), 4)


def test_psi_equals_a_direct_computation() -> None:
    rng = np.random.default_rng(2)
    expected = rng.integers(5, 400, 12).astype(np.float64)
    actual = rng.integers(5, 400, 12).astype(np.float64)

    psi = population_stability_index(PopulationCounts(expected), PopulationCounts(actual))

    e, a = expected / expected.sum(), actual / actual.sum()
    assert psi == pytest.approx(np.sum((a - e) * np.log(a / e)), abs=1e-12)


def test_empty_bins_add_nothing_when_empty_in_both_and_use_the_floor_otherwise() -> None:
    expected = _counts(50, 0, 30, 20, 0)
    actual = _counts(40, 0, 0, 50, 10)

    psi = population_stability_index(expected, actual)

    e = np.array([0.5, 0.3, 0.2, EMPTY_SHARE])  # the second bin (empty in both) is left out
    a = np.array([0.4, EMPTY_SHARE, 0.5, 0.1])
    assert psi == pytest.approx(np.sum((a - e) * np.log(a / e)), abs=1e-12)
    assert EMPTY_SHARE == 1e-4
    report = stability_report(expected, actual)
    assert report.bins == 4


def test_identical_distributions_have_zero_psi() -> None:
    assert population_stability_index(_counts(10, 20, 30), _counts(20, 40, 60)) == 0.0


@pytest.mark.parametrize(
    ("psi", "level"),
    [
        (0.0, StabilityLevel.STABLE),
        (float(np.nextafter(0.1, 0.0)), StabilityLevel.STABLE),
        (0.1, StabilityLevel.MONITOR),
        (float(np.nextafter(0.25, 0.0)), StabilityLevel.MONITOR),
        (0.25, StabilityLevel.SHIFT),
        (3.0, StabilityLevel.SHIFT),
    ],
)
def test_levels_follow_the_conventional_thresholds(psi: float, level: StabilityLevel) -> None:
    assert stability_level(psi) is level


def test_the_critical_value_is_the_scaled_chi_square_quantile() -> None:
    critical = psi_critical_value(200, 800, 10, quantile=0.95)

    assert critical == pytest.approx((1 / 200 + 1 / 800) * scipy.stats.chi2.ppf(0.95, 9))
    assert psi_critical_value(200, 800, 10) > critical  # the default quantile is 0.99
    assert psi_critical_value(200, 800, 1) == 0.0
    with pytest.raises(ValueError, match=r"quantile must lie in \(0, 1\); got 1\.0"):
        psi_critical_value(200, 800, 10, quantile=1.0)


def test_drift_needs_the_threshold_and_the_critical_value() -> None:
    # Small samples: a PSI over 0.1 that sampling noise explains is not flagged.
    small = stability_report(_counts(12, 8, 10, 10), _counts(7, 13, 10, 10))
    assert small.level is StabilityLevel.MONITOR
    assert small.psi <= small.critical_value and not small.drift
    # Large samples: a PSI beyond the critical value but under 0.1 is not flagged either.
    large = stability_report(_counts(5_200, 4_800, 5_000), _counts(4_800, 5_200, 5_000))
    assert large.level is StabilityLevel.STABLE
    assert large.psi > large.critical_value and not large.drift
    # Both: flagged.
    both = stability_report(_counts(5_000, 3_000, 2_000), _counts(2_000, 3_000, 5_000))
    assert both.drift and both.level is StabilityLevel.SHIFT
    assert both.as_dict()["level"] == "shift"
    assert (both.expected_rows, both.actual_rows, both.bins) == (10_000, 10_000, 3)


def _flag_rates(
    rng: np.random.Generator, size: int, shares: np.ndarray, repeats: int
) -> tuple[float, float, float]:
    """Shares of repeats at the monitor level or above, significant, and flagged."""
    uniform = np.full(shares.size, 1.0 / shares.size)
    expected = rng.multinomial(size, uniform, size=repeats)
    actual = rng.multinomial(size, shares, size=repeats)
    reports = [
        stability_report(
            PopulationCounts(e.astype(np.float64)), PopulationCounts(a.astype(np.float64))
        )
        for e, a in zip(expected, actual, strict=True)
    ]
    return (
        float(np.mean([r.level is not StabilityLevel.STABLE for r in reports])),
        float(np.mean([r.psi > r.critical_value for r in reports])),
        float(np.mean([r.drift for r in reports])),
    )


def test_without_drift_small_samples_break_the_threshold_but_rarely_the_flag() -> None:
    rng = np.random.default_rng(20240)
    no_drift = np.full(10, 0.1)

    conventional, significant, flagged = _flag_rates(rng, 100, no_drift, repeats=2_000)
    assert conventional > 0.7  # (1/100 + 1/100) * E[chi2(9)] = 0.18 > 0.1
    assert 0.005 <= flagged <= 0.03  # about 1 % (the approximation is a little liberal here)
    # With more rows the chi-square approximation holds: 1 % exceed the critical value.
    _, significant, flagged = _flag_rates(rng, 2_000, no_drift, repeats=2_000)
    assert 0.004 <= significant <= 0.018
    assert flagged == 0.0  # and none reaches 0.1


@pytest.mark.parametrize("size", [100, 10_000])
def test_clear_drift_is_flagged_at_small_and_large_sizes(size: int) -> None:
    rng = np.random.default_rng(size)
    drifted = np.exp(0.4 * np.arange(10))
    drifted /= drifted.sum()  # PSI against uniform shares: 1.06

    _, _, flagged = _flag_rates(rng, size, drifted, repeats=500)

    assert flagged >= 0.99


# -- vectors, noise, characteristics ----------------------------------------------------------


def test_the_vector_round_trips_and_names_its_length() -> None:
    counts = _counts(3, 0, 7)

    np.testing.assert_array_equal(
        PopulationCounts.from_vector(counts.to_vector(), 3).counts, [3, 0, 7]
    )
    with pytest.raises(ValueError, match="of 4 bins has 4 entries; got shape \\(3,\\)"):
        PopulationCounts.from_vector(counts.to_vector(), 4)


def test_several_characteristics_share_one_vector() -> None:
    counts = {"LIMIT_BAL": _counts(1, 2, 3), "PAY_0": _counts(4, 5), "AGE": _counts(6)}

    vector = population_vector(counts, ["LIMIT_BAL", "PAY_0", "AGE"])
    back = population_from_vector(vector, {"LIMIT_BAL": 3, "PAY_0": 2, "AGE": 1})

    np.testing.assert_array_equal(vector, [1, 2, 3, 4, 5, 6])
    assert list(back) == ["LIMIT_BAL", "PAY_0", "AGE"]
    np.testing.assert_array_equal(back["PAY_0"].counts, [4, 5])
    with pytest.raises(ValueError, match="of 2 characteristics has 5 entries"):
        population_from_vector(vector, {"LIMIT_BAL": 3, "PAY_0": 2})


def test_noisy_summed_counts_are_clipped_at_zero() -> None:
    noisy = _counts(40.2, -1.5, 30.0, 29.3)

    report = stability_report(noisy, _counts(30, 0.4, 40, 30))

    np.testing.assert_allclose(noisy.settled().counts, [40.2, 0.0, 30.0, 29.3])
    assert report.expected_rows == pytest.approx(99.5)
    assert report.bins == 4  # 0.4 rows in the second bin: occupied


def test_a_sample_without_rows_has_no_psi() -> None:
    with pytest.raises(ValueError, match="the actual sample holds no rows"):
        stability_report(_counts(5, 5), _counts(-1, 0.2))
    with pytest.raises(ValueError, match="different bins: 2 vs 3"):
        population_stability_index(_counts(5, 5), _counts(1, 2, 3))


def test_csi_reports_each_characteristic() -> None:
    expected = {"PAY_0": _counts(500, 300, 200), "LIMIT_BAL": _counts(100, 100)}
    actual = {"PAY_0": _counts(200, 300, 500), "LIMIT_BAL": _counts(101, 99)}

    reports = characteristic_stability(expected, actual)

    assert list(reports) == ["PAY_0", "LIMIT_BAL"]
    assert reports["PAY_0"].drift and not reports["LIMIT_BAL"].drift
    assert reports["LIMIT_BAL"].psi == population_stability_index(
        expected["LIMIT_BAL"], actual["LIMIT_BAL"]
    )
    with pytest.raises(ValueError, match="different characteristics: \\['AGE'\\]"):
        characteristic_stability(expected, {**actual, "AGE": _counts(1)})


def test_the_noisy_critical_value_without_noise_is_close_to_the_chi_square_one() -> None:
    share = np.full(8, 1 / 8)
    zeros = np.zeros(8)

    critical = noisy_critical_value(
        share, 1_000, 400, expected_variance=zeros, actual_variance=zeros, quantile=0.95
    )

    assert critical == pytest.approx(psi_critical_value(1_000, 400, 8, 0.95), rel=0.1)


def test_noise_aware_flag_holds_its_false_alarm_rate_under_dp_noise() -> None:
    """With Gaussian noise on every count and no drift, PSI passes the critical value about
    1 - q of the time (the plain chi-square one would be passed almost always)."""
    rng = np.random.default_rng(11)
    share = np.array([0.3, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02])
    n, m, deviation = 5_000, 2_000, 40.0
    variance = np.full(share.size, deviation**2)
    expected_variance, actual_variance = variance, variance / 4
    critical = noisy_critical_value(
        share, n, m, expected_variance=expected_variance, actual_variance=actual_variance
    )
    passed = plain = 0
    trials = 2_000
    for _ in range(trials):
        expected = rng.multinomial(n, share) + rng.normal(0, deviation, share.size)
        actual = rng.multinomial(m, share) + rng.normal(0, deviation / 2, share.size)
        psi = population_stability_index(
            PopulationCounts(expected.astype(float)), PopulationCounts(actual.astype(float))
        )
        passed += psi > critical
        plain += psi > psi_critical_value(n, m, share.size)

    assert passed / trials < 0.03
    assert plain / trials > 0.5
    report = stability_report(
        PopulationCounts(share * n),
        PopulationCounts(share * m),
        expected_variance=expected_variance,
        actual_variance=actual_variance,
    )
    assert report.critical_value == pytest.approx(critical, rel=1e-9)

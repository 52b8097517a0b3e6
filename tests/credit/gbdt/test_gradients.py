"""Quantised logistic gradients: bounds, values, base score, row sampling."""

from __future__ import annotations

import numpy as np
import pytest

from credit.gbdt import (
    GRADIENT_SCALE,
    base_margin,
    base_score_from_counts,
    quantise_gradients,
    sample_rows,
)


def test_quantised_values_are_rounded_scaled_gradients() -> None:
    margins = np.array([0.0, 2.0, -3.0, 40.0, -40.0])
    labels = np.array([1, 0, 1, 0, 1])
    quantised = quantise_gradients(margins, labels)
    p = 1.0 / (1.0 + np.exp(-margins))
    np.testing.assert_array_equal(quantised.gradients, np.rint((p - labels) * GRADIENT_SCALE))
    np.testing.assert_array_equal(quantised.hessians, np.rint(p * (1 - p) * GRADIENT_SCALE))
    assert quantised.gradients.dtype == np.int64
    assert quantised.gradients[0] == -GRADIENT_SCALE // 2 and quantised.hessians[0] == (
        GRADIENT_SCALE // 4
    )


def test_quantised_values_stay_within_the_logistic_bounds() -> None:
    rng = np.random.default_rng(3)
    quantised = quantise_gradients(rng.normal(scale=30.0, size=5000), rng.integers(0, 2, 5000))
    assert np.abs(quantised.gradients).max() <= GRADIENT_SCALE
    assert quantised.hessians.min() >= 0 and quantised.hessians.max() <= GRADIENT_SCALE // 4


def test_labels_other_than_zero_or_one_are_refused() -> None:
    with pytest.raises(ValueError, match=r"labels must be 0 or 1; got \[0, 2\]"):
        quantise_gradients(np.zeros(2), np.array([0, 2]))


def test_base_score_is_the_float32_default_rate() -> None:
    score = base_score_from_counts(221, 1000)
    assert score == float(np.float32(0.221))
    assert base_margin(score) == pytest.approx(np.log(0.221 / 0.779), abs=1e-6)
    assert 0.0 < base_score_from_counts(0, 10) < 1e-5


def test_base_score_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="got 11 of 10"):
        base_score_from_counts(11, 10)


def test_full_sampling_draws_nothing() -> None:
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    assert sample_rows(100, 1.0, rng).all()
    assert rng.bit_generator.state == state
    assert 30 < int(sample_rows(100, 0.5, rng).sum()) < 70

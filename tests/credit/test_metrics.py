"""Histogram-based credit metrics against scikit-learn on the pooled scores.

Banks release only score histograms and loss sums (credit.metrics); these tests split
pooled scores into banks, summarise each, combine, and check that the resulting
metrics agree with scikit-learn computed on every pooled score.

Threshold convention checked here: a score exactly on a bin edge belongs to the bin
above it, so at threshold 0.5 a score of exactly 0.5 is predicted "default".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.metrics import brier_score_loss, f1_score, log_loss, roc_auc_score, roc_curve

from credit.metrics import (
    DEFAULT_SCORE_BINS,
    EVALUATION_SENSITIVITY,
    LOG_LOSS_BOUND,
    SUM_WEIGHT,
    CreditMetrics,
    ScoreSummary,
    credit_metrics,
    evaluation_from_sum,
    evaluation_vector,
    histogram_auc,
    score_bin_index,
    summarize_scores,
)

Scores = tuple[NDArray[np.float64], NDArray[np.int64]]
PROBABILITY_FLOOR = 1e-3


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


def _sigmoid_normal_scores(seed: int, n: int = 20_000) -> Scores:
    """Continuous scores: sigmoid of normals whose mean depends on the class."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.22).astype(np.int64)
    logits = rng.normal(np.where(labels == 1, 0.2, -1.6), 1.3)
    return _sigmoid(logits), labels


def _embedded_scores(frame: pd.DataFrame) -> Scores:
    """A hand-set logistic score on the embedded data: few distinct values, many ties."""
    pay = frame["PAY_0"].to_numpy(dtype=np.float64)
    limit = np.arcsinh(frame["LIMIT_BAL"].to_numpy(dtype=np.float64))
    scores = _sigmoid(-1.4 + 0.75 * pay - 0.35 * (limit - 12.0))
    return scores, frame["default_payment_next_month"].to_numpy(dtype=np.int64)


@pytest.fixture(params=["normal-0", "normal-1", "normal-2", "embedded"])
def pooled(request: pytest.FixtureRequest, embedded_frame: pd.DataFrame) -> Scores:
    if request.param == "embedded":
        return _embedded_scores(embedded_frame)
    return _sigmoid_normal_scores(int(request.param.split("-")[1]))


def _split_into_banks(n: int, n_banks: int, seed: int) -> list[NDArray[np.int64]]:
    """Row indices of ``n_banks`` banks of unequal (random) sizes."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_banks - 1, replace=False))
    return np.split(rng.permutation(n), cuts)


def _bank_summaries(scores: Scores, n_banks: int = 5, seed: int = 7) -> list[ScoreSummary]:
    values, labels = scores
    return [
        summarize_scores(values[rows], labels[rows], DEFAULT_SCORE_BINS)
        for rows in _split_into_banks(values.size, n_banks, seed)
    ]


def _exact_best_f1(scores: NDArray[np.float64], labels: NDArray[np.int64]) -> float:
    """Best F1 of the rule "score >= t" over every threshold t (exact, ties respected)."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], labels[order]
    true_pos = np.cumsum(hits)
    predicted = np.arange(1, scores.size + 1)
    # Only cut after the last row of a group of tied scores.
    ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    f1 = 2 * true_pos[ends] / (predicted[ends] + labels.sum())
    return float(max(f1.max(), 0.0))


def test_combined_banks_match_sklearn_on_pooled_scores(pooled: Scores) -> None:
    scores, labels = pooled
    metrics = credit_metrics(ScoreSummary.combine(_bank_summaries(pooled)))

    assert metrics.auc == pytest.approx(roc_auc_score(labels, scores), abs=0.002)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert metrics.ks == pytest.approx(np.max(np.abs(tpr - fpr)), abs=0.002)
    assert metrics.brier == pytest.approx(brier_score_loss(labels, scores), rel=1e-9)
    # The log loss is bounded: scores are clipped to [1e-3, 1 - 1e-3] first.
    clipped = np.clip(scores, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    assert metrics.log_loss == pytest.approx(log_loss(labels, clipped), rel=1e-9)
    assert metrics.accuracy == np.mean((scores >= 0.5) == labels)
    assert metrics.gini == 2 * metrics.auc - 1
    assert metrics.n_rows == scores.size
    assert metrics.default_rate == pytest.approx(labels.mean(), rel=1e-12)


def test_f1_is_close_to_the_exact_best_and_reached_at_its_threshold(pooled: Scores) -> None:
    scores, labels = pooled
    metrics = credit_metrics(ScoreSummary.combine(_bank_summaries(pooled)))
    best = _exact_best_f1(scores, labels)

    # Bin edges are a subset of all thresholds: never better, at most 0.01 worse.
    assert best - 0.01 <= metrics.f1 <= best + 1e-12
    reached = f1_score(labels, (scores >= metrics.f1_threshold).astype(np.int64))
    assert metrics.f1 == pytest.approx(reached, abs=1e-12)
    assert 0.0 <= metrics.f1_threshold < 1.0


def test_combining_banks_equals_summarising_pooled_scores(pooled: Scores) -> None:
    scores, labels = pooled
    combined = ScoreSummary.combine(_bank_summaries(pooled, n_banks=6, seed=11))
    whole = summarize_scores(scores, labels)

    np.testing.assert_array_equal(combined.positives, whole.positives)
    np.testing.assert_array_equal(combined.negatives, whole.negatives)
    for histogram in (combined.positives, combined.negatives):  # whole counts, as reals
        assert histogram.dtype == np.float64
        np.testing.assert_array_equal(histogram, np.round(histogram))
    assert combined.n_rows == whole.n_rows == scores.size
    assert combined.brier_sum == pytest.approx(whole.brier_sum, rel=1e-12)
    assert combined.log_loss_sum == pytest.approx(whole.log_loss_sum, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.tuples(st.floats(0.0, 1.0, allow_nan=False), st.booleans()), min_size=1, max_size=80
    ),
    cut_fractions=st.lists(st.floats(0.0, 1.0), max_size=5),
    n_bins=st.sampled_from([2, 10, 100, 10_000]),
)
def test_any_split_combines_to_the_pooled_summary(
    values: list[tuple[float, bool]], cut_fractions: list[float], n_bins: int
) -> None:
    scores = np.array([v[0] for v in values])
    labels = np.array([int(v[1]) for v in values])
    cuts = sorted(int(f * scores.size) for f in cut_fractions)
    parts = [
        summarize_scores(s, y, n_bins)
        for s, y in zip(np.split(scores, cuts), np.split(labels, cuts), strict=True)
    ]
    combined = ScoreSummary.combine(parts)
    whole = summarize_scores(scores, labels, n_bins)

    np.testing.assert_array_equal(combined.positives, whole.positives)
    np.testing.assert_array_equal(combined.negatives, whole.negatives)
    assert combined.brier_sum == pytest.approx(whole.brier_sum, rel=1e-12, abs=1e-12)
    assert combined.log_loss_sum == pytest.approx(whole.log_loss_sum, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_bins=st.sampled_from([2, 4, 10, 100]),
    size=st.integers(2, 60),
)
def test_scores_at_bin_centres_give_exact_metrics(
    data: st.DataObject, n_bins: int, size: int
) -> None:
    """When each bin holds one distinct score, histogram metrics are exact (ties included)."""
    cells = np.array(data.draw(st.lists(st.integers(0, n_bins - 1), min_size=size, max_size=size)))
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=size, max_size=size)))
    labels[0], labels[1] = 0, 1  # both classes present
    scores = (cells + 0.5) / n_bins

    metrics = credit_metrics(summarize_scores(scores, labels, n_bins))

    assert metrics.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    assert metrics.ks == pytest.approx(np.max(np.abs(tpr - fpr)), abs=1e-12)
    assert metrics.accuracy == np.mean((scores >= 0.5) == labels)
    assert metrics.f1 == pytest.approx(_exact_best_f1(scores, labels), abs=1e-12)


@pytest.mark.parametrize(("first_label", "second_label", "expected"), [(1, 0, 1.0), (0, 1, 0.0)])
def test_score_of_exactly_one_half_is_predicted_default(
    first_label: int, second_label: int, expected: float
) -> None:
    just_below = np.nextafter(0.5, 0.0)
    scores = np.array([0.5, just_below])
    labels = np.array([first_label, second_label])

    metrics = credit_metrics(summarize_scores(scores, labels))

    assert metrics.accuracy == expected
    assert metrics.accuracy == np.mean((scores >= 0.5) == labels)


@pytest.mark.parametrize("label", [0, 1])
def test_summary_with_one_class_is_rejected(label: int) -> None:
    rng = np.random.default_rng(3)
    summary = summarize_scores(rng.random(50), np.full(50, label))

    with pytest.raises(ValueError, match="metrics need both classes"):
        credit_metrics(summary)


@pytest.mark.parametrize("n_bins", [0, 1, 3, 9_999])
def test_odd_or_too_few_bins_are_rejected(n_bins: int) -> None:
    with pytest.raises(ValueError, match="n_bins must be an even number >= 2"):
        summarize_scores(np.array([0.1, 0.9]), np.array([0, 1]), n_bins)


def test_histogram_auc_needs_both_classes() -> None:
    assert histogram_auc(np.array([0.0, 2.0]), np.array([3.0, 1.0])) == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match="AUC needs both classes; got 0 defaulters"):
        histogram_auc(np.array([0.2, 0.1]), np.array([3.0, 1.0]))


def test_score_bins_are_closed_on_the_left_and_the_last_holds_one() -> None:
    scores = np.array([-0.5, 0.0, 0.0999, 0.1, 0.5, 0.99, 1.0, 1.5])

    np.testing.assert_array_equal(score_bin_index(scores, 10), [0, 0, 0, 1, 5, 9, 9, 9])


def test_scores_and_labels_of_different_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="scores and labels differ in shape"):
        summarize_scores(np.array([0.1, 0.2, 0.3]), np.array([0, 1]))


def test_summaries_with_different_bin_counts_do_not_combine() -> None:
    scores, labels = np.array([0.2, 0.7]), np.array([0, 1])
    parts = [summarize_scores(scores, labels, 10), summarize_scores(scores, labels, 20)]

    with pytest.raises(ValueError, match="score histograms differ in length: 10 vs 20"):
        ScoreSummary.combine(parts)


def test_histograms_of_different_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive and negative histograms differ in length"):
        ScoreSummary(
            positives=np.zeros(4, dtype=np.int64),
            negatives=np.zeros(6, dtype=np.int64),
            brier_sum=0.0,
            log_loss_sum=0.0,
        )


def test_combining_nothing_is_rejected() -> None:
    with pytest.raises(ValueError, match="no score summaries to combine"):
        ScoreSummary.combine([])


def test_metrics_round_trip_through_a_plain_dict() -> None:
    metrics = credit_metrics(ScoreSummary.combine(_bank_summaries(_sigmoid_normal_scores(5))))

    assert CreditMetrics.from_dict(metrics.as_dict()) == metrics
    with pytest.raises(TypeError, match="metric 'auc'"):
        CreditMetrics.from_dict({**metrics.as_dict(), "auc": "high"})


# -- bounded releases: the evaluation vector ------------------------------------------


def test_the_log_loss_of_one_row_is_bounded_by_ln_1000() -> None:
    scores = np.array([0.0, 1.0, 1e-9, 1 - 1e-9])
    labels = np.array([1, 0, 1, 0])  # each as wrong as a score can be

    summary = summarize_scores(scores, labels)

    assert np.exp(LOG_LOSS_BOUND) == pytest.approx(1000.0)
    assert summary.log_loss_sum == pytest.approx(4 * LOG_LOSS_BOUND, rel=1e-12)
    assert summary.brier_sum <= 4.0


def _noisy(summary: ScoreSummary, seed: int, scale: float = 3.0) -> ScoreSummary:
    """``summary`` plus Gaussian noise on every entry, as a bank under a budget adds."""
    vector = summary.to_vector()
    noise = np.random.default_rng(seed).normal(0.0, scale, vector.size)
    return ScoreSummary.from_vector(vector + noise, summary.positives.size)


def test_the_evaluation_vector_round_trips(pooled: Scores) -> None:
    summary = _noisy(ScoreSummary.combine(_bank_summaries(pooled)), seed=1)
    bins = summary.positives.size
    assert np.any(summary.to_vector()[:-2] < 0)  # noisy counts: reals, some below zero

    vector = summary.to_vector()
    restored = ScoreSummary.from_vector(vector, bins)

    assert vector.shape == (2 * bins + 2,)
    np.testing.assert_array_equal(vector[:bins], summary.positives)
    np.testing.assert_array_equal(vector[bins : 2 * bins], summary.negatives)
    assert vector[-2] == summary.brier_sum * SUM_WEIGHT
    assert vector[-1] == pytest.approx(
        summary.log_loss_sum / LOG_LOSS_BOUND * SUM_WEIGHT, rel=1e-15
    )
    np.testing.assert_array_equal(restored.positives, summary.positives)
    np.testing.assert_array_equal(restored.negatives, summary.negatives)
    assert restored.brier_sum == summary.brier_sum
    assert restored.log_loss_sum == pytest.approx(summary.log_loss_sum, rel=1e-15)
    with pytest.raises(ValueError, match="an evaluation vector of 100 bins has 202 entries"):
        ScoreSummary.from_vector(vector[:-1], 100)


def test_the_summed_evaluation_vectors_are_the_combined_summary_and_count_the_banks(
    pooled: Scores,
) -> None:
    """What secure aggregation sums: each bank's vector and a 1; zeros for a bank that
    releases nothing (not asked, or declined)."""
    summaries = _bank_summaries(pooled)
    bins = summaries[0].positives.size
    vectors = [evaluation_vector(s, bins) for s in summaries] + [evaluation_vector(None, bins)]
    assert all(v.shape == (2 * bins + 3,) for v in vectors)
    assert [v[-1] for v in vectors] == [1.0] * len(summaries) + [0.0]
    assert not np.any(vectors[-1])

    total, banks = evaluation_from_sum(np.sum(vectors, axis=0), bins)

    assert banks == len(summaries)
    assert total is not None
    expected = ScoreSummary.combine(summaries)
    np.testing.assert_array_equal(total.positives, expected.positives)
    np.testing.assert_array_equal(total.negatives, expected.negatives)
    assert total.brier_sum == pytest.approx(expected.brier_sum, rel=1e-12)
    assert total.log_loss_sum == pytest.approx(expected.log_loss_sum, rel=1e-12)
    assert credit_metrics(total).auc == pytest.approx(credit_metrics(expected).auc, abs=1e-12)


def test_a_sum_of_no_banks_evaluation_is_none() -> None:
    assert evaluation_from_sum(evaluation_vector(None, 10) * 3, 10) == (None, 0)


def test_an_evaluation_vector_of_other_bins_is_refused() -> None:
    summary = summarize_scores(np.array([0.2, 0.7]), np.array([0, 1]), 10)
    with pytest.raises(ValueError, match="the summary has 10 bins, not 20"):
        evaluation_vector(summary, 20)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.tuples(st.floats(0.0, 1.0, allow_nan=False), st.booleans()), min_size=1, max_size=40
    ),
    extra=st.tuples(st.floats(0.0, 1.0, allow_nan=False), st.booleans()),
    n_bins=st.sampled_from([2, 10, 100]),
)
def test_one_row_moves_the_evaluation_vector_by_at_most_the_sensitivity(
    values: list[tuple[float, bool]], extra: tuple[float, bool], n_bins: int
) -> None:
    """The L2 sensitivity a bank's noise is calibrated to (add or remove one row)."""
    scores = np.array([v[0] for v in values])
    labels = np.array([int(v[1]) for v in values])
    without = summarize_scores(scores, labels, n_bins).to_vector()
    with_row = summarize_scores(
        np.append(scores, extra[0]), np.append(labels, int(extra[1])), n_bins
    ).to_vector()

    assert np.linalg.norm(with_row - without) <= EVALUATION_SENSITIVITY + 1e-9


def test_the_sensitivity_is_reached_by_a_confidently_wrong_row() -> None:
    """A defaulter scored 0 adds 1 to a bin, 1 to the Brier sum and ln 1000 to the log
    loss: the bound is tight, and the sums weigh a quarter of a count each."""
    base = (np.array([0.3, 0.6]), np.array([0, 1]))
    without = summarize_scores(*base, 10).to_vector()
    with_row = summarize_scores(np.append(base[0], 0.0), np.append(base[1], 1), 10).to_vector()

    assert SUM_WEIGHT == 0.25
    assert pytest.approx(np.sqrt(1.125)) == EVALUATION_SENSITIVITY
    assert np.linalg.norm(with_row - without) == pytest.approx(EVALUATION_SENSITIVITY)
    summary = ScoreSummary.from_vector(with_row, 10)
    assert summary.brier_sum == pytest.approx(0.3**2 + 0.4**2 + 1.0)


def test_metrics_of_a_noisy_summary_clip_counts_at_zero_and_sums_at_their_bounds() -> None:
    exact = summarize_scores(*_sigmoid_normal_scores(2, n=4_000))
    noisy = _noisy(exact, seed=5, scale=2.0)
    assert np.any(noisy.positives < 0) and np.any(noisy.negatives < 0)

    metrics = credit_metrics(noisy)
    clipped = credit_metrics(
        ScoreSummary(
            positives=np.clip(noisy.positives, 0, None),
            negatives=np.clip(noisy.negatives, 0, None),
            brier_sum=noisy.brier_sum,
            log_loss_sum=noisy.log_loss_sum,
        )
    )

    assert metrics == clipped  # negative noisy counts count as none
    assert metrics.auc == pytest.approx(credit_metrics(exact).auc, abs=0.01)
    assert metrics.n_rows == pytest.approx(exact.n_rows, abs=60)
    huge = ScoreSummary(
        positives=noisy.positives,
        negatives=noisy.negatives,
        brier_sum=-50.0,
        log_loss_sum=1e9,
    )
    assert credit_metrics(huge).brier == 0.0
    assert credit_metrics(huge).log_loss == LOG_LOSS_BOUND


def test_noise_that_leaves_one_class_empty_is_rejected() -> None:
    negatives = np.zeros(10)
    negatives[3] = 40.0
    positives = np.full(10, -0.2)
    positives[7] = 0.4  # less than half a row in all: no defaulters
    summary = ScoreSummary(
        positives=positives, negatives=negatives, brier_sum=3.0, log_loss_sum=9.0
    )
    with pytest.raises(ValueError, match="metrics need both classes"):
        credit_metrics(summary)

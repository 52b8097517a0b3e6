"""ROC, KS and score distribution from summed histograms agree with the run's metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from coordinator.app.report.curves import ks_curve, roc_curve, score_distribution
from credit.metrics import credit_metrics, summarize_scores


def _rows(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.22).astype(np.int64)
    scores = np.clip(rng.beta(2, 6, n) + 0.25 * labels * rng.random(n), 0, 1)
    return scores, labels


@pytest.mark.parametrize(("seed", "bins"), [(0, 100), (1, 10), (2, 1000)])
def test_roc_area_and_ks_equal_the_runs_metrics(seed: int, bins: int) -> None:
    scores, labels = _rows(seed)
    summary = summarize_scores(scores, labels, n_bins=bins)
    metrics = credit_metrics(summary)
    roc = roc_curve(summary.positives, summary.negatives)
    ks = ks_curve(summary.positives, summary.negatives)
    assert roc.auc == pytest.approx(metrics.auc, abs=1e-12)
    assert ks.ks == pytest.approx(metrics.ks, abs=1e-12)
    # The curves run from corner to corner, monotone.
    assert (roc.false_positive_rate[0], roc.true_positive_rate[0]) == (0.0, 0.0)
    assert roc.false_positive_rate[-1] == pytest.approx(1.0)
    assert roc.true_positive_rate[-1] == pytest.approx(1.0)
    assert np.all(np.diff(roc.true_positive_rate) >= 0)
    assert np.all(np.diff(ks.defaulters) >= 0) and np.all(np.diff(ks.non_defaulters) >= 0)
    widest = np.abs(ks.defaulters - ks.non_defaulters)
    assert widest[np.searchsorted(ks.thresholds, ks.threshold)] == pytest.approx(ks.ks)
    if bins == 1000:  # ties within a bin are rare: the exact AUC
        assert roc.auc == pytest.approx(roc_auc_score(labels, scores), abs=2e-3)


@pytest.mark.parametrize(("bins", "shown"), [(100, 50), (30, 30), (1000, 50), (7, 7)])
def test_the_score_distribution_merges_fine_histograms_into_whole_shares(
    bins: int, shown: int
) -> None:
    scores, labels = _rows(3)
    summary = summarize_scores(scores, labels, n_bins=bins) if bins % 2 == 0 else None
    positives = summary.positives if summary else np.arange(1.0, bins + 1)
    negatives = summary.negatives if summary else np.arange(bins, 0.0, -1)
    distribution = score_distribution(positives, negatives)
    assert distribution.edges[0] == 0.0 and distribution.edges[-1] == 1.0
    assert distribution.edges.size == shown + 1
    assert np.all(np.diff(distribution.edges) > 0)
    assert distribution.defaulters.sum() == pytest.approx(1.0)
    assert distribution.non_defaulters.sum() == pytest.approx(1.0)
    # Each merged bar holds exactly the rows of the bins between its edges.
    cut = np.round(distribution.edges * bins).astype(int)
    for index in range(shown):
        part = positives[cut[index] : cut[index + 1]].sum() / positives.sum()
        assert distribution.defaulters[index] == pytest.approx(part)


def test_noisy_negative_counts_are_clipped_and_one_class_is_refused() -> None:
    roc = roc_curve([-2.0, 3.0, 5.0], [4.0, 1.0, -1.0])
    assert roc.true_positive_rate[-1] == pytest.approx(1.0)
    assert roc.auc == pytest.approx(roc_curve([0.0, 3.0, 5.0], [4.0, 1.0, 0.0]).auc)
    with pytest.raises(ValueError, match="need both classes; got 0 defaulters"):
        ks_curve([0.0, -1.0], [3.0, 4.0])
    with pytest.raises(ValueError, match=r"same length; got shapes \(2,\) and \(3,\)"):
        roc_curve([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="max_bins must be >= 1; got 0"):
        score_distribution([1.0, 2.0], [2.0, 1.0], max_bins=0)

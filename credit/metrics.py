"""Credit metrics computed from aggregates that banks can release instead of scores.

Each bank bins its test scores into a fine histogram, separately for defaulters and
non-defaulters, and adds the per-row Brier and log-loss sums. Histograms and sums add
up exactly across banks, so the coordinator computes the pooled metrics without
seeing one score. AUC and KS from histograms differ from the exact values only
through ties inside one bin: with 10,000 bins on [0, 1] the difference is far below
0.002 on this data (tested against scikit-learn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CreditMetrics", "ScoreSummary", "credit_metrics", "summarize_scores"]

DEFAULT_SCORE_BINS = 10_000
MAX_SCORE_BINS = 1_000_000
"""Finest score histogram a bank releases (a coordinator asking for more is refused)."""
_PROBABILITY_FLOOR = 1e-7


@dataclass(frozen=True)
class ScoreSummary:
    """What one bank (or the consortium, after summing) releases about its test scores.

    Attributes
    ----------
    positives, negatives : numpy.ndarray of int64
        Counts of defaulters / non-defaulters per score bin, equal-width on [0, 1].
    brier_sum : float
        Sum over rows of ``(score - label) ** 2``.
    log_loss_sum : float
        Sum over rows of the binary cross-entropy (scores clipped to [1e-7, 1 - 1e-7]).
    """

    positives: NDArray[np.int64]
    negatives: NDArray[np.int64]
    brier_sum: float
    log_loss_sum: float

    def __post_init__(self) -> None:
        if self.positives.shape != self.negatives.shape:
            raise ValueError("positive and negative histograms differ in length")

    def __add__(self, other: ScoreSummary) -> ScoreSummary:
        if self.positives.shape != other.positives.shape:
            raise ValueError(
                "score histograms differ in length: "
                f"{self.positives.size} vs {other.positives.size}"
            )
        return ScoreSummary(
            positives=self.positives + other.positives,
            negatives=self.negatives + other.negatives,
            brier_sum=self.brier_sum + other.brier_sum,
            log_loss_sum=self.log_loss_sum + other.log_loss_sum,
        )

    @property
    def n_rows(self) -> int:
        """Number of scored rows."""
        return int(self.positives.sum() + self.negatives.sum())

    @classmethod
    def combine(cls, parts: Sequence[ScoreSummary]) -> ScoreSummary:
        """Sum the summaries of several banks."""
        if not parts:
            raise ValueError("no score summaries to combine")
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total


def summarize_scores(
    scores: NDArray[np.floating], labels: NDArray[np.integer], n_bins: int = DEFAULT_SCORE_BINS
) -> ScoreSummary:
    """Summarise one bank's predicted default probabilities and true labels.

    Parameters
    ----------
    scores : numpy.ndarray
        Predicted probabilities in [0, 1].
    labels : numpy.ndarray
        True labels in {0, 1}.
    n_bins : int, default 10,000
        Number of equal-width score bins; use an even number so 0.5 is a bin edge.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in shape: {scores.shape} vs {labels.shape}")
    if n_bins < 2 or n_bins % 2:
        raise ValueError(f"n_bins must be an even number >= 2; got {n_bins}")
    bins = np.minimum((np.clip(scores, 0.0, 1.0) * n_bins).astype(np.int64), n_bins - 1)
    positive = labels == 1
    clipped = np.clip(scores, _PROBABILITY_FLOOR, 1.0 - _PROBABILITY_FLOOR)
    log_loss = -(np.where(positive, np.log(clipped), np.log1p(-clipped)))
    return ScoreSummary(
        positives=np.bincount(bins[positive], minlength=n_bins).astype(np.int64),
        negatives=np.bincount(bins[~positive], minlength=n_bins).astype(np.int64),
        brier_sum=float(np.square(scores - labels).sum()),
        log_loss_sum=float(log_loss.sum()),
    )


@dataclass(frozen=True)
class CreditMetrics:
    """Discrimination, calibration and classification metrics of a score.

    ``accuracy`` is at threshold 0.5; ``f1`` is the best F1 over bin-edge thresholds,
    reached at ``f1_threshold``. ``gini = 2 * auc - 1``.
    """

    auc: float
    ks: float
    gini: float
    brier: float
    log_loss: float
    accuracy: float
    f1: float
    f1_threshold: float
    n_rows: int
    default_rate: float

    def as_dict(self) -> dict[str, int | float | list[int] | list[float]]:
        """Plain dictionary for JSON and Flower MetricRecords."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> CreditMetrics:
        """Inverse of :meth:`as_dict` (e.g. from an aggregated MetricRecord)."""
        fields = {}
        for name in cls.__dataclass_fields__:
            value = values[name]
            if not isinstance(value, int | float):
                raise TypeError(f"metric '{name}' is {value!r}, expected a number")
            fields[name] = int(value) if name == "n_rows" else float(value)
        return cls(**fields)  # type: ignore[arg-type]


def credit_metrics(summary: ScoreSummary) -> CreditMetrics:
    """Compute credit metrics from a (combined) score summary.

    Raises
    ------
    ValueError
        When the summary holds no defaulters or no non-defaulters: AUC and KS are
        undefined then.
    """
    positives = summary.positives.astype(np.float64)
    negatives = summary.negatives.astype(np.float64)
    n_pos, n_neg = positives.sum(), negatives.sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"metrics need both classes; got {int(n_pos)} defaulters "
            f"and {int(n_neg)} non-defaulters"
        )
    n_bins = positives.size
    negatives_below = np.cumsum(negatives) - negatives
    auc = float((positives * (negatives_below + 0.5 * negatives)).sum() / (n_pos * n_neg))
    ks = float(np.max(np.abs(np.cumsum(positives) / n_pos - np.cumsum(negatives) / n_neg)))
    # Predict "default" for bins >= k: true positives and false positives per threshold.
    true_pos = np.cumsum(positives[::-1])[::-1]
    false_pos = np.cumsum(negatives[::-1])[::-1]
    f1_all = 2 * true_pos / (2 * true_pos + false_pos + (n_pos - true_pos))
    best = int(np.argmax(f1_all))
    half = n_bins // 2
    correct = true_pos[half] + (n_neg - false_pos[half])
    n_rows = n_pos + n_neg
    return CreditMetrics(
        auc=auc,
        ks=ks,
        gini=2 * auc - 1,
        brier=summary.brier_sum / n_rows,
        log_loss=summary.log_loss_sum / n_rows,
        accuracy=float(correct / n_rows),
        f1=float(f1_all[best]),
        f1_threshold=best / n_bins,
        n_rows=int(n_rows),
        default_rate=float(n_pos / n_rows),
    )

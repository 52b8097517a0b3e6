"""ROC and KS curves and the score distribution, from summed score histograms.

The final evaluation's histograms (``metrics.json``'s ``score_histograms``: per class,
held-out rows per equal-width score bin on [0, 1]) hold everything these curves
need: the coordinator never sees a score. Thresholds are the bin edges, so the area
under the ROC curve (trapezoids) equals :func:`credit.metrics.histogram_auc` and the
largest gap between the two cumulative distributions equals the run's KS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "KsCurve",
    "RocCurve",
    "ScoreDistribution",
    "ks_curve",
    "roc_curve",
    "score_distribution",
]

DISTRIBUTION_BINS = 50
"""Most bars the score distribution shows (finer histograms are merged into this many)."""


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class RocCurve:
    """True- against false-positive rate, one point per bin edge, from (0, 0) to (1, 1)."""

    false_positive_rate: NDArray[np.float64]
    true_positive_rate: NDArray[np.float64]
    auc: float


@dataclass(frozen=True, eq=False)
class KsCurve:
    """Cumulative share of each class at or below each bin edge, and their largest gap.

    ``ks`` is the gap's size and ``threshold`` the (first) edge where it is reached.
    """

    thresholds: NDArray[np.float64]
    defaulters: NDArray[np.float64]
    non_defaulters: NDArray[np.float64]
    ks: float
    threshold: float


@dataclass(frozen=True, eq=False)
class ScoreDistribution:
    """Share of each class's rows per score bin (``len(edges) - 1`` bins)."""

    edges: NDArray[np.float64]
    defaulters: NDArray[np.float64]
    non_defaulters: NDArray[np.float64]


def _classes(
    defaulters: ArrayLike, non_defaulters: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Both histograms as float arrays (clipped at zero), checked for shape and content."""
    positives = np.clip(np.asarray(defaulters, dtype=np.float64), 0.0, None)
    negatives = np.clip(np.asarray(non_defaulters, dtype=np.float64), 0.0, None)
    if positives.ndim != 1 or positives.shape != negatives.shape or positives.size < 1:
        raise ValueError(
            "score histograms must be two 1-D arrays of the same length; got shapes "
            f"{positives.shape} and {negatives.shape}"
        )
    if positives.sum() < 0.5 or negatives.sum() < 0.5:
        raise ValueError(
            f"score curves need both classes; got {positives.sum():.0f} defaulters and "
            f"{negatives.sum():.0f} non-defaulters"
        )
    return positives, negatives


def roc_curve(defaulters: ArrayLike, non_defaulters: ArrayLike) -> RocCurve:
    """The ROC curve: rows scoring at or above each bin edge are predicted to default.

    Raises
    ------
    ValueError
        Histograms of different lengths, or one class empty.
    """
    positives, negatives = _classes(defaulters, non_defaulters)
    # From the highest edge down: 0 rows above 1.0, then each bin's rows added.
    true_positives = np.concatenate([[0.0], np.cumsum(positives[::-1])])
    false_positives = np.concatenate([[0.0], np.cumsum(negatives[::-1])])
    tpr = true_positives / positives.sum()
    fpr = false_positives / negatives.sum()
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))
    return RocCurve(false_positive_rate=fpr, true_positive_rate=tpr, auc=auc)


def ks_curve(defaulters: ArrayLike, non_defaulters: ArrayLike) -> KsCurve:
    """Both classes' cumulative score distributions at the bin edges, and the KS.

    Raises
    ------
    ValueError
        Histograms of different lengths, or one class empty.
    """
    positives, negatives = _classes(defaulters, non_defaulters)
    thresholds = np.linspace(0.0, 1.0, positives.size + 1)
    below_positive = np.concatenate([[0.0], np.cumsum(positives)]) / positives.sum()
    below_negative = np.concatenate([[0.0], np.cumsum(negatives)]) / negatives.sum()
    gaps = np.abs(below_positive - below_negative)
    widest = int(np.argmax(gaps))
    return KsCurve(
        thresholds=thresholds,
        defaulters=below_positive,
        non_defaulters=below_negative,
        ks=float(gaps[widest]),
        threshold=float(thresholds[widest]),
    )


def score_distribution(
    defaulters: ArrayLike, non_defaulters: ArrayLike, *, max_bins: int = DISTRIBUTION_BINS
) -> ScoreDistribution:
    """Each class's share of rows per score bin, adjacent bins merged to ``max_bins``.

    Parameters
    ----------
    defaulters, non_defaulters : array_like
        Rows per equal-width score bin on [0, 1], per class.
    max_bins : int, default 50
        Most bins shown; histograms with more are merged into ``max_bins`` runs of
        adjacent bins (as equal as the bin count allows). Must be >= 1.

    Raises
    ------
    ValueError
        ``max_bins`` < 1, histograms of different lengths, or one class empty.
    """
    if max_bins < 1:
        raise ValueError(f"max_bins must be >= 1; got {max_bins}")
    positives, negatives = _classes(defaulters, non_defaulters)
    n_bins = positives.size
    shown = min(n_bins, max_bins)
    starts = np.round(np.linspace(0, n_bins, shown + 1)).astype(np.int64)
    merged_positive = np.add.reduceat(positives, starts[:-1])
    merged_negative = np.add.reduceat(negatives, starts[:-1])
    return ScoreDistribution(
        edges=starts / n_bins,
        defaulters=merged_positive / positives.sum(),
        non_defaulters=merged_negative / negatives.sum(),
    )

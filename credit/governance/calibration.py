"""Calibration from per-bin sums: reliability table, expected calibration error, Brier score.

Predicted default probabilities fall into fixed public bins, equal-width on [0, 1]
(:func:`credit.metrics.score_bin_index`: closed on the left, the last bin also on the
right). A bank computes, per bin, the count, the sums of predicted probabilities,
observed defaults, squared predictions and prediction times outcome
(:func:`calibration_sums`); these add up exactly over banks, so the coordinator gets
the pooled reliability table, the expected calibration error and the exact Brier
score from the summed :class:`CalibrationSums` without seeing one prediction.

The same sums carry recalibration fitted on the summed bins
(:mod:`credit.governance.recalibration`).

Noise. Under differential privacy each bank adds noise to its vector, so the sums are
real numbers and may be negative. They are settled once, after summing over banks
(:meth:`CalibrationSums.settled`), never at a bank: clipping each bank's noise would
add up to a bias. The report functions here settle their input themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from credit.metrics import score_bin_index
from credit.summing import sum_of

__all__ = [
    "CALIBRATION_SENSITIVITY",
    "DEFAULT_CALIBRATION_BINS",
    "CalibrationReport",
    "CalibrationSums",
    "ReliabilityBin",
    "brier_score",
    "calibration_report",
    "calibration_sums",
    "settled_rows",
]

DEFAULT_CALIBRATION_BINS = 10
_FIELDS = 5
CALIBRATION_SENSITIVITY = float(np.sqrt(_FIELDS))
"""L2 sensitivity of :meth:`CalibrationSums.to_vector` to adding or removing one row.

One row adds 1 to its bin's count and at most 1 to each of its four sums.
"""
_EMPTY = 0.5
"""A bin whose (settled) count is below half a row is empty."""


@dataclass(frozen=True)
class CalibrationSums:
    """Per-bin sums of one bank (or of the consortium, after summing).

    Attributes
    ----------
    count : numpy.ndarray
        Rows per bin.
    predicted : numpy.ndarray
        Sum of predicted default probabilities ``p`` per bin.
    observed : numpy.ndarray
        Sum of outcomes ``y`` (1 = default) per bin.
    predicted_squares : numpy.ndarray
        Sum of ``p ** 2`` per bin.
    predicted_observed : numpy.ndarray
        Sum of ``p * y`` per bin.

    All arrays have one entry per bin; whole numbers and exact sums at a bank, real
    numbers once a bank added noise.
    """

    count: NDArray[np.float64]
    predicted: NDArray[np.float64]
    observed: NDArray[np.float64]
    predicted_squares: NDArray[np.float64]
    predicted_observed: NDArray[np.float64]

    def __post_init__(self) -> None:
        shapes = {np.shape(array) for array in self._arrays()}
        if len(shapes) != 1 or len(self.count.shape) != 1 or self.count.size < 1:
            raise ValueError(
                "calibration sums need five 1-D arrays of one length (one entry per bin); "
                f"got shapes {sorted(shapes)}"
            )

    def _arrays(self) -> tuple[NDArray[np.float64], ...]:
        return (
            self.count,
            self.predicted,
            self.observed,
            self.predicted_squares,
            self.predicted_observed,
        )

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.count.size)

    def to_vector(self) -> NDArray[np.float64]:
        """``[count, predicted, observed, predicted_squares, predicted_observed]``, each per bin.

        Adding or removing one row moves it by at most :data:`CALIBRATION_SENSITIVITY`
        in L2 norm.
        """
        return np.concatenate([np.asarray(array, dtype=np.float64) for array in self._arrays()])

    @classmethod
    def from_vector(cls, vector: NDArray[np.floating], n_bins: int) -> CalibrationSums:
        """Inverse of :meth:`to_vector` for ``n_bins`` bins."""
        values = np.array(vector, dtype=np.float64)
        if values.shape != (_FIELDS * n_bins,):
            raise ValueError(
                f"a calibration vector of {n_bins} bins has {_FIELDS * n_bins} entries; "
                f"got shape {values.shape}"
            )
        parts = values.reshape(_FIELDS, n_bins)
        return cls(*(part.copy() for part in parts))

    def __add__(self, other: CalibrationSums) -> CalibrationSums:
        if self.n_bins != other.n_bins:
            raise ValueError(
                f"calibration sums have different bins: {self.n_bins} vs {other.n_bins}"
            )
        return CalibrationSums(
            *(mine + theirs for mine, theirs in zip(self._arrays(), other._arrays(), strict=True))
        )

    @classmethod
    def combine(cls, parts: Sequence[CalibrationSums]) -> CalibrationSums:
        """Sum the calibration sums of several banks."""
        return sum_of(parts, what="calibration sums")

    def settled(self) -> CalibrationSums:
        """The summed (possibly noisy) sums clipped to the values real rows can give.

        Counts are clipped at zero; a bin with less than half a row is empty (all its
        sums zero). In bin ``[lo, hi)`` every prediction lies in [lo, hi], so the sums
        are clipped to ``predicted`` in [lo n, hi n], ``observed`` in [0, n],
        ``predicted_squares`` in [lo^2 n, hi^2 n] and ``predicted_observed`` in
        [lo observed, hi observed]. Exact sums pass unchanged. Call this on the sum
        over banks, never on one bank's noisy sums before they are summed.
        """
        lower, upper = _bin_bounds(self.n_bins)
        count = np.clip(self.count, 0.0, None)
        count = np.where(count < _EMPTY, 0.0, count)
        observed = np.clip(self.observed, 0.0, count)
        return CalibrationSums(
            count=count,
            predicted=np.clip(self.predicted, lower * count, upper * count),
            observed=observed,
            predicted_squares=np.clip(self.predicted_squares, lower**2 * count, upper**2 * count),
            predicted_observed=np.clip(self.predicted_observed, lower * observed, upper * observed),
        )


def _bin_bounds(n_bins: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return edges[:-1], edges[1:]


def calibration_sums(
    predicted: NDArray[np.floating],
    observed: NDArray[np.integer],
    n_bins: int = DEFAULT_CALIBRATION_BINS,
) -> CalibrationSums:
    """One bank's per-bin calibration sums (bank side).

    Parameters
    ----------
    predicted : numpy.ndarray
        Predicted default probabilities in [0, 1].
    observed : numpy.ndarray
        Outcomes in {0, 1} (1 = default), same shape.
    n_bins : int, default 10
        Number of equal-width bins on [0, 1] (public, agreed by the consortium).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    outcomes = np.asarray(observed)
    if predicted.shape != outcomes.shape or predicted.ndim != 1:
        raise ValueError(
            "predicted and observed must be 1-D arrays of one shape; "
            f"got {predicted.shape} and {outcomes.shape}"
        )
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    if not np.all((predicted >= 0.0) & (predicted <= 1.0)):
        raise ValueError("predicted probabilities must lie in [0, 1] (no NaN)")
    if not np.isin(outcomes, (0, 1)).all():
        raise ValueError("observed outcomes must be 0 or 1")
    outcome = outcomes.astype(np.float64)
    bins = score_bin_index(predicted, n_bins)

    def per_bin(weights: NDArray[np.floating]) -> NDArray[np.float64]:
        return np.bincount(bins, weights=weights, minlength=n_bins).astype(np.float64)

    return CalibrationSums(
        count=per_bin(np.ones_like(predicted)),
        predicted=per_bin(predicted),
        observed=per_bin(outcome),
        predicted_squares=per_bin(predicted**2),
        predicted_observed=per_bin(predicted * outcome),
    )


@dataclass(frozen=True)
class ReliabilityBin:
    """One row of the reliability table.

    ``mean_predicted`` and ``observed_rate`` are None for an empty bin.
    """

    lower: float
    upper: float
    count: float
    mean_predicted: float | None
    observed_rate: float | None

    def as_dict(self) -> dict[str, float | None]:
        """Plain dictionary for JSON."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class CalibrationReport:
    """Reliability table, expected calibration error and Brier score of a score.

    Attributes
    ----------
    bins : tuple of ReliabilityBin
        Per bin: bounds, count, mean prediction, observed default rate.
    ece : float
        Expected calibration error, ``sum_b (n_b / N) |mean_predicted_b - observed_rate_b|``.
    brier : float
        Mean squared difference between prediction and outcome (exact).
    n_rows : float
        ``N``, the rows in the (settled) sums.
    """

    bins: tuple[ReliabilityBin, ...]
    ece: float
    brier: float
    n_rows: float

    def as_dict(self) -> dict[str, Any]:
        """``{"ece", "brier", "n_rows", "bins": [...]}`` for ``metrics.json``."""
        return {
            "ece": self.ece,
            "brier": self.brier,
            "n_rows": self.n_rows,
            "bins": [row.as_dict() for row in self.bins],
        }


def calibration_report(sums: CalibrationSums) -> CalibrationReport:
    """The reliability table, ECE and Brier score from (summed) calibration sums.

    The sums are settled first (:meth:`CalibrationSums.settled`); empty bins have no
    mean prediction or observed rate and do not count in the ECE.

    Raises
    ------
    ValueError
        When the sums hold no rows.
    """
    settled = sums.settled()
    n_rows = settled_rows(settled)
    lower, upper = _bin_bounds(settled.n_bins)
    rows = []
    gaps = 0.0
    for index in range(settled.n_bins):
        count = float(settled.count[index])
        mean_predicted = observed_rate = None
        if count > 0:
            mean_predicted = float(settled.predicted[index] / count)
            observed_rate = float(settled.observed[index] / count)
            gaps += count * abs(mean_predicted - observed_rate)
        rows.append(
            ReliabilityBin(
                lower=float(lower[index]),
                upper=float(upper[index]),
                count=count,
                mean_predicted=mean_predicted,
                observed_rate=observed_rate,
            )
        )
    return CalibrationReport(
        bins=tuple(rows), ece=gaps / n_rows, brier=brier_score(settled), n_rows=n_rows
    )


def settled_rows(settled: CalibrationSums) -> float:
    """``N``, the rows behind settled sums.

    Raises
    ------
    ValueError
        When the sums hold no rows.
    """
    n_rows = float(settled.count.sum())
    if n_rows <= 0:
        raise ValueError("the calibration sums hold no rows")
    return n_rows


def brier_score(sums: CalibrationSums) -> float:
    """The exact Brier score of the rows behind (summed) sums, settled first.

    ``sum (p - y)^2 / N = (sum p^2 - 2 sum p y + sum y) / N`` (as ``y^2 = y``),
    clipped to [0, 1] (only noise can take it outside).
    """
    settled = sums.settled()
    squared_error = (
        settled.predicted_squares.sum()
        - 2.0 * settled.predicted_observed.sum()
        + settled.observed.sum()
    )
    return float(np.clip(squared_error / settled_rows(settled), 0.0, 1.0))

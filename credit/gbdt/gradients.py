"""Logistic-loss gradients, quantised to integers so that sums are exact.

For a row with label ``y`` and margin ``m`` (probability ``p = sigmoid(m)``), the
logistic loss has gradient ``g = p - y`` in [-1, 1] and Hessian ``h = p (1 - p)`` in
[0, 1/4]. Each is rounded to an integer multiple of ``2**-GRADIENT_SCALE_BITS`` before
any histogram is built: ``g_int = round(g * 2**20)``, ``h_int = round(h * 2**20)``
(|g_int| <= 2**20, 0 <= h_int <= 2**18). Histograms are then int64 sums, so the
sum of the banks' histograms equals the pooled histogram exactly, whatever the
partition of the rows, and a fixed-point secure sum of integers loses nothing.
Central training uses the same integers, so federated and central trees agree bit for
bit. The rounding moves a gradient by at most ``2**-21``: far below what changes a split
in practice, and the same for every trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "GRADIENT_SCALE",
    "GRADIENT_SCALE_BITS",
    "QuantisedGradients",
    "base_margin",
    "base_score_from_counts",
    "quantise_gradients",
    "sample_rows",
]

GRADIENT_SCALE_BITS = 20
"""Fixed-point fraction bits of the quantised gradients and Hessians."""
GRADIENT_SCALE = 1 << GRADIENT_SCALE_BITS
"""``2**GRADIENT_SCALE_BITS``: a quantised value ``v`` stands for ``v / GRADIENT_SCALE``."""


@dataclass(frozen=True)
class QuantisedGradients:
    """Per-row gradients and Hessians as integers (units of ``1 / GRADIENT_SCALE``).

    Attributes
    ----------
    gradients : numpy.ndarray of int64
        ``round((p - y) * GRADIENT_SCALE)``, in [-2**20, 2**20].
    hessians : numpy.ndarray of int64
        ``round(p (1 - p) * GRADIENT_SCALE)``, in [0, 2**18].
    """

    gradients: NDArray[np.int64]
    hessians: NDArray[np.int64]


def quantise_gradients(
    margins: NDArray[np.float64], labels: NDArray[np.integer]
) -> QuantisedGradients:
    """The rows' logistic-loss gradients and Hessians at ``margins``, quantised.

    Parameters
    ----------
    margins : numpy.ndarray of float64
        Current raw scores (log-odds), one per row.
    labels : numpy.ndarray of int
        0/1 targets, one per row.

    Raises
    ------
    ValueError
        The arrays differ in length or a label is not 0 or 1.
    """
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(labels)
    if m.shape != y.shape or m.ndim != 1:
        raise ValueError(f"margins and labels need one value per row; got {m.shape}, {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1; got {sorted(set(np.unique(y).tolist()))}")
    p = 1.0 / (1.0 + np.exp(-m))
    gradients = np.rint((p - y) * GRADIENT_SCALE).astype(np.int64)
    hessians = np.rint(p * (1.0 - p) * GRADIENT_SCALE).astype(np.int64)
    return QuantisedGradients(gradients=gradients, hessians=hessians)


def base_score_from_counts(events: int, rows: int) -> float:
    """The default rate ``events / rows`` as a float32 value in (0, 1).

    Federated training takes both counts from the summed class counts of the feature
    statistics; central training from its labels. The rate is clipped into
    ``[1e-6, 1 - 1e-6]`` so the base margin stays finite.

    Raises
    ------
    ValueError
        ``rows`` < 1 or ``events`` outside [0, rows].
    """
    if rows < 1 or not 0 <= events <= rows:
        raise ValueError(f"need 0 <= events <= rows and rows >= 1; got {events} of {rows}")
    rate = min(max(events / rows, 1e-6), 1.0 - 1e-6)
    return float(np.float32(rate))


def base_margin(base_score: float) -> float:
    """The log-odds of ``base_score``: every row's margin before the first tree."""
    return float(np.log(base_score) - np.log1p(-base_score))


def sample_rows(n_rows: int, subsample: float, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Which of a bank's rows one tree trains on: each kept with chance ``subsample``.

    At ``subsample == 1`` every row, drawing nothing from ``rng`` (so central and
    federated training agree bit for bit). Research randomness, not a privacy
    mechanism: the bank's own generator.
    """
    if subsample >= 1.0:
        return np.ones(n_rows, dtype=np.bool_)
    return rng.random(n_rows) < subsample

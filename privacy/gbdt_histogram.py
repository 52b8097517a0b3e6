"""Differential privacy for the gradient histograms of federated boosting (pure + noise).

What one level of one tree releases about a bank's training rows: for every open node
of the level, every feature and every bin (the feature's regular bins and its missing
bin), the sums of the quantised gradients and Hessians of the bank's rows in that
cell and their count (:mod:`participant.guard.gbdt_bank`).

Sensitivity (add/remove one record, as DP-SGD's accounting). Logistic loss bounds every
record's gradient ``g = p - y`` to ``[-1, 1]`` and its Hessian ``h = p (1 - p)`` to
``[0, 1/4]``, whatever the model (the "clipping" is implied by the loss: nothing is
clipped); quantisation keeps the bounds (``|round(S g)| <= S`` and ``round(S h) <=
S/4`` for a scale ``S`` divisible by 4). A record is in at most one open node of a
level and falls in exactly one bin of each feature (a regular bin or the missing bin),
where it adds ``(g, h, 1)``. So one record changes a level's release by at most
``sqrt(1 + 1/16 + 1)`` per feature in L2, in real units (gradients and Hessians
divided by ``S``, counts as they are): the release's L2 sensitivity is
``sqrt(33 F / 16)`` for ``F`` features (:func:`histogram_sensitivity`).

Mechanism. The bank adds Gaussian noise of standard deviation ``z * sqrt(33 F / 16)``
(real units) to every cell and channel of every open node, then rounds each channel
back to its integer grid (gradients and Hessians to multiples of ``1 / S``, counts to
integers): a *rounded* Gaussian. Rounding is post-processing of the continuous Gaussian
mechanism, so the release costs exactly what one Gaussian release of noise multiplier
``z`` costs (Dwork and Roth 2014, Proposition 2.1): each level is one event of kind
``gbdt-histogram`` (q = 1, one step, sensitivity ``sqrt(33 F / 16)``) charged to the
ledger's training rows, composed over levels and trees by the project's RDP
accountant (:mod:`privacy.accounting`) and recomputed with ``dp_accounting`` by
``fedcredit privacy verify``. The noisy integers are what the bank puts in the
(secure) sum. Normals come from :class:`~privacy.noise.SecureGaussian` (ChaCha20 keyed
by OS entropy), never from NumPy's generators.

Notes
-----
The discrete Gaussian (Canonne, Kamath and Steinke, NeurIPS 2020) would avoid
floating-point draws altogether; the rounded continuous Gaussian is used because its
accounting is the one every other release of the ledger already uses, and its draws
get the same floating-point hardening (:mod:`privacy.noise`). The same noise standard
deviation on all three channels (real units) is the plain Gaussian mechanism on the
concatenated vector; per-channel scaling would help the Hessian channel but changes
nothing in the accounting's shape.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from privacy.accounting import DpEvent
from privacy.noise import SecureGaussian
from privacy.secagg.fixed_point import FixedPoint

__all__ = [
    "CELL_SENSITIVITY_SQUARED",
    "GRADIENT_BOUND",
    "HESSIAN_BOUND",
    "HISTOGRAM_CODE",
    "KIND",
    "consistent_sum",
    "histogram_sensitivity",
    "is_histogram_sensitivity",
    "level_event",
    "noisy_histogram",
]

KIND = "gbdt-histogram"

HISTOGRAM_CODE = FixedPoint(clip=1.0, fraction_bits=0, ring_bits=64)
"""The code of a level's secure sum: nothing weighted (weight 0); the bank's int64
histograms, read as words of the 64-bit ring (two's complement), follow as they are.
The sum is exact while every cell's total stays below ``2**63`` in magnitude (fewer than
``2**42`` rows in the consortium at the gradients' scale ``2**20``)."""
"""The ledger event kind of one level's histograms."""
GRADIENT_BOUND = 1.0
"""``|p - y| <= 1`` for the logistic loss, ``p`` in (0, 1) and ``y`` in {0, 1}."""
HESSIAN_BOUND = 0.25
"""``p (1 - p) <= 1/4``."""
CELL_SENSITIVITY_SQUARED = GRADIENT_BOUND**2 + HESSIAN_BOUND**2 + 1.0
"""One record's squared L2 contribution to one feature's cells: ``(g, h, 1)``."""


def histogram_sensitivity(features: int) -> float:
    """L2 sensitivity of one level's histograms over ``features`` features, real units.

    ``sqrt(F * (1 + 1/16 + 1))``: one record adds ``(g, h, 1)`` to one bin (regular or
    missing) of each feature in one node (module docstring).

    Raises
    ------
    ValueError
        ``features`` < 1.
    """
    if features < 1:
        raise ValueError(f"features must be >= 1; got {features}")
    return math.sqrt(features * CELL_SENSITIVITY_SQUARED)


def is_histogram_sensitivity(value: float) -> bool:
    """Whether ``value`` is :func:`histogram_sensitivity` of a whole number of features."""
    features = round(value**2 / CELL_SENSITIVITY_SQUARED)
    return features >= 1 and math.isclose(value, histogram_sensitivity(features), rel_tol=1e-12)


def level_event(*, run: str, level: int, noise_multiplier: float, features: int) -> DpEvent:
    """The ledger event of one level's release: q = 1, one step, ``gbdt-histogram``.

    Parameters
    ----------
    run : str
        The run's name.
    level : int
        The level's number in the run, from 1 (tree ``t``, depth ``d``: ``t * D + d + 1``
        for ``D`` levels per tree); recorded as the event's round.
    noise_multiplier : float
        ``z``: noise standard deviation over the sensitivity.
    features : int
        Features the histograms cover.
    """
    return DpEvent(
        round=level,
        noise_multiplier=noise_multiplier,
        sample_rate=1.0,
        steps=1,
        max_grad_norm=histogram_sensitivity(features),
        kind=KIND,
        run=run,
        rows="train",
    )


def noisy_histogram(
    histogram: NDArray[np.int64],
    *,
    scale: int,
    noise_multiplier: float,
    source: SecureGaussian,
) -> NDArray[np.int64]:
    """``histogram`` plus rounded Gaussian noise: the level's release (module docstring).

    Parameters
    ----------
    histogram : ndarray of int64, shape (nodes, features, bins + 1, 3)
        Quantised gradient sums (units ``1 / scale``), Hessian sums (units
        ``1 / scale``) and counts, per open node, feature and bin (last: missing).
    scale : int
        The quantisation scale ``S`` of gradients and Hessians, >= 4 and divisible by 4.
    noise_multiplier : float
        ``z`` > 0; the noise standard deviation is ``z * sqrt(33 F / 16)`` real units.
    source : SecureGaussian
        The bank's cryptographically secure normal source.

    Raises
    ------
    ValueError
        A shape, scale or noise multiplier out of range.
    """
    if histogram.ndim != 4 or histogram.shape[-1] != 3:
        raise ValueError(
            f"histogram must have shape (nodes, features, bins + 1, 3); got {histogram.shape}"
        )
    if scale < 4 or scale % 4:
        raise ValueError(f"scale must be >= 4 and divisible by 4; got {scale}")
    if not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier must be > 0; got {noise_multiplier}")
    deviation = noise_multiplier * histogram_sensitivity(histogram.shape[1])
    units = np.array([scale, scale, 1], dtype=np.float64)  # integer steps per real unit
    normals = source.standard_normal(histogram.size).reshape(histogram.shape)
    noise = np.rint(normals * deviation * units).astype(np.int64)
    noisy: NDArray[np.int64] = histogram + noise
    return noisy


def consistent_sum(summed: NDArray[np.int64], regular_bins: NDArray[np.int64]) -> NDArray[np.int64]:
    """Post-process a level's summed (noisy) histograms with what is known about them.

    Two facts hold for the exact sum, whatever the rows: a cell beyond a feature's
    regular bins (other than the missing bin, the last) is empty, and every feature's
    bins add up to the same node totals (every row is in one bin of each feature).
    This sets the impossible cells to zero and moves each feature's bins by the same
    amount so that its totals are the mean of all features' totals (the least-squares
    projection onto those constraints for noise of equal variance in every cell),
    rounding to integers. On an exact sum it changes nothing; on a noisy one it cuts
    the noise of the node totals by about sqrt(F), and costs no privacy
    (post-processing).

    Parameters
    ----------
    summed : ndarray of int64, shape (nodes, features, bins, 3)
        The consortium's summed histograms, missing bin last.
    regular_bins : ndarray of int64, shape (features,)
        Each feature's regular bins.
    """
    features, bins = summed.shape[1:3]
    valid = np.zeros((features, bins), dtype=np.bool_)
    for feature, regular in enumerate(regular_bins):
        valid[feature, : int(regular)] = True
    valid[:, bins - 1] = True
    values = np.where(valid[None, :, :, None], summed.astype(np.float64), 0.0)
    totals = values.sum(axis=2, keepdims=True)  # (nodes, features, 1, channels)
    deficit = totals.mean(axis=1, keepdims=True) - totals
    cells = valid.sum(axis=1).astype(np.float64)[None, :, None, None]
    adjusted = np.where(valid[None, :, :, None], values + deficit / cells, 0.0)
    result: NDArray[np.int64] = np.rint(adjusted).astype(np.int64)
    return result

"""Split finding from a node's summed histogram: XGBoost's second-order gain.

For a node with gradient sum ``G`` and Hessian sum ``H`` (the quantised sums divided by
``GRADIENT_SCALE``), a split into left and right children has the loss change

    gain = G_L**2 / (H_L + lambda) + G_R**2 / (H_R + lambda) - G**2 / (H + lambda)

(XGBoost's ``loss_chg``, Chen & Guestrin 2016, eq. 7 without the factor 1/2), and the
leaf weight of a node is ``-G / (H + lambda)`` times the learning rate.

Candidates, per feature allowed in this tree: "code < b goes left" for every ``b`` in
``1 .. regular_bins - 1``, each with the node's missing rows sent left or right (the
learned default direction), plus "every regular value left, missing right" when the node
has missing rows. A candidate needs both children to hold rows and a Hessian sum of at
least ``min_child_weight``; the node splits on the best candidate when its gain exceeds
both ``gamma`` and :data:`MIN_GAIN`.

Tie-breaking (deterministic, so every trainer picks the same split from the same
integers): the highest gain; among equal gains the lowest feature index, then missing
values right before left, then the lowest bin ``b``. Gains are computed in float64
from the exact integer sums by the same operations wherever they are computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.gradients import GRADIENT_SCALE
from credit.gbdt.params import BoostingParams

__all__ = ["MIN_GAIN", "NodeSums", "SplitCandidate", "best_split", "leaf_weight", "node_sums"]

MIN_GAIN = 1e-6
"""Least loss change a split must have (XGBoost's ``kRtEps``)."""


@dataclass(frozen=True)
class NodeSums:
    """A node's exact sums: quantised gradient and Hessian (int) and its row count."""

    gradient: int
    hessian: int
    count: int

    @property
    def hessian_value(self) -> float:
        """The Hessian sum in loss units (``hessian / GRADIENT_SCALE``): XGBoost's cover."""
        return self.hessian / GRADIENT_SCALE


@dataclass(frozen=True)
class SplitCandidate:
    """The best split of one node.

    Attributes
    ----------
    feature : int
        Column of the split feature.
    split_bin : int
        Rows with a regular code ``< split_bin`` go left.
    default_left : bool
        Whether missing values go left.
    gain : float
        The loss change (module docstring).
    left, right : NodeSums
        The children's sums.
    """

    feature: int
    split_bin: int
    default_left: bool
    gain: float
    left: NodeSums
    right: NodeSums


def node_sums(node_histogram: NDArray[np.int64]) -> NodeSums:
    """A node's totals from its ``(features, n_bins, 3)`` histogram (feature 0's bins)."""
    total = node_histogram[0].sum(axis=0)
    return NodeSums(gradient=int(total[0]), hessian=int(total[1]), count=int(total[2]))


def leaf_weight(sums: NodeSums, params: BoostingParams) -> float:
    """``-G / (H + lambda) * learning_rate`` rounded to float32 (0 when ``H + lambda`` is 0)."""
    denominator = sums.hessian / GRADIENT_SCALE + params.reg_lambda
    if denominator <= 0.0:
        return 0.0
    weight = -(sums.gradient / GRADIENT_SCALE) / denominator * params.learning_rate
    return float(np.float32(weight))


def best_split(
    node_histogram: NDArray[np.int64],
    regular_bins: NDArray[np.int64],
    feature_mask: NDArray[np.bool_],
    params: BoostingParams,
) -> SplitCandidate | None:
    """The node's best split (module docstring), or None when no candidate qualifies.

    Parameters
    ----------
    node_histogram : numpy.ndarray of int64, shape (features, n_bins, 3)
        The node's summed histogram, missing code last.
    regular_bins : numpy.ndarray of int64, shape (features,)
        Each feature's regular bins (:attr:`~credit.gbdt.FeatureBins.regular_bins`).
    feature_mask : numpy.ndarray of bool, shape (features,)
        The features this tree may split on (column subsampling).
    params : BoostingParams
        ``reg_lambda``, ``gamma`` and ``min_child_weight`` are used.
    """
    n_bins = node_histogram.shape[1]
    # Cumulative sums of the regular bins: left[f, b - 1] holds the codes < b.
    left = np.cumsum(node_histogram[:, : n_bins - 1, :], axis=1)
    missing = node_histogram[:, n_bins - 1, :]
    total = left[:, -1, :] + missing
    # Direction 0: missing right; direction 1: missing left.
    left_sums = np.stack([left, left + missing[:, None, :]], axis=1)
    right_sums = total[:, None, None, :] - left_sums
    valid = _valid_candidates(regular_bins, missing[:, 2], n_bins) & feature_mask[:, None, None]
    gains = _gains(left_sums, right_sums, total[0], params)
    qualified = valid & (left_sums[..., 2] > 0) & (right_sums[..., 2] > 0)
    qualified &= _weight_at_least(left_sums, params) & _weight_at_least(right_sums, params)
    gains = np.where(qualified, gains, -np.inf)
    best = int(np.argmax(gains))  # the first maximum: the tie-breaking order of the docstring
    gain = float(gains.flat[best])
    if not (gain > MIN_GAIN and gain > params.gamma):
        return None
    feature, direction, position = np.unravel_index(best, gains.shape)
    return SplitCandidate(
        feature=int(feature),
        split_bin=int(position) + 1,
        default_left=bool(direction == 1),
        gain=gain,
        left=_sums(left_sums[feature, direction, position]),
        right=_sums(right_sums[feature, direction, position]),
    )


def _valid_candidates(
    regular_bins: NDArray[np.int64], missing_counts: NDArray[np.int64], n_bins: int
) -> NDArray[np.bool_]:
    """``(features, 2, n_bins - 1)``: which (direction, bin ``b``) each feature allows."""
    split_bin = np.arange(1, n_bins, dtype=np.int64)[None, :]
    has_missing = (missing_counts > 0)[:, None]
    interior = split_bin < regular_bins[:, None]
    missing_only = (split_bin == regular_bins[:, None]) & has_missing
    return np.stack([interior | missing_only, interior & has_missing], axis=1)


def _score(gradient: NDArray[np.float64], hessian: NDArray[np.float64], reg_lambda: float) -> Any:
    """``G**2 / (H + lambda)``, 0 where ``H + lambda`` is 0."""
    denominator = hessian + reg_lambda
    safe = np.where(denominator > 0.0, denominator, 1.0)
    return np.where(denominator > 0.0, gradient * gradient / safe, 0.0)


def _gains(
    left_sums: NDArray[np.int64],
    right_sums: NDArray[np.int64],
    total: NDArray[np.int64],
    params: BoostingParams,
) -> NDArray[np.float64]:
    def score(sums: NDArray[np.int64]) -> NDArray[np.float64]:
        gradient = sums[..., 0].astype(np.float64) / GRADIENT_SCALE
        hessian = sums[..., 1].astype(np.float64) / GRADIENT_SCALE
        result: NDArray[np.float64] = _score(gradient, hessian, params.reg_lambda)
        return result

    parent = score(total)
    return score(left_sums) + score(right_sums) - parent


def _weight_at_least(sums: NDArray[np.int64], params: BoostingParams) -> NDArray[np.bool_]:
    hessian = sums[..., 1].astype(np.float64) / GRADIENT_SCALE
    return hessian >= params.min_child_weight


def _sums(channels: NDArray[np.int64]) -> NodeSums:
    return NodeSums(gradient=int(channels[0]), hessian=int(channels[1]), count=int(channels[2]))

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
    raise NotImplementedError

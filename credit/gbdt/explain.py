"""Explanations: per-applicant feature contributions and feature importance.

Contributions are exact path-dependent TreeSHAP values (Lundberg, Erion & Lee 2018,
"Consistent individualized feature attribution for tree ensembles", Algorithm 2), with
each node's cover (Hessian sum) weighting the paths a feature's absence averages over,
as XGBoost's ``predict(pred_contribs=True)`` computes them: per row, one value per
feature plus a last column for the bias (the expected margin), summing to the margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.tree import Ensemble, Tree

__all__ = [
    "FeatureImportance",
    "contributions",
    "feature_importance",
    "mean_leaf_value",
    "path_contributions",
    "reason_features",
]


@dataclass(frozen=True)
class FeatureImportance:
    """Per feature (the ensemble's feature order): split counts, total gain and cover.

    Attributes
    ----------
    names : tuple of str
    splits : tuple of int
        Internal nodes splitting on the feature (XGBoost's ``weight``).
    total_gain, total_cover : tuple of float
        Sums over those nodes of the loss change and of the Hessian sum (XGBoost's
        ``total_gain``, ``total_cover``; its ``gain`` and ``cover`` are these divided by
        ``splits``).
    """

    names: tuple[str, ...]
    splits: tuple[int, ...]
    total_gain: tuple[float, ...]
    total_cover: tuple[float, ...]


def contributions(ensemble: Ensemble, values: NDArray[np.floating]) -> NDArray[np.float64]:
    """TreeSHAP contributions of rows given as the raw matrix.

    Vectorised over rows: every path of a tree is walked once, each path element
    holding one weight per row (``Notes``).

    Returns
    -------
    numpy.ndarray of float64, shape (rows, features + 1)
        Per feature its contribution to the margin, last column the bias; each row sums
        to :meth:`Ensemble.margin` (to floating-point rounding).

    Notes
    -----
    Algorithm 2 of Lundberg et al. (2018) chooses, at each split, the "hot" child the
    row follows and the "cold" one it does not; here both children are visited with
    the row's one-fraction set to 1 (hot) or 0 (cold) per row, which gives every row
    its own Algorithm 2 result in one pass. The zero-fractions are cover ratios, the
    same for every row. Cost: O(leaves * depth**2) array operations per tree.
    """
    matrix = np.asarray(values, dtype=np.float32)
    phi = np.zeros((matrix.shape[0], ensemble.bins.n_features + 1), dtype=np.float64)
    phi[:, -1] = ensemble.base_margin
    for tree in ensemble.trees:
        _TreeShap(tree, matrix, phi).run()
    return phi


@dataclass
class _PathElement:
    feature: int
    zero_fraction: float
    one_fraction: NDArray[np.float64]
    weight: NDArray[np.float64]


class _TreeShap:
    """One tree's contributions added into ``phi`` (the TreeSHAP recursion)."""

    def __init__(self, tree: Tree, matrix: NDArray[np.float32], phi: NDArray[np.float64]) -> None:
        self._tree = tree
        self._matrix = matrix
        self._phi = phi
        self._covers = np.asarray(tree.covers, dtype=np.float64)

    def run(self) -> None:
        rows = self._matrix.shape[0]
        self._phi[:, -1] += self._mean_value(0)
        self._recurse(0, [], 1.0, np.ones(rows), -1)

    def _mean_value(self, node: int) -> float:
        return mean_leaf_value(self._tree, self._covers, node)

    def _goes_left(self, node: int) -> NDArray[np.float64]:
        x = self._matrix[:, self._tree.split_features[node]]
        threshold = np.float32(self._tree.thresholds[node])
        left = np.where(np.isnan(x), self._tree.default_left[node], x < threshold)
        return left.astype(np.float64)

    def _recurse(
        self,
        node: int,
        parent_path: list[_PathElement],
        zero_fraction: float,
        one_fraction: NDArray[np.float64],
        feature: int,
    ) -> None:
        path = [
            _PathElement(e.feature, e.zero_fraction, e.one_fraction, e.weight.copy())
            for e in parent_path
        ]
        _extend(path, zero_fraction, one_fraction, feature)
        tree = self._tree
        if tree.is_leaf(node):
            for index in range(1, len(path)):
                element = path[index]
                weight = _unwound_sum(path, index)
                change = element.one_fraction - element.zero_fraction
                self._phi[:, element.feature] += weight * change * tree.values[node]
            return
        split_feature = tree.split_features[node]
        incoming_zero, incoming_one = 1.0, np.ones_like(one_fraction)
        previous = next((i for i in range(1, len(path)) if path[i].feature == split_feature), None)
        if previous is not None:
            incoming_zero = path[previous].zero_fraction
            incoming_one = path[previous].one_fraction
            _unwind(path, previous)
        left_share = self._goes_left(node)
        cover = self._covers[node]
        for child, share in (
            (tree.left_children[node], left_share),
            (tree.right_children[node], 1.0 - left_share),
        ):
            child_zero = incoming_zero * self._covers[child] / cover
            self._recurse(child, path, child_zero, incoming_one * share, split_feature)


def mean_leaf_value(tree: Tree, covers: NDArray[np.float64], node: int) -> float:
    """The cover-weighted mean of the node's leaves (XGBoost's node mean value)."""
    if tree.is_leaf(node):
        return tree.values[node]
    left, right = tree.left_children[node], tree.right_children[node]
    total = covers[left] * mean_leaf_value(tree, covers, left)
    total += covers[right] * mean_leaf_value(tree, covers, right)
    return float(total / covers[node])


def path_contributions(
    tree: Tree,
    covers: NDArray[np.float64],
    leaf: int,
    path: list[tuple[int, bool]],
    follows: NDArray[np.float64],
) -> tuple[list[int], NDArray[np.float64]]:
    """One leaf's part of the contributions, for rows given by their way along its path.

    The leaf's steps of :func:`contributions`' recursion, the rows' one-fractions set
    by ``follows`` instead of their values (:mod:`credit.gbdt.shap_tables`).

    Parameters
    ----------
    tree : Tree
    covers : numpy.ndarray of float64
        The tree's covers.
    leaf : int
        The leaf.
    path : list of (int, bool)
        The leaf's path from the root: each node and whether the path goes left there.
    follows : numpy.ndarray of float64, shape (rows, len(path))
        1 where the row goes the path's way at that node, else 0.

    Returns
    -------
    features : list of int
        The features the path splits on (each once).
    shares : numpy.ndarray of float64, shape (rows, len(features))
        Each row's contribution from this leaf to each of those features.
    """
    rows = follows.shape[0]
    elements: list[_PathElement] = []
    _extend(elements, 1.0, np.ones(rows), -1)
    for step, (node, left) in enumerate(path):
        split_feature = tree.split_features[node]
        incoming_zero, incoming_one = 1.0, np.ones(rows)
        previous = next(
            (i for i in range(1, len(elements)) if elements[i].feature == split_feature), None
        )
        if previous is not None:
            incoming_zero = elements[previous].zero_fraction
            incoming_one = elements[previous].one_fraction
            _unwind(elements, previous)
        child = tree.left_children[node] if left else tree.right_children[node]
        child_zero = incoming_zero * covers[child] / covers[node]
        _extend(elements, child_zero, incoming_one * follows[:, step], split_feature)
    shares = np.zeros((rows, len(elements) - 1))
    for index in range(1, len(elements)):
        element = elements[index]
        weight = _unwound_sum(elements, index)
        change = element.one_fraction - element.zero_fraction
        shares[:, index - 1] = weight * change * tree.values[leaf]
    return [element.feature for element in elements[1:]], shares


def _extend(
    path: list[_PathElement],
    zero_fraction: float,
    one_fraction: NDArray[np.float64],
    feature: int,
) -> None:
    depth = len(path)
    first = np.ones_like(one_fraction) if depth == 0 else np.zeros_like(one_fraction)
    path.append(_PathElement(feature, zero_fraction, one_fraction, first))
    for i in range(depth - 1, -1, -1):
        path[i + 1].weight += one_fraction * path[i].weight * (i + 1) / (depth + 1)
        path[i].weight = zero_fraction * path[i].weight * (depth - i) / (depth + 1)


def _unwind(path: list[_PathElement], index: int) -> None:
    """Remove element ``index`` from the path, undoing its :func:`_extend`."""
    depth = len(path) - 1
    one, zero = path[index].one_fraction, path[index].zero_fraction
    hot = one != 0
    safe_one = np.where(hot, one, 1.0)
    next_portion = path[depth].weight.copy()
    for i in range(depth - 1, -1, -1):
        weight = path[i].weight
        from_hot = next_portion * (depth + 1) / ((i + 1) * safe_one)
        from_cold = _divide(weight * (depth + 1), zero * (depth - i))
        next_portion = np.where(hot, weight - from_hot * zero * (depth - i) / (depth + 1), 0.0)
        path[i].weight = np.where(hot, from_hot, from_cold)
    for i in range(index, depth):
        path[i].feature = path[i + 1].feature
        path[i].zero_fraction = path[i + 1].zero_fraction
        path[i].one_fraction = path[i + 1].one_fraction
    path.pop()


def _unwound_sum(path: list[_PathElement], index: int) -> NDArray[np.float64]:
    """The total weight of the path with element ``index`` unwound (not modifying it)."""
    depth = len(path) - 1
    one, zero = path[index].one_fraction, path[index].zero_fraction
    hot = one != 0
    safe_one = np.where(hot, one, 1.0)
    next_portion = path[depth].weight
    total = np.zeros_like(next_portion)
    for i in range(depth - 1, -1, -1):
        from_hot = next_portion * (depth + 1) / ((i + 1) * safe_one)
        from_cold = _divide(path[i].weight * (depth + 1), zero * (depth - i))
        total += np.where(hot, from_hot, from_cold)
        next_portion = path[i].weight - from_hot * zero * (depth - i) / (depth + 1)
    return total


def _divide(numerator: NDArray[np.float64], denominator: float) -> NDArray[np.float64]:
    """``numerator / denominator``, 0 where the denominator is 0 (a node of zero cover)."""
    if denominator == 0.0:
        return np.zeros_like(numerator)
    return numerator / denominator


def reason_features(
    contributions_matrix: NDArray[np.float64], names: tuple[str, ...], *, top_k: int = 4
) -> tuple[tuple[str, ...], ...]:
    """Each applicant's reason features: those that raise its margin the most.

    Parameters
    ----------
    contributions_matrix : numpy.ndarray, shape (rows, features + 1)
        :func:`contributions` (its last column, the bias, is never a reason).
    names : tuple of str
        The feature names (:attr:`FeatureBins.names`).
    top_k : int, default 4
        Most reasons per applicant (>= 1), as an adverse-action notice gives.

    Returns
    -------
    tuple of tuple of str
        Per row, up to ``top_k`` features with a positive contribution, largest first;
        equal contributions in feature order.

    Raises
    ------
    ValueError
        ``top_k`` < 1, or a matrix without one column per name plus the bias.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; got {top_k}")
    if contributions_matrix.ndim != 2 or contributions_matrix.shape[1] != len(names) + 1:
        raise ValueError(
            f"contributions need {len(names) + 1} columns (features, then the bias); "
            f"got shape {contributions_matrix.shape}"
        )
    features = contributions_matrix[:, :-1]
    order = np.argsort(-features, axis=1, kind="stable")[:, :top_k]
    return tuple(
        tuple(names[f] for f in row_order if row[f] > 0.0)
        for row, row_order in zip(features, order, strict=True)
    )


def feature_importance(ensemble: Ensemble) -> FeatureImportance:
    """Split counts, total gain and total cover per feature."""
    n = ensemble.bins.n_features
    splits = np.zeros(n, dtype=np.int64)
    gain = np.zeros(n, dtype=np.float64)
    cover = np.zeros(n, dtype=np.float64)
    for tree in ensemble.trees:
        for node in range(tree.n_nodes):
            if tree.is_leaf(node):
                continue
            feature = tree.split_features[node]
            splits[feature] += 1
            gain[feature] += tree.gains[node]
            cover[feature] += tree.covers[node]
    return FeatureImportance(
        names=ensemble.bins.names,
        splits=tuple(int(v) for v in splits),
        total_gain=tuple(float(v) for v in gain),
        total_cover=tuple(float(v) for v in cover),
    )

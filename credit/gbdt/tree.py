"""Trees and ensembles: their nodes, and margins from bin codes or raw values.

A :class:`Tree` stores its nodes in breadth-first order (XGBoost's layout: node 0 is
the root, a leaf's children are -1). An internal node sends a row left when its code is
below ``split_bin`` (equivalently its float32 raw value is below ``threshold``, the
edge ``split_bin - 1`` of the feature) and a missing value the ``default_left`` way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.binning import FeatureBins
from credit.gbdt.gradients import base_margin

__all__ = ["Ensemble", "Tree"]


@dataclass(frozen=True)
class Tree:
    """One regression tree on the margin scale, nodes in breadth-first order.

    Attributes
    ----------
    left_children, right_children : tuple of int
        Child node indices; -1 for a leaf.
    split_features : tuple of int
        Feature column of each internal node; -1 for a leaf.
    split_bins : tuple of int
        Rows with a regular code below it go left; 0 for a leaf.
    thresholds : tuple of float
        The float32 raw threshold of each internal node (:meth:`FeatureBins.threshold`);
        0.0 for a leaf.
    default_left : tuple of bool
        Where missing values go; False for a leaf.
    values : tuple of float
        Each node's weight ``-G / (H + lambda) * learning_rate`` (float32 values); a
        leaf's is its output.
    gains : tuple of float
        Each internal node's loss change; 0.0 for a leaf.
    covers : tuple of float
        Each node's Hessian sum (XGBoost's ``sum_hessian``).
    counts : tuple of int
        Each node's training rows.
    """

    left_children: tuple[int, ...]
    right_children: tuple[int, ...]
    split_features: tuple[int, ...]
    split_bins: tuple[int, ...]
    thresholds: tuple[float, ...]
    default_left: tuple[bool, ...]
    values: tuple[float, ...]
    gains: tuple[float, ...]
    covers: tuple[float, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        """Refuse a malformed tree (one from a file or the network) before it is walked.

        Raises
        ------
        ValueError
            Fields of different lengths, no node, or children that are not a
            breadth-first binary tree (a leaf has both children -1, an internal node two
            later nodes, every node but the root is exactly one node's child).
        """
        lengths = {f.name: len(getattr(self, f.name)) for f in fields(self)}
        if len(set(lengths.values())) != 1 or not self.left_children:
            raise ValueError(f"a tree needs one entry per node in every field; got {lengths}")
        parents = [0] * self.n_nodes
        for node, (left, right) in enumerate(
            zip(self.left_children, self.right_children, strict=True)
        ):
            if left == right == -1:
                continue
            if not (node < left < self.n_nodes and node < right < self.n_nodes and left != right):
                raise ValueError(
                    f"tree node {node}: children must be two later nodes of the "
                    f"{self.n_nodes} or both -1; got {left} and {right}"
                )
            parents[left] += 1
            parents[right] += 1
        if parents[0] != 0 or any(count != 1 for count in parents[1:]):
            raise ValueError(f"tree nodes must each have one parent (the root none); got {parents}")

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.left_children)

    def is_leaf(self, node: int) -> bool:
        """Whether ``node`` is a leaf."""
        return self.left_children[node] < 0

    def leaves_from_codes(self, codes: NDArray[np.uint8], missing_code: int) -> NDArray[np.int64]:
        """Each row's leaf (node index) from its bin codes."""
        split_bins = np.asarray(self.split_bins, dtype=np.int64)

        def goes_left(nodes: NDArray[np.int64], rows: NDArray[np.int64]) -> NDArray[np.bool_]:
            code = codes[rows, self._features[nodes]].astype(np.int64)
            return np.where(
                code == missing_code, self._default_left[nodes], code < split_bins[nodes]
            )

        return self._route(codes.shape[0], goes_left)

    def leaves_from_values(self, values: NDArray[np.float32]) -> NDArray[np.int64]:
        """Each row's leaf from its raw float32 values (NaN: missing)."""
        matrix = np.asarray(values, dtype=np.float32)
        thresholds = np.asarray(self.thresholds, dtype=np.float32)

        def goes_left(nodes: NDArray[np.int64], rows: NDArray[np.int64]) -> NDArray[np.bool_]:
            x = matrix[rows, self._features[nodes]]
            return np.where(np.isnan(x), self._default_left[nodes], x < thresholds[nodes])

        return self._route(matrix.shape[0], goes_left)

    def predict_codes(self, codes: NDArray[np.uint8], missing_code: int) -> NDArray[np.float64]:
        """Each row's leaf value from its bin codes."""
        leaves = self.leaves_from_codes(codes, missing_code)
        return np.asarray(self.values, dtype=np.float64)[leaves]

    @property
    def _features(self) -> NDArray[np.int64]:
        return np.maximum(np.asarray(self.split_features, dtype=np.int64), 0)

    @property
    def _default_left(self) -> NDArray[np.bool_]:
        return np.asarray(self.default_left, dtype=np.bool_)

    def _route(
        self,
        n_rows: int,
        goes_left: Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.bool_]],
    ) -> NDArray[np.int64]:
        """Walk every row from the root to its leaf, one level per step."""
        left = np.asarray(self.left_children, dtype=np.int64)
        right = np.asarray(self.right_children, dtype=np.int64)
        nodes = np.zeros(n_rows, dtype=np.int64)
        active = np.arange(n_rows, dtype=np.int64)
        while active.size:
            current = nodes[active]
            inner = left[current] >= 0
            active, current = active[inner], current[inner]
            step = goes_left(current, active)
            nodes[active] = np.where(step, left[current], right[current])
        return nodes


@dataclass(frozen=True)
class Ensemble:
    """A boosted ensemble: base score, trees, and the bins its splits refer to.

    Attributes
    ----------
    trees : tuple of Tree
    base_score : float
        Starting probability (a float32 value); every margin starts at its log-odds.
    bins : FeatureBins
        The shared bins (feature names and edges) of the training.
    """

    trees: tuple[Tree, ...]
    base_score: float
    bins: FeatureBins

    def __post_init__(self) -> None:
        """Refuse splits the bins cannot express.

        Raises
        ------
        ValueError
            ``base_score`` outside (0, 1), or an internal node whose feature, bin or
            threshold does not match the bins (code and raw-value routing would differ).
        """
        if not 0.0 < self.base_score < 1.0:
            raise ValueError(f"base_score must lie in (0, 1); got {self.base_score}")
        regular = self.bins.regular_bins
        for number, tree in enumerate(self.trees):
            for node in range(tree.n_nodes):
                if not tree.is_leaf(node):
                    self._check_split(number, tree, node, regular)

    def _check_split(self, number: int, tree: Tree, node: int, regular: NDArray[np.int64]) -> None:
        feature, split_bin = tree.split_features[node], tree.split_bins[node]
        if not (
            0 <= feature < self.bins.n_features
            and 1 <= split_bin <= regular[feature]
            and tree.thresholds[node] == self.bins.threshold(feature, split_bin)
        ):
            raise ValueError(
                f"tree {number} node {node}: feature {feature}, bin {split_bin} and "
                f"threshold {tree.thresholds[node]} do not match the ensemble's bins"
            )

    @property
    def base_margin(self) -> float:
        """``log(base_score / (1 - base_score))``."""
        return base_margin(self.base_score)

    def margin_from_codes(self, codes: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Raw scores (log-odds) of rows given as bin codes."""
        margin = np.full(codes.shape[0], self.base_margin, dtype=np.float64)
        for tree in self.trees:
            margin += tree.predict_codes(codes, self.bins.missing_code)
        return margin

    def margin(self, values: NDArray[np.floating]) -> NDArray[np.float64]:
        """Raw scores of rows given as the raw matrix (:func:`~credit.gbdt.raw_matrix`)."""
        matrix = np.asarray(values, dtype=np.float32)
        margin = np.full(matrix.shape[0], self.base_margin, dtype=np.float64)
        for tree in self.trees:
            margin += np.asarray(tree.values, dtype=np.float64)[tree.leaves_from_values(matrix)]
        return margin

    def predict_proba(self, values: NDArray[np.floating]) -> NDArray[np.float64]:
        """Probability of default of rows given as the raw matrix."""
        return 1.0 / (1.0 + np.exp(-self.margin(values)))

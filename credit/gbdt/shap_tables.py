"""TreeSHAP contributions from per-leaf tables: the same values, a few array steps per tree.

:func:`credit.gbdt.contributions` walks every path of every tree for each call (its
cost is per call, whatever the rows: a scoring service's single applicant pays it all).
Here it is paid once per ensemble. In Algorithm 2 of Lundberg et al. (2018) a leaf's
share of the contributions depends on a row only through which way it goes at each
node of the leaf's path (the "one fractions"); with ``k`` nodes on the path there are
``2**k`` such patterns. :class:`ContributionTables` runs the leaf's part of the
recursion (:mod:`credit.gbdt.explain`'s own ``_extend``/``_unwind``/``_unwound_sum``)
once for every pattern and keeps the results; a row then costs, per tree, its routing
at every node, its pattern at every leaf and one table look-up per leaf.

Notes
-----
Memory: ``leaves * 2**depth * depth`` floats per tree (about ``4**depth * depth``:
24,576 at depth 6). :func:`contribution_tables` builds tables only while the whole
ensemble's stay within :data:`MAX_TABLE_VALUES`, else it returns None and the caller
uses :func:`credit.gbdt.contributions`. The values are those of
:func:`~credit.gbdt.contributions` to floating-point rounding (the additions into a
feature's column come in another order); each row's come from that row alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.explain import mean_leaf_value, path_contributions
from credit.gbdt.tree import Ensemble, Tree

__all__ = [
    "MAX_TABLE_VALUES",
    "ROW_CHUNK",
    "ContributionTables",
    "contribution_tables",
    "table_values",
]

MAX_TABLE_VALUES: Final = 2**22
"""Most table entries for one ensemble (32 MiB of float64; building them takes a few
seconds: each entry is one pattern's walk of one leaf's path)."""
ROW_CHUNK: Final = 2048
"""Rows looked up together (bounds the ``rows * leaves * depth`` look-up arrays)."""


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class _TreeTable:
    """One tree's leaves: their path nodes and directions, and the pattern tables."""

    mean_value: float
    split_features: NDArray[np.int64]  # (nodes,), leaves 0
    thresholds: NDArray[np.float32]  # (nodes,)
    default_left: NDArray[np.bool_]  # (nodes,)
    path_nodes: NDArray[np.int64]  # (leaves, depth), padded with 0
    path_left: NDArray[np.bool_]  # (leaves, depth): the path goes left there
    path_valid: NDArray[np.bool_]  # (leaves, depth)
    offsets: NDArray[np.int64]  # (leaves,): each leaf's first row of ``values``
    values: NDArray[np.float64]  # (sum of 2**k, depth): contribution per pattern, 0-padded
    columns: NDArray[np.int64]  # the (leaf, column) cells that hold a feature, by feature
    starts: NDArray[np.int64]  # where each feature's cells begin in ``columns``
    features: NDArray[np.int64]  # those features, ascending

    def add_to(self, phi: NDArray[np.float64], matrix: NDArray[np.float32]) -> None:
        """Add the tree's contributions of ``matrix``'s rows to ``phi`` (in place)."""
        phi[:, -1] += self.mean_value
        x = matrix[:, self.split_features]
        left = np.where(np.isnan(x), self.default_left, x < self.thresholds)
        follows = (left[:, self.path_nodes] == self.path_left) & self.path_valid
        weights = np.left_shift(1, np.arange(self.path_nodes.shape[1], dtype=np.int64))
        pattern = (follows * weights).sum(axis=2)  # (rows, leaves)
        if not self.features.size:  # a single leaf: no feature contributes
            return
        found = self.values[self.offsets + pattern]  # (rows, leaves, depth)
        cells = found.reshape(matrix.shape[0], -1)[:, self.columns]
        phi[:, self.features] += np.add.reduceat(cells, self.starts, axis=1)


class ContributionTables:
    """An ensemble's TreeSHAP contributions by table look-up (module docstring).

    Parameters
    ----------
    ensemble : Ensemble
        The trees (their covers weight the paths, as in :func:`credit.gbdt.contributions`).
    """

    def __init__(self, ensemble: Ensemble) -> None:
        self.n_features = ensemble.bins.n_features
        self.base_margin = ensemble.base_margin
        self._trees = tuple(_tree_table(tree) for tree in ensemble.trees)

    def contributions(self, values: NDArray[np.floating]) -> NDArray[np.float64]:
        """Per row, each feature's contribution to the margin and, last, the bias.

        As :func:`credit.gbdt.contributions` (to floating-point rounding).
        """
        matrix = np.asarray(values, dtype=np.float32)
        phi = np.zeros((matrix.shape[0], self.n_features + 1), dtype=np.float64)
        phi[:, -1] = self.base_margin
        for start in range(0, matrix.shape[0], ROW_CHUNK):
            part = slice(start, start + ROW_CHUNK)
            for table in self._trees:
                table.add_to(phi[part], matrix[part])
        return phi


def table_values(ensemble: Ensemble) -> int:
    """Table entries :class:`ContributionTables` would hold for ``ensemble``."""
    total = 0
    for tree in ensemble.trees:
        for nodes in _leaf_paths(tree).values():
            total += 2 ** len(nodes) * max(len(nodes), 1)
    return total


def contribution_tables(ensemble: Ensemble) -> ContributionTables | None:
    """The ensemble's tables, or None when they would exceed :data:`MAX_TABLE_VALUES`."""
    if table_values(ensemble) > MAX_TABLE_VALUES:
        return None
    return ContributionTables(ensemble)


def _leaf_paths(tree: Tree) -> dict[int, list[tuple[int, bool]]]:
    """Each leaf's path from the root: (node, goes left), leaves in depth-first order."""
    paths: dict[int, list[tuple[int, bool]]] = {}
    stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if tree.is_leaf(node):
            paths[node] = path
            continue
        stack.append((tree.right_children[node], [*path, (node, False)]))
        stack.append((tree.left_children[node], [*path, (node, True)]))
    return paths


def _tree_table(tree: Tree) -> _TreeTable:
    paths = _leaf_paths(tree)
    depth = max((len(path) for path in paths.values()), default=0) or 1
    leaves = len(paths)
    path_nodes = np.zeros((leaves, depth), dtype=np.int64)
    path_left = np.zeros((leaves, depth), dtype=np.bool_)
    path_valid = np.zeros((leaves, depth), dtype=np.bool_)
    features = np.zeros((leaves, depth), dtype=np.int64)
    has_feature = np.zeros((leaves, depth), dtype=np.bool_)
    blocks: list[NDArray[np.float64]] = []
    offsets = np.zeros(leaves, dtype=np.int64)
    covers = np.asarray(tree.covers, dtype=np.float64)
    for number, (leaf, path) in enumerate(paths.items()):
        k = len(path)
        path_nodes[number, :k] = [node for node, _ in path]
        path_left[number, :k] = [left for _, left in path]
        path_valid[number, :k] = True
        follows = (np.arange(2**k)[:, np.newaxis] >> np.arange(k)) & 1
        found, shares = path_contributions(tree, covers, leaf, path, follows.astype(np.float64))
        block = np.zeros((2**k, depth))
        block[:, : len(found)] = shares
        features[number, : len(found)] = found
        has_feature[number, : len(found)] = True
        offsets[number] = sum(len(b) for b in blocks)
        blocks.append(block)
    return _TreeTable(
        mean_value=mean_leaf_value(tree, covers, 0),
        split_features=np.maximum(np.asarray(tree.split_features, dtype=np.int64), 0),
        thresholds=np.asarray(tree.thresholds, dtype=np.float32),
        default_left=np.asarray(tree.default_left, dtype=np.bool_),
        path_nodes=path_nodes,
        path_left=path_left,
        path_valid=path_valid,
        offsets=offsets,
        values=np.vstack(blocks),
        **_feature_cells(features, has_feature),
    )


def _feature_cells(
    features: NDArray[np.int64], valid: NDArray[np.bool_]
) -> dict[str, NDArray[np.int64]]:
    """The cells of the (leaves, depth) grid holding a feature, grouped by feature."""
    cells = np.flatnonzero(valid.ravel())
    order = np.argsort(features.ravel()[cells], kind="stable")
    cells = cells[order]
    used, starts = np.unique(features.ravel()[cells], return_index=True)
    return {"columns": cells, "starts": starts.astype(np.int64), "features": used}

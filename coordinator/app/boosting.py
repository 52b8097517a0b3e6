"""The coordinator's side of federated boosting: one summed exchange per tree level.

For each tree, for each level (:mod:`credit.messages.gbdt` has the message)::

    orders = LevelOrders(tree, depth, the grower's open nodes, the previous
                         level's splits, at depth 0 the leaf values of the
                         tree before)
    summed = level_sum(orders)          the banks' histograms of those nodes,
                                        summed (securely, or in the clear)
    splits = grower.grow_level(consistent_sum(summed))
                                        the core's split choice (credit.gbdt) on
                                        the sum made consistent (a no-op on an
                                        exact sum; it cuts the noise of a DP one)

and when the tree is finished its leaf values travel with the next tree's first
orders. The coordinator holds what :class:`~credit.gbdt.TreeGrower` holds (the summed
histograms of the current level, the chosen splits), the finished trees and a
:class:`LevelRecord` per level (open nodes, splits, seconds): under secure aggregation
it never holds one bank's histogram (``tests/simulations/test_gbdt_consortium.py``
checks it).

The orders name the nodes the grower asks for (below the root, one child per split:
the grower derives its sibling as the parent's minus it). ``level_sum`` is a
:class:`LevelSum`: any transport that returns the consortium's sum for those nodes
(``simulations.gbdt_consortium`` runs one in this process, plain or through the
secure aggregation protocol).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from credit.gbdt import (
    HISTOGRAM_CHANNELS,
    BoostingParams,
    Ensemble,
    FeatureBins,
    LevelSplits,
    NodeSplit,
    Tree,
    TreeGrower,
    base_margin,
    sample_features,
)
from credit.messages.gbdt import LevelOrders, SplitOrder
from privacy.gbdt_histogram import consistent_sum

__all__ = [
    "BoostingRun",
    "LevelRecord",
    "LevelSum",
    "heap_leaf_values",
    "train_federated",
]


class LevelSum(Protocol):
    """Sends one level's orders to the banks; returns their summed histograms.

    The result is int64 ``(len(orders.nodes), features, n_bins, 3)``: the consortium's
    sum for the nodes the orders ask for, in their order.
    """

    def __call__(self, orders: LevelOrders) -> NDArray[np.int64]:
        """The summed histograms of ``orders.nodes``."""
        ...


@dataclass(frozen=True)
class LevelRecord:
    """What the coordinator keeps of one level: no histogram, only its outcome."""

    tree: int
    depth: int
    nodes: tuple[int, ...]
    splits: tuple[SplitOrder, ...]
    seconds: float


@dataclass
class BoostingRun:
    """A federated boosting run's state at the coordinator (trees so far, level records)."""

    params: BoostingParams
    bins: FeatureBins
    base_score: float
    trees: list[Tree]
    levels: list[LevelRecord]

    def ensemble(self) -> Ensemble:
        """The trees so far as an ensemble."""
        return Ensemble(trees=tuple(self.trees), base_score=self.base_score, bins=self.bins)


def heap_leaf_values(tree: Tree) -> dict[int, float]:
    """The leaf values of ``tree`` by heap node number (root 0, children 2n+1 and 2n+2)."""
    leaves: dict[int, float] = {}
    stack = [(0, 0)]  # (index in the tree's breadth-first layout, heap number)
    while stack:
        index, heap = stack.pop()
        if tree.is_leaf(index):
            leaves[heap] = float(tree.values[index])
        else:
            stack.append((tree.left_children[index], 2 * heap + 1))
            stack.append((tree.right_children[index], 2 * heap + 2))
    return leaves


def _orders(
    run: BoostingRun,
    at: tuple[int, int],
    nodes: tuple[int, ...],
    splits: LevelSplits,
    leaves: dict[int, float],
) -> LevelOrders:
    return LevelOrders(
        tree=at[0],
        depth=at[1],
        nodes=nodes,
        n_trees=run.params.n_trees,
        max_depth=run.params.max_depth,
        base_margin=base_margin(run.base_score),
        subsample=run.params.subsample,
        splits=tuple(
            SplitOrder(
                node=s.node, feature=s.feature, split_bin=s.split_bin, default_left=s.default_left
            )
            for s in splits.splits
        ),
        leaves=leaves,
    )


def train_federated(
    *,
    params: BoostingParams,
    bins: FeatureBins,
    base_score: float,
    level_sum: LevelSum,
    rng: np.random.Generator,
    on_level: Callable[[LevelRecord], None] | None = None,
    on_tree: Callable[[BoostingRun], None] | None = None,
    resume: BoostingRun | None = None,
) -> BoostingRun:
    """Grow ``params.n_trees`` trees, one summed exchange per level (module docstring).

    Parameters
    ----------
    params : BoostingParams
        The hyperparameters (``subsample`` is sent: each bank draws its own rows).
    bins : FeatureBins
        The consortium's shared bins.
    base_score : float
        The starting probability (the consortium's default rate).
    level_sum : LevelSum
        The banks' summed histograms of one level.
    rng : numpy.random.Generator
        The coordinator's public randomness (column subsampling; as central training's).
    on_level : callable, optional
        Receives each level's record.
    on_tree : callable, optional
        Receives the run after each finished tree (to checkpoint it:
        :func:`~coordinator.app.boosting_checkpoint.save_boosting_checkpoint`).
    resume : BoostingRun, optional
        A checkpointed run of the same ``params`` and ``bins`` (left unchanged; its
        ``base_score`` is kept): training goes on at its next tree (``rng`` is
        advanced past the finished trees' column draws), the banks being sent its last
        tree's final splits and leaf values first.
    """
    if resume is not None and (resume.params, resume.bins) != (params, bins):
        raise ValueError("resume must be a run of the same params and bins")
    run = BoostingRun(
        params=params,
        bins=bins,
        base_score=base_score if resume is None else resume.base_score,
        trees=[] if resume is None else list(resume.trees),
        levels=[] if resume is None else list(resume.levels),
    )
    splits, leaves = LevelSplits(()), dict[int, float]()
    for _ in run.trees:  # the finished trees' column draws, as when they were grown
        sample_features(bins.n_features, params.colsample_bytree, rng)
    if run.trees:
        last = [level for level in run.levels if level.tree == len(run.trees) - 1][-1]
        splits = LevelSplits(tuple(_split(order) for order in last.splits))
        leaves = heap_leaf_values(run.trees[-1])
    for tree in range(len(run.trees), params.n_trees):
        mask = sample_features(bins.n_features, params.colsample_bytree, rng)
        grower = TreeGrower(params=params, bins=bins, feature_mask=mask)
        splits = _grow(run, grower, tree, splits, leaves, level_sum, on_level)
        finished = grower.tree()
        run.trees.append(finished)
        leaves = heap_leaf_values(finished)
        if on_tree is not None:
            on_tree(run)
    return run


def _grow(
    run: BoostingRun,
    grower: TreeGrower,
    tree: int,
    splits: LevelSplits,
    leaves: dict[int, float],
    level_sum: LevelSum,
    on_level: Callable[[LevelRecord], None] | None,
) -> LevelSplits:
    """Grow ``tree`` level by level; its last level's splits (the banks apply them next)."""
    depth, bins = 0, run.bins
    while not grower.finished:
        started = time.monotonic()
        nodes = grower.open_nodes
        orders = _orders(run, (tree, depth), nodes, splits, leaves if depth == 0 else {})
        summed = level_sum(orders)
        expected = (len(nodes), bins.n_features, bins.n_bins, HISTOGRAM_CHANNELS)
        if summed.shape != expected or summed.dtype != np.int64:
            raise ValueError(
                f"the level sum is {summed.dtype}{summed.shape}; expected int64{expected}"
            )
        splits = grower.grow_level(consistent_sum(summed, bins.regular_bins))
        record = LevelRecord(
            tree=tree,
            depth=depth,
            nodes=nodes,
            splits=_orders(run, (tree, depth), nodes, splits, {}).splits,
            seconds=time.monotonic() - started,
        )
        run.levels.append(record)
        if on_level is not None:
            on_level(record)
        depth += 1
    return splits


def _split(order: SplitOrder) -> NodeSplit:
    return NodeSplit(
        node=order.node,
        feature=order.feature,
        split_bin=order.split_bin,
        default_left=order.default_left,
    )

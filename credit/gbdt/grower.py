"""Growing one tree level by level: the coordinator's state and the bank's rows.

:class:`TreeGrower` holds what the coordinator knows of one tree (the summed histograms
it was given, the splits it chose); :class:`BankBoosting` holds what a bank keeps (its
codes, labels, margins and each row's node). One level:

1. the grower names its :attr:`TreeGrower.open_nodes`: the root, then one child of each
   split that has a child left to grow (the child with fewer rows);
2. every bank returns :meth:`BankBoosting.histogram` for them (int64; summed over banks
   by secure aggregation in federated training, used as is centrally);
3. :meth:`TreeGrower.grow_level` derives each sibling's histogram as its parent's minus
   the received child's (exact: integers), chooses the splits of the
   :attr:`TreeGrower.growing_nodes` and returns them as :class:`LevelSplits`, the only
   thing sent back;
4. every bank applies them (:meth:`BankBoosting.apply_splits`).

When :attr:`TreeGrower.finished`, :meth:`TreeGrower.tree` is the tree; each bank adds
it to its margins (:meth:`BankBoosting.finish_tree`). A tree of depth ``D`` takes at
most ``D`` levels: children at depth ``D`` (or too light to split) become leaves from
the sums their parent's split already gave.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.binning import FeatureBins
from credit.gbdt.gradients import (
    QuantisedGradients,
    base_margin,
    quantise_gradients,
    sample_rows,
)
from credit.gbdt.histogram import HISTOGRAM_CHANNELS, histograms
from credit.gbdt.params import BoostingParams
from credit.gbdt.splits import NodeSums, SplitCandidate, best_split, leaf_weight, node_sums
from credit.gbdt.tree import Tree

__all__ = [
    "BankBoosting",
    "LevelSplits",
    "NodeSplit",
    "TreeGrower",
    "apply_splits",
    "sample_features",
]


@dataclass(frozen=True)
class NodeSplit:
    """One chosen split as banks need it: rows of ``node`` with code < ``split_bin`` in
    ``feature`` go to ``2 * node + 1``, the others to ``2 * node + 2``; missing values
    (the missing code) go left when ``default_left``."""

    node: int
    feature: int
    split_bin: int
    default_left: bool


@dataclass(frozen=True)
class LevelSplits:
    """The splits of one level, in open-node order (nodes without one became leaves)."""

    splits: tuple[NodeSplit, ...]


def sample_features(
    n_features: int, colsample_bytree: float, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """The features one tree may split on: ``max(1, floor(colsample * n))`` of them.

    ``rng`` is the coordinator's public randomness (the same draw for every bank). At
    ``colsample_bytree == 1`` every feature, drawing nothing.
    """
    mask = np.ones(n_features, dtype=np.bool_)
    if colsample_bytree >= 1.0:
        return mask
    chosen = rng.choice(n_features, size=max(1, int(colsample_bytree * n_features)), replace=False)
    mask[:] = False
    mask[chosen] = True
    return mask


def apply_splits(
    codes: NDArray[np.uint8],
    node_of_row: NDArray[np.int64],
    splits: LevelSplits,
    missing_code: int,
) -> NDArray[np.int64]:
    """The rows' nodes after a level's splits (rows in other nodes keep theirs)."""
    moved = node_of_row.copy()
    for split in splits.splits:
        rows = np.flatnonzero(node_of_row == split.node)
        code = codes[rows, split.feature].astype(np.int64)
        left = np.where(code == missing_code, split.default_left, code < split.split_bin)
        moved[rows] = np.where(left, 2 * split.node + 1, 2 * split.node + 2)
    return moved


@dataclass
class _Node:
    """What the grower knows of one node: depth, exact sums, and its split if any."""

    depth: int
    sums: NodeSums | None = None
    split: SplitCandidate | None = None


class TreeGrower:
    """The coordinator's view of one tree while it grows (module docstring).

    Parameters
    ----------
    params : BoostingParams
        Depth, regularisation and learning rate.
    bins : FeatureBins
        The shared bins (regular bins per feature, thresholds).
    feature_mask : numpy.ndarray of bool, shape (features,)
        The features this tree may split on (:func:`sample_features`).
    """

    def __init__(
        self, *, params: BoostingParams, bins: FeatureBins, feature_mask: NDArray[np.bool_]
    ) -> None:
        mask = np.asarray(feature_mask, dtype=np.bool_)
        if mask.shape != (bins.n_features,):
            raise ValueError(
                f"feature_mask needs one entry per feature ({bins.n_features}); got {mask.shape}"
            )
        self._params = params
        self._bins = bins
        self._mask = mask
        self._nodes: dict[int, _Node] = {0: _Node(depth=0)}
        self._growing: tuple[int, ...] = (0,)
        self._requested: tuple[int, ...] = (0,)
        self._split_histograms: dict[int, NDArray[np.int64]] = {}

    @property
    def open_nodes(self) -> tuple[int, ...]:
        """The nodes (heap numbering) whose histograms the next level needs; root: ``(0,)``.

        Below the root, one child per split: the one with fewer rows (the left one on a
        tie). Its sibling's histogram is the parent's minus its own, exactly.
        """
        return self._requested

    @property
    def growing_nodes(self) -> tuple[int, ...]:
        """The nodes the next level may split (each one in :attr:`open_nodes` or the
        sibling of one)."""
        return self._growing

    @property
    def finished(self) -> bool:
        """Whether no node is open (:meth:`tree` is ready)."""
        return not self._growing

    def grow_level(self, histogram: NDArray[np.int64]) -> LevelSplits:
        """Choose the growing nodes' splits from the summed histogram of :attr:`open_nodes`.

        Each growing node's sums are read from its histogram; a node without a
        qualifying split becomes a leaf, and so does a child at ``max_depth`` or one too
        light to split (fewer than 2 rows, or a Hessian sum below ``2 *
        min_child_weight``).

        Parameters
        ----------
        histogram : numpy.ndarray of int64, shape (len(open_nodes), features, n_bins, 3)
            The sum over banks of :meth:`BankBoosting.histogram` for :attr:`open_nodes`.

        Raises
        ------
        ValueError
            The histogram's shape does not match, or the tree is finished.
        """
        expected = (
            len(self._requested),
            self._bins.n_features,
            self._bins.n_bins,
            HISTOGRAM_CHANNELS,
        )
        if self.finished or histogram.shape != expected:
            raise ValueError(
                f"the level's histogram must have shape {expected} (open nodes "
                f"{self._requested}); got {histogram.shape}"
            )
        level = self._level_histograms(histogram)
        splits, split_histograms = [], {}
        for node in self._growing:
            record = self._nodes[node]
            record.sums = node_sums(level[node])
            record.split = best_split(
                level[node], self._bins.regular_bins, self._mask, self._params
            )
            if record.split is not None:
                split = record.split
                splits.append(NodeSplit(node, split.feature, split.split_bin, split.default_left))
                split_histograms[node] = level[node]
                for child, sums in ((2 * node + 1, split.left), (2 * node + 2, split.right)):
                    self._nodes[child] = _Node(depth=record.depth + 1, sums=sums)
        self._split_histograms = split_histograms
        self._plan_next_level(tuple(split_histograms))
        return LevelSplits(splits=tuple(splits))

    def _level_histograms(self, histogram: NDArray[np.int64]) -> dict[int, NDArray[np.int64]]:
        """Every growing node's histogram: as received, or the parent's minus the sibling's."""
        level = dict(zip(self._requested, histogram, strict=True))
        for node in self._growing:
            if node not in level:
                sibling = node + 1 if node % 2 == 1 else node - 1
                level[node] = self._split_histograms[(node - 1) // 2] - level[sibling]
        return level

    def _plan_next_level(self, split_nodes: tuple[int, ...]) -> None:
        growing, requested = [], []
        for node in split_nodes:
            left, right = self._nodes[2 * node + 1], self._nodes[2 * node + 2]
            children = [
                c for c, r in ((2 * node + 1, left), (2 * node + 2, right)) if self._may_split(r)
            ]
            if not children:
                continue
            growing.extend(children)
            left_count = left.sums.count if left.sums is not None else 0
            right_count = right.sums.count if right.sums is not None else 0
            requested.append(2 * node + 1 if left_count <= right_count else 2 * node + 2)
        self._growing, self._requested = tuple(growing), tuple(requested)

    def _may_split(self, node: _Node) -> bool:
        sums = node.sums
        return (
            sums is not None
            and node.depth < self._params.max_depth
            and sums.count >= 2
            and sums.hessian_value >= 2 * self._params.min_child_weight
        )

    def tree(self) -> Tree:
        """The grown tree (nodes renumbered breadth-first).

        Raises
        ------
        RuntimeError
            Nodes are still open.
        """
        if not self.finished:
            raise RuntimeError(f"the tree still has open nodes {self._growing}")
        order = sorted(self._nodes)  # heap numbers sorted: breadth-first order
        index = {node: position for position, node in enumerate(order)}
        columns: dict[str, list[Any]] = {name: [] for name in _TREE_FIELDS}
        for node in order:
            for name, value in self._node_fields(node, index).items():
                columns[name].append(value)
        return Tree(**{name: tuple(values) for name, values in columns.items()})

    def _node_fields(self, node: int, index: dict[int, int]) -> dict[str, Any]:
        record = self._nodes[node]
        sums = record.sums if record.sums is not None else NodeSums(0, 0, 0)
        fields: dict[str, Any] = {
            "left_children": -1,
            "right_children": -1,
            "split_features": -1,
            "split_bins": 0,
            "thresholds": 0.0,
            "default_left": False,
            "values": leaf_weight(sums, self._params),
            "gains": 0.0,
            "covers": float(np.float32(sums.hessian_value)),
            "counts": sums.count,
        }
        split = record.split
        if split is not None:
            threshold = self._bins.threshold(split.feature, split.split_bin)
            fields.update(
                left_children=index[2 * node + 1],
                right_children=index[2 * node + 2],
                split_features=split.feature,
                split_bins=split.split_bin,
                thresholds=threshold,
                default_left=split.default_left,
                gains=split.gain,
            )
        return fields


_TREE_FIELDS = tuple(field.name for field in fields(Tree))


class BankBoosting:
    """One bank's rows during boosting: codes, labels, margins and per-row nodes.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (rows, features)
        The bank's bin codes (:meth:`FeatureBins.codes`).
    labels : numpy.ndarray of int, shape (rows,)
        0/1 targets.
    bins : FeatureBins
        The shared bins.
    base_score : float
        The ensemble's starting probability.

    Raises
    ------
    ValueError
        Codes that do not have one column per feature or a code beyond the bins, or
        labels of another length.
    """

    def __init__(
        self,
        codes: NDArray[np.uint8],
        labels: NDArray[np.integer],
        *,
        bins: FeatureBins,
        base_score: float,
    ) -> None:
        if codes.ndim != 2 or codes.shape[1] != bins.n_features or len(labels) != len(codes):
            raise ValueError(
                f"codes need shape (rows, {bins.n_features}) and one label per row; got "
                f"codes {codes.shape} and {len(labels)} labels"
            )
        if codes.size and int(codes.max()) >= bins.n_bins:
            raise ValueError(f"bin codes must be < {bins.n_bins}; got {int(codes.max())}")
        self._codes = codes
        self._labels = np.asarray(labels)
        self._bins = bins
        self._margins = np.full(len(codes), base_margin(base_score), dtype=np.float64)
        self._nodes = np.full(len(codes), -1, dtype=np.int64)
        self._gradients = QuantisedGradients(
            gradients=np.zeros(len(codes), dtype=np.int64),
            hessians=np.zeros(len(codes), dtype=np.int64),
        )

    @property
    def margins(self) -> NDArray[np.float64]:
        """The rows' current raw scores (a copy)."""
        return self._margins.copy()

    def start_tree(self, *, subsample: float, rng: np.random.Generator | None) -> None:
        """Quantise the gradients at the current margins; put the sampled rows at the root.

        ``rng`` is the bank's own generator (row subsampling); unused (may be None) at
        ``subsample == 1``.

        Raises
        ------
        ValueError
            ``subsample < 1`` without a generator.
        """
        if subsample < 1.0 and rng is None:
            raise ValueError(f"subsample {subsample} < 1 needs the bank's random generator")
        sampled = (
            sample_rows(len(self._codes), subsample, rng)
            if rng is not None
            else np.ones(len(self._codes), dtype=np.bool_)
        )
        self._gradients = quantise_gradients(self._margins, self._labels)
        self._nodes = np.where(sampled, 0, -1).astype(np.int64)

    def histogram(self, open_nodes: tuple[int, ...]) -> NDArray[np.int64]:
        """This bank's int64 histogram of ``open_nodes`` (:func:`~credit.gbdt.histograms`)."""
        return histograms(
            self._codes,
            self._gradients.gradients,
            self._gradients.hessians,
            self._nodes,
            open_nodes,
            self._bins.n_bins,
        )

    def apply_splits(self, splits: LevelSplits) -> None:
        """Move the rows of split nodes to their children."""
        self._nodes = apply_splits(self._codes, self._nodes, splits, self._bins.missing_code)

    def finish_tree(self, tree: Tree) -> None:
        """Add the finished tree's leaf values to every row's margin (sampled or not)."""
        self._margins += tree.predict_codes(self._codes, self._bins.missing_code)

"""Growing one tree level by level: the coordinator's state and the bank's rows.

:class:`TreeGrower` holds what the coordinator knows of one tree (the summed histograms
it was given, the splits it chose); :class:`BankBoosting` holds what a bank keeps (its
codes, labels, margins and each row's node). One level:

1. the grower names its :attr:`TreeGrower.open_nodes`;
2. every bank returns :meth:`BankBoosting.histogram` for them (int64; summed over banks
   by secure aggregation in federated training, used as is centrally);
3. :meth:`TreeGrower.grow_level` chooses the splits from the sum and returns them as
   :class:`LevelSplits`, the only thing sent back;
4. every bank applies them (:meth:`BankBoosting.apply_splits`).

When :attr:`TreeGrower.finished`, :meth:`TreeGrower.tree` is the tree; each bank adds
it to its margins (:meth:`BankBoosting.finish_tree`). A tree of depth ``D`` takes at
most ``D`` levels: children at depth ``D`` (or too light to split) become leaves from
the sums their parent's split already gave.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.binning import FeatureBins
from credit.gbdt.params import BoostingParams
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
    raise NotImplementedError


def apply_splits(
    codes: NDArray[np.uint8],
    node_of_row: NDArray[np.int64],
    splits: LevelSplits,
    missing_code: int,
) -> NDArray[np.int64]:
    """The rows' nodes after a level's splits (rows in other nodes keep theirs)."""
    raise NotImplementedError


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
        raise NotImplementedError

    @property
    def open_nodes(self) -> tuple[int, ...]:
        """The nodes (heap numbering) whose histograms the next level needs; root: ``(0,)``."""
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        """Whether no node is open (:meth:`tree` is ready)."""
        raise NotImplementedError

    def grow_level(self, histogram: NDArray[np.int64]) -> LevelSplits:
        """Choose the open nodes' splits from their summed histogram.

        Parameters
        ----------
        histogram : numpy.ndarray of int64, shape (len(open_nodes), features, n_bins, 3)
            The sum over banks of :meth:`BankBoosting.histogram` for :attr:`open_nodes`.

        Raises
        ------
        ValueError
            The histogram's shape does not match, or the tree is finished.
        """
        raise NotImplementedError

    def tree(self) -> Tree:
        """The grown tree.

        Raises
        ------
        RuntimeError
            Nodes are still open.
        """
        raise NotImplementedError


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
    """

    def __init__(
        self,
        codes: NDArray[np.uint8],
        labels: NDArray[np.integer],
        *,
        bins: FeatureBins,
        base_score: float,
    ) -> None:
        raise NotImplementedError

    @property
    def margins(self) -> NDArray[np.float64]:
        """The rows' current raw scores."""
        raise NotImplementedError

    def start_tree(self, *, subsample: float, rng: np.random.Generator) -> None:
        """Quantise the gradients at the current margins; put the sampled rows at the root.

        ``rng`` is the bank's own generator (row subsampling); unused at ``subsample == 1``.
        """
        raise NotImplementedError

    def histogram(self, open_nodes: tuple[int, ...]) -> NDArray[np.int64]:
        """This bank's int64 histogram of ``open_nodes`` (:func:`~credit.gbdt.histograms`)."""
        raise NotImplementedError

    def apply_splits(self, splits: LevelSplits) -> None:
        """Move the rows of split nodes to their children."""
        raise NotImplementedError

    def finish_tree(self, tree: Tree) -> None:
        """Add the finished tree's leaf values to every row's margin (sampled or not)."""
        raise NotImplementedError

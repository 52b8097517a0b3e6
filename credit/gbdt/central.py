"""Central training: one "bank" holding every row, driven by the federated pieces.

The same :class:`~credit.gbdt.TreeGrower` and :class:`~credit.gbdt.BankBoosting` that
federated training uses, with the one bank's histogram as the sum, so a federated run
over any partition of the same rows grows the same trees (``subsample == 1``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from credit.gbdt.binning import FeatureBins
from credit.gbdt.gradients import base_score_from_counts
from credit.gbdt.grower import BankBoosting, TreeGrower, sample_features
from credit.gbdt.params import BoostingParams
from credit.gbdt.tree import Ensemble

__all__ = ["train_central"]


def train_central(
    codes: NDArray[np.uint8],
    labels: NDArray[np.integer],
    params: BoostingParams,
    rng: np.random.Generator,
    *,
    bins: FeatureBins,
    row_rng: np.random.Generator | None = None,
) -> Ensemble:
    """Boost ``params.n_trees`` trees on pooled rows.

    Parameters
    ----------
    codes : numpy.ndarray of uint8, shape (rows, features)
        Bin codes of the rows (:meth:`FeatureBins.codes`).
    labels : numpy.ndarray of int, shape (rows,)
        0/1 targets.
    params : BoostingParams
        Hyperparameters; ``base_score`` None: the labels' mean.
    rng : numpy.random.Generator
        The coordinator's randomness: column subsampling per tree.
    bins : FeatureBins
        The bins the codes come from.
    row_rng : numpy.random.Generator, optional
        The bank's randomness for row subsampling; required when ``subsample < 1``.

    Raises
    ------
    ValueError
        Shapes that do not match ``bins``, or ``subsample < 1`` without ``row_rng``.
    """
    if params.subsample < 1.0 and row_rng is None:
        raise ValueError(f"subsample {params.subsample} < 1 needs row_rng (the bank's generator)")
    y = np.asarray(labels)
    base_score = (
        float(np.float32(params.base_score))
        if params.base_score is not None
        else base_score_from_counts(int(y.sum()), len(y))
    )
    bank = BankBoosting(codes, y, bins=bins, base_score=base_score)
    trees = []
    for _ in range(params.n_trees):
        grower = TreeGrower(
            params=params,
            bins=bins,
            feature_mask=sample_features(bins.n_features, params.colsample_bytree, rng),
        )
        bank.start_tree(subsample=params.subsample, rng=row_rng)
        while not grower.finished:
            bank.apply_splits(grower.grow_level(bank.histogram(grower.open_nodes)))
        tree = grower.tree()
        bank.finish_tree(tree)
        trees.append(tree)
    return Ensemble(trees=tuple(trees), base_score=base_score, bins=bins)

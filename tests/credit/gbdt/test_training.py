"""Level-wise training: banks' summed histograms grow the central trees exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit.gbdt import (
    BankBoosting,
    BoostingParams,
    Ensemble,
    FeatureBins,
    LevelSplits,
    NodeSplit,
    Tree,
    TreeGrower,
    apply_splits,
    base_score_from_counts,
    sample_features,
    train_central,
)
from tests.credit.gbdt.conftest import BinnedRows

PARAMS = BoostingParams(n_trees=4, max_depth=3, learning_rate=0.3, colsample_bytree=0.7)


def _train_federated(
    rows: BinnedRows, owner: np.ndarray, params: BoostingParams, rng: np.random.Generator
) -> Ensemble:
    """The federated level loop with a plain sum standing in for secure aggregation."""
    bins = rows.bins
    base_score = base_score_from_counts(int(rows.labels.sum()), len(rows.labels))
    banks = [
        BankBoosting(
            rows.codes[owner == b], rows.labels[owner == b], bins=bins, base_score=base_score
        )
        for b in np.unique(owner)
    ]
    trees = []
    for _ in range(params.n_trees):
        mask = sample_features(bins.n_features, params.colsample_bytree, rng)
        grower = TreeGrower(params=params, bins=bins, feature_mask=mask)
        for bank in banks:
            bank.start_tree(subsample=1.0, rng=None)
        while not grower.finished:
            summed = sum(bank.histogram(grower.open_nodes) for bank in banks)
            splits = grower.grow_level(summed)
            for bank in banks:
                bank.apply_splits(splits)
        tree = grower.tree()
        for bank in banks:
            bank.finish_tree(tree)
        trees.append(tree)
    return Ensemble(trees=tuple(trees), base_score=base_score, bins=bins)


@pytest.fixture(scope="module")
def central(credit_rows: BinnedRows) -> Ensemble:
    return train_central(
        credit_rows.codes,
        credit_rows.labels,
        PARAMS,
        np.random.default_rng(11),
        bins=credit_rows.bins,
    )


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31), banks=st.integers(2, 7))
def test_federated_trees_equal_central_trees(
    credit_rows: BinnedRows, central: Ensemble, seed: int, banks: int
) -> None:
    owner = np.random.default_rng(seed).integers(0, banks, size=len(credit_rows.labels))
    federated = _train_federated(credit_rows, owner, PARAMS, np.random.default_rng(11))
    assert federated == central  # split features, thresholds, leaf values, covers: exactly


def test_trees_split_and_learn(credit_rows: BinnedRows, central: Ensemble) -> None:
    assert all(tree.n_nodes > 1 for tree in central.trees)
    assert max(max(tree.gains) for tree in central.trees) > 1.0
    margin = central.margin(credit_rows.values)
    base = np.full_like(margin, central.base_margin)

    def loss(m: np.ndarray) -> float:
        return float(np.mean(np.logaddexp(0.0, m) - credit_rows.labels * m))

    assert loss(margin) < loss(base) - 0.01


def test_margins_from_codes_equal_margins_from_values(
    credit_rows: BinnedRows, central: Ensemble
) -> None:
    np.testing.assert_array_equal(
        central.margin_from_codes(credit_rows.codes), central.margin(credit_rows.values)
    )


def test_missing_values_follow_the_learned_direction(missing_rows: BinnedRows) -> None:
    params = BoostingParams(n_trees=3, max_depth=2, learning_rate=0.5)
    ensemble = train_central(
        missing_rows.codes,
        missing_rows.labels,
        params,
        np.random.default_rng(0),
        bins=missing_rows.bins,
    )
    on_b = [
        t.default_left[n]
        for t in ensemble.trees
        for n in range(t.n_nodes)
        if t.split_features[n] == 1
    ]
    assert on_b, "feature b (informative missing values) is never split on"
    np.testing.assert_array_equal(
        ensemble.margin_from_codes(missing_rows.codes), ensemble.margin(missing_rows.values)
    )


def test_row_subsampling_needs_the_banks_generator(credit_rows: BinnedRows) -> None:
    params = BoostingParams(n_trees=2, max_depth=2, subsample=0.5)
    with pytest.raises(ValueError, match=r"subsample 0\.5 < 1 needs row_rng"):
        train_central(
            credit_rows.codes,
            credit_rows.labels,
            params,
            np.random.default_rng(0),
            bins=credit_rows.bins,
        )
    sampled = train_central(
        credit_rows.codes,
        credit_rows.labels,
        params,
        np.random.default_rng(0),
        bins=credit_rows.bins,
        row_rng=np.random.default_rng(1),
    )
    assert 0.4 < sampled.trees[0].counts[0] / len(credit_rows.labels) < 0.6


def test_column_subsampling_keeps_splits_on_drawn_features() -> None:
    mask = sample_features(10, 0.35, np.random.default_rng(2))
    assert mask.sum() == 3
    assert sample_features(10, 1.0, np.random.default_rng(2)).all()
    assert sample_features(10, 0.01, np.random.default_rng(2)).sum() == 1


def test_apply_splits_moves_only_split_nodes() -> None:
    codes = np.array([[0, 3], [2, 1], [3, 0], [1, 1]], dtype=np.uint8)  # 3: missing
    nodes = np.array([1, 1, 1, 2])
    splits = LevelSplits(splits=(NodeSplit(node=1, feature=0, split_bin=2, default_left=True),))
    np.testing.assert_array_equal(apply_splits(codes, nodes, splits, 3), [3, 4, 3, 2])


def test_banks_send_one_child_per_split_and_the_sibling_is_derived(
    credit_rows: BinnedRows,
) -> None:
    """The grower asks for the smaller child only; its trees equal XGBoost's elsewhere
    (test_xgboost_oracle), so the derived siblings are right."""
    bins, params = credit_rows.bins, BoostingParams(max_depth=3)
    grower = TreeGrower(params=params, bins=bins, feature_mask=np.ones(bins.n_features, bool))
    bank = BankBoosting(credit_rows.codes, credit_rows.labels, bins=bins, base_score=0.2)
    bank.start_tree(subsample=1.0, rng=None)
    bank.apply_splits(grower.grow_level(bank.histogram(grower.open_nodes)))
    assert grower.growing_nodes == (1, 2)
    (requested,) = grower.open_nodes
    counts = bank.histogram((1, 2))[:, 0, :, 2].sum(axis=1)
    assert requested == (1 if counts[0] <= counts[1] else 2)


def test_grower_refuses_a_histogram_of_the_wrong_shape() -> None:
    bins = FeatureBins(names=("x",), edges=((0.0, 1.0),))
    grower = TreeGrower(params=PARAMS, bins=bins, feature_mask=np.ones(1, bool))
    with pytest.raises(
        ValueError, match=r"shape \(1, 1, 4, 3\) \(open nodes \(0,\)\); got \(2, 1, 4, 3\)"
    ):
        grower.grow_level(np.zeros((2, 1, 4, 3), dtype=np.int64))
    with pytest.raises(RuntimeError, match=r"open nodes \(0,\)"):
        grower.tree()


def _stump(**changes: object) -> Tree:
    fields = {
        "left_children": (1, -1, -1),
        "right_children": (2, -1, -1),
        "split_features": (0, -1, -1),
        "split_bins": (1, 0, 0),
        "thresholds": (0.0, 0.0, 0.0),
        "default_left": (False, False, False),
        "values": (0.0, -0.1, 0.1),
        "gains": (1.0, 0.0, 0.0),
        "covers": (2.0, 1.0, 1.0),
        "counts": (8, 4, 4),
    }
    fields.update(changes)
    return Tree(**fields)  # type: ignore[arg-type]


def test_a_tree_whose_children_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="tree node 1: children must be two later nodes"):
        _stump(left_children=(1, 0, -1), right_children=(2, 2, -1))
    with pytest.raises(ValueError, match="one entry per node"):
        _stump(counts=(8, 4))


def test_an_ensemble_refuses_a_threshold_that_is_not_the_bins_edge() -> None:
    bins = FeatureBins(names=("x",), edges=((0.0, 1.0),))
    Ensemble(trees=(_stump(),), base_score=0.5, bins=bins)
    with pytest.raises(ValueError, match=r"tree 0 node 0: feature 0, bin 1 and threshold 1\.0"):
        Ensemble(trees=(_stump(thresholds=(1.0, 0.0, 0.0)),), base_score=0.5, bins=bins)
    with pytest.raises(ValueError, match="bin 4"):
        Ensemble(trees=(_stump(split_bins=(4, 0, 0)),), base_score=0.5, bins=bins)

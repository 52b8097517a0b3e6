"""Split finding: XGBoost's gain by enumeration, default directions, tie-breaking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from credit.gbdt import (
    GRADIENT_SCALE,
    BoostingParams,
    NodeSums,
    best_split,
    histograms,
    leaf_weight,
)

PARAMS = BoostingParams(reg_lambda=1.0, min_child_weight=0.5)


def _node_histogram(codes: np.ndarray, g: np.ndarray, h: np.ndarray, n_bins: int) -> np.ndarray:
    nodes = np.zeros(len(codes), dtype=np.int64)
    return histograms(codes, g, h, nodes, (0,), n_bins)[0]


def _score(g: float, h: float, reg_lambda: float) -> float:
    return g * g / (h + reg_lambda)


def _enumerated_best(codes, g, h, regular, missing_code, params):  # type: ignore[no-untyped-def]
    """Every (feature, bin, direction) by brute force over rows, in tie-breaking order."""
    gs, hs = g / GRADIENT_SCALE, h / GRADIENT_SCALE
    parent = _score(gs.sum(), hs.sum(), params.reg_lambda)
    best = None
    for feature, left_missing, split_bin in itertools.product(
        range(codes.shape[1]), (False, True), range(1, missing_code + 1)
    ):
        column = codes[:, feature]
        is_missing = column == missing_code
        if split_bin > regular[feature] or (split_bin == regular[feature] and left_missing):
            continue
        if left_missing and not is_missing.any():
            continue
        if split_bin == regular[feature] and not is_missing.any():
            continue
        left = np.where(is_missing, left_missing, column < split_bin)
        if left.all() or not left.any():
            continue
        if min(hs[left].sum(), hs[~left].sum()) < params.min_child_weight:
            continue
        gain = (
            _score(gs[left].sum(), hs[left].sum(), params.reg_lambda)
            + _score(gs[~left].sum(), hs[~left].sum(), params.reg_lambda)
            - parent
        )
        if best is None or gain > best[0] + 1e-12:
            best = (gain, feature, split_bin, left_missing)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_best_split_is_the_enumerated_best(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, regular = 200, np.array([5, 3, 7])
    codes = np.column_stack([rng.integers(0, r, rows) for r in regular]).astype(np.uint8)
    codes[rng.random((rows, 3)) < 0.15] = 7  # the missing code (n_bins = 8)
    g = rng.integers(-(2**20), 2**20, rows)
    h = rng.integers(0, 2**18, rows)
    split = best_split(_node_histogram(codes, g, h, 8), regular, np.ones(3, bool), PARAMS)
    expected = _enumerated_best(codes, g, h, regular, 7, PARAMS)
    assert split is not None and expected is not None
    assert (split.feature, split.split_bin, split.default_left) == expected[1:]
    assert split.gain == pytest.approx(expected[0], rel=1e-9)
    left = np.where(
        codes[:, split.feature] == 7, split.default_left, codes[:, split.feature] < split.split_bin
    )
    assert split.left == NodeSums(int(g[left].sum()), int(h[left].sum()), int(left.sum()))


def test_missing_values_go_where_their_gradients_belong() -> None:
    codes = np.array([[0], [0], [1], [1], [3], [3]], dtype=np.uint8)  # 3: missing
    g = np.array([-1, -1, 1, 1, -1, -1]) * GRADIENT_SCALE // 2
    h = np.full(6, GRADIENT_SCALE // 4)
    split = best_split(
        _node_histogram(codes, g, h, 4),
        np.array([3]),
        np.ones(1, bool),
        PARAMS.model_copy(update={"min_child_weight": 0.0}),
    )
    assert split is not None and (split.split_bin, split.default_left) == (1, True)


def test_equal_gains_pick_the_lowest_feature() -> None:
    rng = np.random.default_rng(1)
    column = rng.integers(0, 4, 100)
    codes = np.column_stack([column, column, column]).astype(np.uint8)
    g = np.where(column < 2, -1, 1) * (GRADIENT_SCALE // 2)
    h = np.full(100, GRADIENT_SCALE // 4)
    mask = np.array([False, True, True])
    split = best_split(_node_histogram(codes, g, h, 5), np.array([4, 4, 4]), mask, PARAMS)
    assert split is not None and (split.feature, split.split_bin) == (1, 2)


def test_gamma_and_min_child_weight_stop_a_split() -> None:
    codes = np.array([[0], [0], [1], [1]], dtype=np.uint8)
    g = np.array([-1, -1, 1, 1]) * (GRADIENT_SCALE // 2)
    h = np.full(4, GRADIENT_SCALE // 4)
    histogram = _node_histogram(codes, g, h, 3)
    regular, mask = np.array([2]), np.ones(1, bool)
    gain = 2 * _score(1.0, 0.5, 1.0)
    found = best_split(histogram, regular, mask, BoostingParams(min_child_weight=0.5))
    assert found is not None and found.gain == pytest.approx(gain)
    assert best_split(histogram, regular, mask, BoostingParams(gamma=gain)) is None
    assert best_split(histogram, regular, mask, BoostingParams(min_child_weight=0.51)) is None


def test_leaf_weight_is_shrunk_newton_step_in_float32() -> None:
    sums = NodeSums(gradient=-3 * GRADIENT_SCALE, hessian=GRADIENT_SCALE, count=9)
    weight = leaf_weight(sums, BoostingParams(reg_lambda=2.0, learning_rate=0.3))
    assert weight == float(np.float32(0.3))

"""Per-level histograms: a brute-force check and exact sums over any partition."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit.gbdt import histograms


def _rows(seed: int, rows: int = 300) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 6, size=(rows, 3)).astype(np.uint8)
    gradients = rng.integers(-(2**20), 2**20 + 1, size=rows)
    hessians = rng.integers(0, 2**18 + 1, size=rows)
    nodes = rng.choice(np.array([-1, 3, 4, 5, 6]), size=rows)
    return codes, gradients, hessians, nodes


def test_histogram_matches_a_loop_over_rows() -> None:
    codes, gradients, hessians, nodes = _rows(0)
    open_nodes = (5, 3, 6)
    result = histograms(codes, gradients, hessians, nodes, open_nodes, 6)
    expected = np.zeros((3, 3, 6, 3), dtype=np.int64)
    for row in range(len(codes)):
        if nodes[row] in open_nodes:
            position = open_nodes.index(nodes[row])
            for feature in range(3):
                expected[position, feature, codes[row, feature]] += (
                    gradients[row],
                    hessians[row],
                    1,
                )
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == np.int64


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), banks=st.integers(1, 6))
def test_bank_histograms_sum_to_the_pooled_histogram(seed: int, banks: int) -> None:
    codes, gradients, hessians, nodes = _rows(seed, rows=400)
    owner = np.random.default_rng(seed + 1).integers(0, banks, size=len(codes))
    pooled = histograms(codes, gradients, hessians, nodes, (3, 4, 5, 6), 6)
    total = sum(
        histograms(codes[m], gradients[m], hessians[m], nodes[m], (3, 4, 5, 6), 6)
        for m in (owner == bank for bank in range(banks))
    )
    np.testing.assert_array_equal(total, pooled)


def test_codes_beyond_the_histogram_width_are_refused() -> None:
    codes, gradients, hessians, nodes = _rows(1)
    with pytest.raises(ValueError, match=r"bin codes must be < n_bins \(5\); got 5"):
        histograms(codes, gradients, hessians, nodes, (3,), 5)


def test_rows_must_match() -> None:
    codes, gradients, hessians, nodes = _rows(2)
    with pytest.raises(ValueError, match="codes have 300 rows"):
        histograms(codes, gradients[:-1], hessians, nodes, (3,), 6)

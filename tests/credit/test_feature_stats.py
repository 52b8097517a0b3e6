"""Per-bank feature aggregates combine into exactly the pooled aggregate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit.datasets import embedded_data_path
from credit.feature_stats import (
    DEFAULT_GRID_BINS,
    FeatureStats,
    combine_feature_stats,
    compute_feature_stats,
    grid_edges,
    numeric_inputs,
    settle_noisy,
    stats_from_histogram,
    transform_values,
)
from credit.loading import load_bank_csv
from credit.schema import DatasetSchema

# Five banks of unequal size: 1,000 / 3,000 / 7,000 / 8,000 / 11,000 rows.
BANK_CUTS = [1_000, 4_000, 11_000, 19_000]


@pytest.fixture(scope="module")
def frame(schema: DatasetSchema) -> pd.DataFrame:
    """The embedded data set, validated and typed."""
    return load_bank_csv(embedded_data_path(), schema).frame


@pytest.fixture(scope="module")
def bank_frames(frame: pd.DataFrame) -> list[pd.DataFrame]:
    rows = np.random.default_rng(0).permutation(len(frame))
    return [frame.iloc[part] for part in np.split(rows, BANK_CUTS)]


def _assert_same_stats(actual: FeatureStats, expected: FeatureStats) -> None:
    assert actual.grid_bins == expected.grid_bins
    assert list(actual.numeric) == list(expected.numeric)
    for name, stats in expected.numeric.items():
        got = actual.numeric[name]
        np.testing.assert_array_equal(got.histogram, stats.histogram, err_msg=name)
        assert got.histogram.dtype == np.float64  # whole counts, or noisy reals
        assert np.array_equal(got.histogram, np.round(got.histogram))
        assert got.count == stats.count
        assert got.total == pytest.approx(stats.total, rel=1e-12)
        assert got.total_squares == pytest.approx(stats.total_squares, rel=1e-12)


def test_bank_parts_are_unequal_and_cover_the_data(
    bank_frames: list[pd.DataFrame], frame: pd.DataFrame
) -> None:
    sizes = [len(part) for part in bank_frames]
    assert len(set(sizes)) == 5
    assert sum(sizes) == len(frame)


def test_combined_bank_stats_equal_pooled_stats(
    bank_frames: list[pd.DataFrame], frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    combined = combine_feature_stats([compute_feature_stats(p, schema) for p in bank_frames])
    pooled = compute_feature_stats(frame, schema)

    _assert_same_stats(combined, pooled)
    assert pooled.grid_bins == DEFAULT_GRID_BINS


def test_combination_does_not_depend_on_bank_order(
    bank_frames: list[pd.DataFrame], schema: DatasetSchema
) -> None:
    parts = [compute_feature_stats(p, schema, grid_bins=256) for p in bank_frames]

    _assert_same_stats(combine_feature_stats(parts[::-1]), combine_feature_stats(parts))


def test_stats_cover_exactly_the_numeric_model_inputs(
    frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    stats = compute_feature_stats(frame, schema)
    numeric_inputs = [f.name for f in schema.numeric if f.name in schema.input_features]

    assert list(stats.numeric) == numeric_inputs
    assert "AGE" not in stats.numeric  # protected, not a model input


def test_moments_and_histogram_describe_the_transformed_values(
    frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    stats = compute_feature_stats(frame, schema, grid_bins=64)
    for feature in schema.numeric:
        if feature.name not in stats.numeric:
            continue
        values = transform_values(frame[feature.name].to_numpy(np.float64), feature.transform)
        column = stats.numeric[feature.name]
        assert column.count == len(frame)
        assert column.histogram.shape == (64,)
        # Every validated value lies within the public bounds, so the grid holds all of them.
        assert column.histogram.sum() == len(frame)
        expected, _ = np.histogram(values, bins=grid_edges(feature, 64))
        np.testing.assert_array_equal(column.histogram, expected)
        assert column.mean == pytest.approx(values.mean(), rel=1e-12)
        assert column.std == pytest.approx(values.std(), rel=1e-9)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, 30_000), min_size=1, max_size=8))
def test_any_split_combines_to_the_pooled_stats(
    cuts: list[int], frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    parts = [frame.iloc[rows] for rows in np.split(np.arange(len(frame)), sorted(cuts))]
    combined = combine_feature_stats([compute_feature_stats(p, schema, 128) for p in parts])

    _assert_same_stats(combined, compute_feature_stats(frame, schema, 128))


def test_stats_on_different_grids_do_not_combine(
    bank_frames: list[pd.DataFrame], schema: DatasetSchema
) -> None:
    fine = compute_feature_stats(bank_frames[0], schema, grid_bins=128)
    coarse = compute_feature_stats(bank_frames[1], schema, grid_bins=64)

    with pytest.raises(ValueError, match="different schemas or grids"):
        combine_feature_stats([fine, coarse])


def test_combining_nothing_is_rejected() -> None:
    with pytest.raises(ValueError, match="no feature statistics to combine"):
        combine_feature_stats([])


def test_noisy_sums_are_clipped_only_after_summing(schema: DatasetSchema) -> None:
    """Two banks' noisy histograms: negative noise in one cancels positive in the other;
    clipping each bank's first would leave a positive bias in empty cells."""
    name = numeric_inputs(schema)[0]
    grid_bins = 4
    edges = grid_edges(next(f for f in schema.numeric if f.name == name), grid_bins)

    def bank(histogram: list[float]) -> FeatureStats:
        return FeatureStats(
            numeric={name: stats_from_histogram(np.array(histogram), edges)},
            grid_bins=grid_bins,
        )

    one, two = bank([5.0, -3.0, 2.0, -1.5]), bank([1.0, 3.5, -2.0, 1.0])
    settled = settle_noisy(combine_feature_stats([one, two]), schema).numeric[name]
    np.testing.assert_array_equal(settled.histogram, [6.0, 0.5, 0.0, 0.0])
    centres = (edges[:-1] + edges[1:]) / 2
    assert settled.total == pytest.approx(6.0 * centres[0] + 0.5 * centres[1])
    assert settled.count == 6
    clipped_first = np.clip(one.numeric[name].histogram, 0, None) + np.clip(
        two.numeric[name].histogram, 0, None
    )
    assert clipped_first.sum() > settled.histogram.sum()  # the bias settling avoids


def test_a_feature_stats_vector_round_trips(schema: DatasetSchema, frame: pd.DataFrame) -> None:
    stats = compute_feature_stats(frame.iloc[:500], schema, 16)
    features = list(stats.numeric)
    back = FeatureStats.from_vector(stats.to_vector(), features=features, grid_bins=16)
    _assert_same_stats(back, stats)
    with pytest.raises(ValueError, match="entries"):
        FeatureStats.from_vector(stats.to_vector()[:-1], features=features, grid_bins=16)

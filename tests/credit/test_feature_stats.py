"""Per-bank feature aggregates (per class) combine into exactly the pooled aggregate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit.datasets import embedded_data_path
from credit.feature_stats import (
    DEFAULT_GRID_BINS,
    ClassCells,
    FeatureStats,
    categorical_inputs,
    combine_feature_stats,
    compute_feature_stats,
    grid_edges,
    numeric_from_cells,
    numeric_inputs,
    released_features,
    settle_noisy,
    transform_values,
    vector_length,
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
    assert list(actual.categorical) == list(expected.categorical)
    for name, stats in expected.numeric.items():
        got = actual.numeric[name]
        _assert_same_cells(got.cells, stats.cells, name)
        np.testing.assert_array_equal(got.histogram, stats.histogram, err_msg=name)
        assert got.count == stats.count
        assert got.total == pytest.approx(stats.total, rel=1e-12)
        assert got.total_squares == pytest.approx(stats.total_squares, rel=1e-12)
    for name, cells in expected.categorical.items():
        _assert_same_cells(actual.categorical[name], cells, name)


def _assert_same_cells(actual: ClassCells, expected: ClassCells, name: str) -> None:
    assert actual.regular == expected.regular, name
    for got, want in ((actual.events, expected.events), (actual.non_events, expected.non_events)):
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.dtype == np.float64  # whole counts, or noisy reals
        assert np.array_equal(got, np.round(got))


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


def test_stats_cover_exactly_the_model_inputs(frame: pd.DataFrame, schema: DatasetSchema) -> None:
    stats = compute_feature_stats(frame, schema)
    numeric = [f.name for f in schema.numeric if f.name in schema.input_features]
    categorical = [f.name for f in schema.categorical if f.name in schema.input_features]

    assert list(stats.numeric) == numeric_inputs(schema) == numeric
    assert list(stats.categorical) == categorical_inputs(schema) == categorical
    assert stats.features == released_features(schema) == len(schema.input_features) == 19
    assert "AGE" not in stats.numeric and "SEX" not in stats.categorical  # protected


def test_moments_and_per_class_histograms_describe_the_transformed_values(
    frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    stats = compute_feature_stats(frame, schema, grid_bins=64)
    events = frame[schema.target].to_numpy() == 1
    for feature in schema.numeric:
        if feature.name not in stats.numeric:
            continue
        values = transform_values(frame[feature.name].to_numpy(np.float64), feature.transform)
        column = stats.numeric[feature.name]
        assert column.count == len(frame)
        assert column.cells.events.shape == column.cells.non_events.shape == (64,)
        # Every validated value lies within the public bounds, so the grid holds all of them.
        assert column.histogram.sum() == len(frame)
        edges = grid_edges(feature, 64)
        for in_class, counts in ((events, column.cells.events), (~events, column.cells.non_events)):
            expected, _ = np.histogram(values[in_class], bins=edges)
            np.testing.assert_array_equal(counts, expected, err_msg=feature.name)
        assert column.mean == pytest.approx(values.mean(), rel=1e-12)
        assert column.std == pytest.approx(values.std(), rel=1e-9)


def test_categorical_counts_per_class_are_the_levels_counts(
    frame: pd.DataFrame, schema: DatasetSchema
) -> None:
    stats = compute_feature_stats(frame, schema, grid_bins=16)
    defaulted = frame[schema.target] == 1
    for feature in schema.categorical:
        if feature.name not in stats.categorical:
            continue
        cells = stats.categorical[feature.name]
        assert cells.regular == len(feature.levels) == cells.events.size  # no missing cell
        for in_class, counts in ((defaulted, cells.events), (~defaulted, cells.non_events)):
            expected = frame.loc[in_class, feature.name].value_counts()
            got = {level: counts[i] for i, level in enumerate(feature.levels)}
            assert got == {level: expected.get(level, 0) for level in feature.levels}


@pytest.mark.parametrize("position", [0, 17, 29_999])
def test_one_record_moves_exactly_one_count_of_each_feature(
    frame: pd.DataFrame, schema: DatasetSchema, position: int
) -> None:
    """The set-up release's sensitivity: adding a record changes its class's count in one
    cell of each of the F model inputs by 1 and no other count (L2 norm sqrt(F))."""
    without = frame.drop(index=frame.index[position])
    counts = _counts_only(compute_feature_stats(frame, schema, 32)) - _counts_only(
        compute_feature_stats(without, schema, 32)
    )
    assert sorted(np.unique(counts).tolist()) == [0.0, 1.0]
    assert counts.sum() == released_features(schema)
    assert np.linalg.norm(counts) == pytest.approx(np.sqrt(released_features(schema)))


def _counts_only(stats: FeatureStats) -> np.ndarray:
    """The vector's count entries (not the moments): what the noise protects."""
    parts = [numeric.cells.to_vector() for numeric in stats.numeric.values()]
    parts += [cells.to_vector() for cells in stats.categorical.values()]
    return np.concatenate(parts)


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
    """Two banks' noisy counts: negative noise in one cancels positive in the other;
    clipping each bank's first would leave a positive bias in empty cells."""
    name = numeric_inputs(schema)[0]
    grid_bins = 4
    edges = grid_edges(next(f for f in schema.numeric if f.name == name), grid_bins)

    def bank(events: list[float], non_events: list[float]) -> FeatureStats:
        cells = ClassCells(events=np.array(events), non_events=np.array(non_events), regular=4)
        return FeatureStats(
            numeric={name: numeric_from_cells(cells, edges)},
            categorical={"PAY_0": ClassCells(np.array([2.0, -3.0]), np.array([-1.0, 4.0]), 2)},
            grid_bins=grid_bins,
        )

    one = bank([5.0, -3.0, 2.0, -1.5], [1.0, 1.0, -4.0, 0.0])
    two = bank([1.0, 3.5, -2.0, 1.0], [-2.0, 0.5, 1.0, 0.0])
    settled = settle_noisy(combine_feature_stats([one, two]), schema)
    numeric = settled.numeric[name]
    np.testing.assert_array_equal(numeric.cells.events, [6.0, 0.5, 0.0, 0.0])
    np.testing.assert_array_equal(numeric.cells.non_events, [0.0, 1.5, 0.0, 0.0])
    np.testing.assert_array_equal(numeric.histogram, [6.0, 2.0, 0.0, 0.0])
    centres = (edges[:-1] + edges[1:]) / 2
    assert numeric.total == pytest.approx(6.0 * centres[0] + 2.0 * centres[1])
    assert numeric.count == 8
    np.testing.assert_array_equal(settled.categorical["PAY_0"].events, [4.0, 0.0])
    np.testing.assert_array_equal(settled.categorical["PAY_0"].non_events, [0.0, 8.0])
    clipped_first = np.clip(one.numeric[name].cells.events, 0, None) + np.clip(
        two.numeric[name].cells.events, 0, None
    )
    assert clipped_first.sum() > numeric.cells.events.sum()  # the bias settling avoids


def test_a_feature_stats_vector_round_trips(schema: DatasetSchema, frame: pd.DataFrame) -> None:
    stats = compute_feature_stats(frame.iloc[:500], schema, 16)
    vector = stats.to_vector()
    # 13 numeric inputs: 3 moments and 2 x 16 cells; 6 categorical: 2 x 11 levels.
    assert vector.size == vector_length(schema, 16) == 13 * (3 + 32) + 6 * 22
    back = FeatureStats.from_vector(vector, schema=schema, grid_bins=16)
    _assert_same_stats(back, stats)
    with pytest.raises(ValueError, match="entries"):
        FeatureStats.from_vector(vector[:-1], schema=schema, grid_bins=16)

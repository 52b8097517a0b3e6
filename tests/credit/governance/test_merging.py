"""Merging adjacent regular bins: monotonic trends, minimum share, special/missing kept apart."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression

from credit.errors import ConfigError
from credit.governance import BinCounts, BinLayout, MonotonicTrend, merge_bins, woe_table


def _regular_rates(counts: BinCounts) -> NDArray[np.float64]:
    n = counts.layout.n_regular
    rates: NDArray[np.float64] = counts.events[:n] / counts.counts[:n]
    return rates


def _counts(
    events: list[int],
    non_events: list[int],
    *,
    special_labels: tuple[str, ...] = (),
    has_missing: bool = False,
) -> BinCounts:
    """Counts of feature X whose regular bins are cut at 10, 20, 30, ..."""
    n_regular = len(events) - len(special_labels) - int(has_missing)
    layout = BinLayout.numeric(
        "X",
        [10.0 * k for k in range(1, n_regular)],
        special_labels=special_labels,
        has_missing=has_missing,
    )
    return BinCounts(layout=layout, events=events, non_events=non_events)


@pytest.mark.parametrize(
    ("trend", "direction"),
    [(MonotonicTrend.ASCENDING, 1), (MonotonicTrend.DESCENDING, -1)],
)
def test_trend_leaves_strictly_monotonic_event_rates(
    summed: dict[str, BinCounts], trend: MonotonicTrend, direction: int
) -> None:
    for name, counts in summed.items():
        merged = merge_bins(counts, trend=trend)
        assert merged.trend is trend
        assert np.all(direction * np.diff(_regular_rates(merged.counts)) > 0), name
        # Special and missing bins pass through untouched, in order.
        n_old, n_new = counts.layout.n_regular, merged.layout.n_regular
        np.testing.assert_array_equal(merged.counts.events[n_new:], counts.events[n_old:])
        assert merged.labels[n_new:] == counts.layout.labels[n_old:]


def test_auto_keeps_the_direction_with_the_larger_iv(summed: dict[str, BinCounts]) -> None:
    for name, counts in summed.items():
        merged = merge_bins(counts, trend=MonotonicTrend.AUTO)
        ascending = merge_bins(counts, trend=MonotonicTrend.ASCENDING)
        descending = merge_bins(counts, trend=MonotonicTrend.DESCENDING)
        best = ascending if ascending.table.iv >= descending.table.iv else descending
        assert merged.trend is best.trend, name
        assert merged.edges == best.edges
        assert merged.table.iv == max(ascending.table.iv, descending.table.iv)
    # Default risk falls as the credit limit rises.
    assert (
        merge_bins(summed["LIMIT_BAL"], trend=MonotonicTrend.AUTO).trend
        is MonotonicTrend.DESCENDING
    )


def test_auto_picks_ascending_for_a_rising_default_rate() -> None:
    counts = _counts([5, 10, 20, 40], [95, 90, 80, 60])
    merged = merge_bins(counts, trend=MonotonicTrend.AUTO)
    assert merged.trend is MonotonicTrend.ASCENDING
    assert merged.edges == (10.0, 20.0, 30.0)


def test_pooled_rates_are_the_isotonic_regression(summed: dict[str, BinCounts]) -> None:
    """PAV's merged event rates equal scikit-learn's weighted isotonic regression."""
    for trend, increasing in ((MonotonicTrend.ASCENDING, True), (MonotonicTrend.DESCENDING, False)):
        for name, counts in summed.items():
            n = counts.layout.n_regular
            rows = counts.counts[:n]
            fitted = IsotonicRegression(increasing=increasing).fit_transform(
                np.arange(n), counts.events[:n] / rows, sample_weight=rows
            )
            merged = merge_bins(counts, trend=trend)
            rates = merged.table.event_rate[merged.bin_map[:n]]
            np.testing.assert_allclose(rates, fitted, rtol=0, atol=1e-12, err_msg=name)


def test_none_and_zero_share_merge_nothing(summed: dict[str, BinCounts]) -> None:
    counts = summed["PAY_AMT1"]
    merged = merge_bins(counts)
    assert merged.layout == counts.layout
    np.testing.assert_array_equal(merged.bin_map, np.arange(counts.layout.n_bins))
    np.testing.assert_array_equal(merged.table.woe, woe_table(counts).woe)


def test_a_small_bin_merges_with_the_neighbour_of_closest_rate() -> None:
    # Rates 0.10, 0.50, 0.40, 0.05; bin 1 holds 10 of 310 rows (< 5 %).
    counts = _counts([10, 5, 40, 5], [90, 5, 60, 95])
    merged = merge_bins(counts, min_bin_share=0.05)
    assert merged.edges == (10.0, 30.0)
    assert merged.labels == ("(-inf, 10)", "[10, 30)", "[30, inf)")
    np.testing.assert_array_equal(merged.counts.events, [10, 45, 5])
    np.testing.assert_array_equal(merged.bin_map, [0, 1, 1, 2])
    np.testing.assert_array_equal(merged.kept_edges, [0, 2])
    # Equally close neighbours (rates 0.1 either side of 0.5): the left one.
    tie = merge_bins(_counts([10, 5, 10], [90, 5, 90]), min_bin_share=0.05)
    assert tie.edges == (20.0,)


def test_minimum_share_counts_special_and_missing_rows_and_never_merges_them() -> None:
    # 4 regular bins of 20 rows, a special bin of 200 and a missing bin of 100 rows:
    # 20 rows are 5 % of 400, so 6 % merges regular bins, never the special/missing ones.
    counts = _counts(
        [2, 4, 6, 8, 1, 50],
        [18, 16, 14, 12, 199, 50],
        special_labels=("code 96",),
        has_missing=True,
    )
    merged = merge_bins(counts, min_bin_share=0.06)
    assert merged.layout.n_regular == 2
    assert np.all(merged.counts.counts[:2] >= 0.06 * 400)
    assert merged.labels[2:] == ("code 96", "missing")
    np.testing.assert_array_equal(merged.counts.counts[2:], [200, 100])
    # Ties in size merge the leftmost smallest bin first, with its closer neighbour.
    np.testing.assert_array_equal(merged.bin_map, [0, 0, 1, 1, 2, 3])


def test_every_bin_below_the_share_ends_in_one_regular_bin() -> None:
    counts = _counts([1, 2, 3], [9, 8, 7])
    merged = merge_bins(counts, min_bin_share=0.9)
    assert merged.layout.n_regular == 1
    assert merged.edges == ()
    assert merged.labels == ("(-inf, inf)",)


def test_merging_options_are_checked() -> None:
    counts = _counts([1, 2], [9, 8])
    for share in (-0.1, 1.0, float("nan")):
        with pytest.raises(ConfigError, match=f"min_bin_share must be in \\[0, 1\\); got {share}"):
            merge_bins(counts, min_bin_share=share)
    with pytest.raises(ValueError, match="'upward' is not a valid MonotonicTrend"):
        merge_bins(counts, trend="upward")  # type: ignore[arg-type]
    levels = BinCounts(
        layout=BinLayout.categorical("SEX", [1, 2]), events=[1, 2], non_events=[5, 5]
    )
    with pytest.raises(ConfigError, match="feature 'SEX' is categorical"):
        merge_bins(levels, trend=MonotonicTrend.ASCENDING)
    assert merge_bins(levels).layout == levels.layout


@st.composite
def _bin_counts(draw: st.DrawFn) -> BinCounts:
    n_regular = draw(st.integers(1, 12))
    n_special = draw(st.integers(0, 2))
    has_missing = draw(st.booleans())
    n_bins = n_regular + n_special + int(has_missing)
    events = draw(st.lists(st.integers(0, 60), min_size=n_bins, max_size=n_bins))
    non_events = draw(st.lists(st.integers(0, 300), min_size=n_bins, max_size=n_bins))
    events[0] += 1  # at least one event and one non-event overall
    non_events[-1] += 1
    layout = BinLayout.numeric(
        "X",
        np.arange(1.0, n_regular),
        special_labels=[f"code {k}" for k in range(n_special)],
        has_missing=has_missing,
    )
    return BinCounts(layout=layout, events=events, non_events=non_events)


@settings(max_examples=200, deadline=None)
@given(
    counts=_bin_counts(),
    trend=st.sampled_from(list(MonotonicTrend)),
    share=st.sampled_from([0.0, 0.02, 0.1, 0.3]),
)
def test_merging_properties(counts: BinCounts, trend: MonotonicTrend, share: float) -> None:
    merged = merge_bins(counts, trend=trend, min_bin_share=share)
    layout, n_regular = merged.layout, merged.layout.n_regular
    # Merged counts are sums of the original bins the map sends to them.
    for values, merged_values in (
        (counts.events, merged.counts.events),
        (counts.non_events, merged.counts.non_events),
    ):
        np.testing.assert_array_equal(
            np.bincount(merged.bin_map, values, layout.n_bins), merged_values
        )
    # Regular bins map onto regular bins, in order; special and missing bins keep their own.
    old_regular = counts.layout.n_regular
    assert np.all(np.diff(merged.bin_map[:old_regular]) >= 0)
    assert np.array_equal(
        merged.bin_map[old_regular:], n_regular + np.arange(counts.layout.n_bins - old_regular)
    )
    assert set(merged.edges) <= set(counts.layout.edges or ())
    # Minimum share, unless a single regular bin is left.
    if n_regular > 1:
        assert np.all(merged.counts.counts[:n_regular] >= share * counts.counts.sum())
    # Strict trend of the event rate (which needs non-empty regular bins).
    if merged.trend is not MonotonicTrend.NONE and n_regular > 1:
        direction = 1 if merged.trend is MonotonicTrend.ASCENDING else -1
        assert np.all(merged.counts.counts[:n_regular] > 0)
        assert np.all(direction * np.diff(_regular_rates(merged.counts)) > 0)
    assert (merged.trend is MonotonicTrend.NONE) == (trend is MonotonicTrend.NONE)
    # Deterministic.
    again = merge_bins(counts, trend=trend, min_bin_share=share)
    assert again.edges == merged.edges and again.trend is merged.trend


def test_the_report_leaves_out_a_feature_whose_noisy_counts_hold_one_class_only() -> None:
    """DP noise clipped at zero can empty one class of one feature: a run that only
    reports WoE values keeps the other features' tables and does not fail."""
    from credit.woe_binning import reported_woe_tables

    emptied = _counts([40, 30, 20], [-5, -2, 0])  # noisy non-events, all clipped to zero
    usual = _counts([40, 30, 20], [100, 80, 60])

    tables = reported_woe_tables({"emptied": emptied, "usual": usual})

    assert list(tables) == ["usual"]
    assert tables["usual"].iv == woe_table(usual).iv

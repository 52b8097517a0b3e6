"""Oracle: the banks' summed counts give optbinning's binning tables for the same edges.

optbinning's ``OptimalBinning`` runs on the pooled rows with ``user_splits`` = our
edges, all fixed, and no monotonic constraint, so its optimiser keeps every split;
the test checks that it did. Its table always has a ``Missing`` row and, without
special codes, one ``Special`` row (both empty when the data have none); ours has
exactly the layout's bins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from optbinning import OptimalBinning
from optbinning.binning.binning_statistics import BinningTable

from credit.governance import BinCounts, BinLayout, MonotonicTrend, WoeTable, merge_bins, woe_table
from tests.credit.governance.conftest import BinnedFeature


def _optbinning_table(
    values: NDArray[np.float64],
    labels: NDArray[np.int64],
    edges: tuple[float, ...],
    special_codes: dict[str, float],
) -> pd.DataFrame:
    # optbinning 1.0.0 fails on an empty user_splits list: one bin is max_n_bins=1.
    splits = (
        {"user_splits": list(edges), "user_splits_fixed": [True] * len(edges)}
        if edges
        else {"max_n_bins": 1}
    )
    binning = OptimalBinning(
        dtype="numerical",
        monotonic_trend=None,
        special_codes=special_codes or None,
        **splits,
    ).fit(values, labels)
    np.testing.assert_array_equal(binning.splits, edges)
    table: pd.DataFrame = binning.binning_table.build(add_totals=False)
    return table


def _comparable_rows(oracle: pd.DataFrame, layout: BinLayout) -> pd.DataFrame:
    """optbinning's rows that match our layout's bins (regular, special, missing)."""
    n_regular, n_special = layout.n_regular, len(layout.special_labels)
    special = oracle.iloc[n_regular:-1]
    if not n_special:
        assert special["Count"].sum() == 0
        special = special.iloc[:0]
    missing = oracle.iloc[-1:]
    if not layout.has_missing:
        assert missing["Count"].sum() == 0
        missing = missing.iloc[:0]
    return pd.concat([oracle.iloc[:n_regular], special, missing])


def _assert_same_table(table: WoeTable, oracle: pd.DataFrame) -> None:
    rows = _comparable_rows(oracle, table.counts.layout)
    name = table.feature
    np.testing.assert_array_equal(table.counts.events, rows["Event"], err_msg=name)
    np.testing.assert_array_equal(table.counts.non_events, rows["Non-event"], err_msg=name)
    np.testing.assert_allclose(table.woe, rows["WoE"], rtol=0, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(table.iv_contribution, rows["IV"], rtol=0, atol=1e-9, err_msg=name)
    assert table.iv == pytest.approx(float(oracle["IV"].sum()), abs=1e-9)
    both = (table.counts.events > 0) & (table.counts.non_events > 0)
    np.testing.assert_allclose(
        table.event_rate[both], rows["Event rate"].to_numpy()[both], rtol=0, atol=1e-12
    )
    layout = table.counts.layout
    specials = rows["Bin"].iloc[layout.n_regular : layout.n_regular + len(layout.special_labels)]
    assert tuple(specials) == layout.special_labels


def test_summed_bank_counts_give_optbinnings_tables(
    binned: dict[str, BinnedFeature], labels: NDArray[np.int64], summed: dict[str, BinCounts]
) -> None:
    for name, feature in binned.items():
        oracle = _optbinning_table(
            feature.values, labels, tuple(feature.edges), feature.special_codes
        )
        _assert_same_table(woe_table(summed[name]), oracle)


@pytest.mark.parametrize(
    ("trend", "min_bin_share"),
    [
        (MonotonicTrend.ASCENDING, 0.0),
        (MonotonicTrend.DESCENDING, 0.0),
        (MonotonicTrend.AUTO, 0.05),
        (MonotonicTrend.NONE, 0.12),
    ],
)
def test_merged_tables_equal_optbinnings_for_the_merged_edges(
    binned: dict[str, BinnedFeature],
    labels: NDArray[np.int64],
    summed: dict[str, BinCounts],
    trend: MonotonicTrend,
    min_bin_share: float,
) -> None:
    merged_some = False
    for name, feature in binned.items():
        merged = merge_bins(summed[name], trend=trend, min_bin_share=min_bin_share)
        merged_some |= merged.layout.n_regular < summed[name].layout.n_regular
        oracle = _optbinning_table(feature.values, labels, merged.edges, feature.special_codes)
        _assert_same_table(merged.table, oracle)
    assert merged_some


def test_empty_and_pure_bins_follow_optbinnings_convention() -> None:
    """Bins lacking events or non-events: optbinning's table built from the same counts."""
    events = np.array([10, 0, 7, 0, 25, 3, 0])
    non_events = np.array([90, 40, 0, 0, 75, 60, 12])
    layout = BinLayout.numeric("X", [1.0, 2.0, 3.0, 4.0], special_labels=["96"], has_missing=True)
    table = woe_table(BinCounts(layout=layout, events=events, non_events=non_events))
    oracle = BinningTable(
        name="X",
        dtype="numerical",
        special_codes={"96": 96},
        splits=np.array([1.0, 2.0, 3.0, 4.0]),
        n_nonevent=non_events,
        n_event=events,
    ).build(add_totals=False)
    _assert_same_table(table, oracle)

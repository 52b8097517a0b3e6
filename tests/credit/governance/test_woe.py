"""Per-bin counts, their vectors and noise settling, and WoE/IV tables vs a pooled computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit.governance import (
    BinCounts,
    BinKind,
    BinLayout,
    count_bins,
    counts_from_vector,
    counts_to_vector,
    interval_labels,
    settle_counts,
    woe_table,
)
from tests.credit.governance.conftest import BinnedFeature


def _pooled_table(
    indices: NDArray[np.int64], labels: NDArray[np.int64], n_bins: int
) -> pd.DataFrame:
    """WoE/IV straight from pooled rows, with pandas (an independent computation)."""
    rows = pd.DataFrame({"bin": indices, "default": labels})
    events = rows.groupby("bin")["default"].sum().reindex(range(n_bins), fill_value=0)
    non_events = (
        (1 - rows["default"]).groupby(rows["bin"]).sum().reindex(range(n_bins), fill_value=0)
    )
    table = pd.DataFrame({"events": events.astype(float), "non_events": non_events.astype(float)})
    good = table["non_events"] / table["non_events"].sum()
    bad = table["events"] / table["events"].sum()
    both = (table["events"] > 0) & (table["non_events"] > 0)
    table["woe"] = np.where(both, np.log(good.where(both, 1.0) / bad.where(both, 1.0)), 0.0)
    table["iv"] = np.where(both, (good - bad) * table["woe"], 0.0)
    return table


def test_layout_orders_regular_special_missing_bins() -> None:
    layout = BinLayout.numeric(
        "PAY_AMT1", [1.5, 20.0], special_labels=["no payment"], has_missing=True
    )
    assert layout.labels == ("(-inf, 1.5)", "[1.5, 20)", "[20, inf)", "no payment", "missing")
    assert layout.kinds == ((BinKind.REGULAR,) * 3 + (BinKind.SPECIAL,) + (BinKind.MISSING,))
    assert layout.n_bins == 5
    assert interval_labels([]) == ("(-inf, inf)",)


def test_layout_refuses_edges_that_do_not_increase_or_repeated_labels() -> None:
    with pytest.raises(ValueError, match="feature 'AGE': edges must be finite and strictly"):
        BinLayout.numeric("AGE", [30.0, 30.0])
    with pytest.raises(ValueError, match="feature 'AGE': bin labels must be unique"):
        BinLayout.numeric("AGE", [30.0], special_labels=["[30, inf)"])
    with pytest.raises(ValueError, match=r"feature 'SEX': bin labels must be unique.*'missing'"):
        BinLayout(feature="SEX", regular_labels=("1", "missing"), has_missing=True)
    with pytest.raises(ValueError, match="feature 'AGE': 2 edges need 2 edge labels and 3"):
        BinLayout(
            feature="AGE", regular_labels=("a", "b"), edges=(1.0, 2.0), edge_labels=("1", "2")
        )


def test_bank_counts_sum_to_the_pooled_counts(
    binned: dict[str, BinnedFeature], labels: NDArray[np.int64], summed: dict[str, BinCounts]
) -> None:
    for name, feature in binned.items():
        pooled = count_bins(feature.indices, labels, feature.layout)
        np.testing.assert_array_equal(summed[name].events, pooled.events, err_msg=name)
        np.testing.assert_array_equal(summed[name].non_events, pooled.non_events, err_msg=name)
        assert summed[name].counts.sum() == labels.size


def test_every_layout_kind_holds_rows(summed: dict[str, BinCounts]) -> None:
    """The fixture exercises a special-code bin and missing bins, not just regular ones."""
    pay = summed["PAY_AMT1"]
    assert pay.layout.kinds[-2:] == (BinKind.SPECIAL, BinKind.MISSING)
    assert pay.counts[-2] > 1_000 and pay.counts[-1] > 1_000
    assert summed["LIMIT_BAL"].counts[-1] > 2_000
    assert not summed["AGE"].layout.has_missing


def test_woe_tables_equal_the_pooled_computation(
    binned: dict[str, BinnedFeature], labels: NDArray[np.int64], summed: dict[str, BinCounts]
) -> None:
    for name, feature in binned.items():
        table = woe_table(summed[name])
        expected = _pooled_table(feature.indices, labels, feature.layout.n_bins)
        np.testing.assert_array_equal(table.counts.events, expected["events"], err_msg=name)
        np.testing.assert_allclose(table.woe, expected["woe"], rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(
            table.iv_contribution, expected["iv"], rtol=0, atol=1e-9, err_msg=name
        )
        assert table.iv == pytest.approx(expected["iv"].sum(), abs=1e-9)
        rates = expected["events"] / (expected["events"] + expected["non_events"])
        np.testing.assert_allclose(table.event_rate, rates, rtol=0, atol=1e-12)


def test_woe_sign_positive_where_defaults_are_rarer_than_average() -> None:
    layout = BinLayout.categorical("SEX", [1, 2])
    table = woe_table(BinCounts(layout=layout, events=[10, 30], non_events=[90, 70]))
    assert table.woe[0] > 0 > table.woe[1]
    assert table.woe[0] == pytest.approx(np.log((90 / 160) / (10 / 40)), abs=1e-12)
    assert np.all(table.iv_contribution > 0)


def test_bins_without_events_or_non_events_have_zero_woe_and_iv() -> None:
    layout = BinLayout.categorical("EDUCATION", [1, 2, 3, 4], has_missing=True)
    counts = BinCounts(layout=layout, events=[10, 0, 5, 0, 20], non_events=[90, 40, 0, 0, 80])
    table = woe_table(counts)
    np.testing.assert_array_equal(table.woe[1:4], 0.0)
    np.testing.assert_array_equal(table.iv_contribution[1:4], 0.0)
    np.testing.assert_array_equal(table.event_rate, [0.1, 0.0, 1.0, 0.0, 0.2])
    frame = table.to_frame()
    assert list(frame["bin"]) == ["1", "2", "3", "4", "missing"]
    assert table.to_dict()["iv"] == table.iv


def test_woe_needs_both_outcomes() -> None:
    layout = BinLayout.categorical("SEX", [1, 2])
    with pytest.raises(
        ValueError, match=r"feature 'SEX': WoE needs at least one event.*got 0 events"
    ):
        woe_table(BinCounts(layout=layout, events=[0, 0], non_events=[5, 5]))


def test_vector_round_trip_and_concatenation(summed: dict[str, BinCounts]) -> None:
    parts = list(summed.values())
    vector = counts_to_vector(parts)
    assert vector.shape == (sum(2 * part.layout.n_bins for part in parts),)
    back = counts_from_vector(vector, [part.layout for part in parts])
    for original, restored in zip(parts, back, strict=True):
        assert restored.layout == original.layout
        np.testing.assert_array_equal(restored.to_vector(), original.to_vector())


def test_a_vector_of_the_wrong_length_names_the_feature_and_expected_length(
    summed: dict[str, BinCounts],
) -> None:
    age = summed["AGE"].layout
    with pytest.raises(
        ValueError, match=r"feature 'AGE': a count vector of 10 bins has 20 entries"
    ):
        BinCounts.from_vector(np.zeros(19), age)
    layouts = [summed["LIMIT_BAL"].layout, age]
    with pytest.raises(ValueError, match=r"'LIMIT_BAL' \(22\), 'AGE' \(20\) has 42 entries; got"):
        counts_from_vector(np.zeros(41), layouts)
    with pytest.raises(ValueError, match="cannot add counts of a different bin layout"):
        summed["AGE"] + summed["LIMIT_BAL"]


def test_bank_counting_refuses_bad_indices_and_labels() -> None:
    layout = BinLayout.numeric("AGE", [30.0], has_missing=True)
    with pytest.raises(
        ValueError, match=r"feature 'AGE': bin index 3 at position 1 is outside 0..2"
    ):
        count_bins([0, 3, 1], [0, 1, 0], layout)
    with pytest.raises(
        ValueError, match="feature 'AGE': labels must be 0 or 1; got 2 at position 2"
    ):
        count_bins([0, 1, 1], [0, 1, 2], layout)
    with pytest.raises(ValueError, match="feature 'AGE': bin indices must be integers"):
        count_bins([0.0, 1.0], [0, 1], layout)


def test_noisy_sums_are_settled_once_after_summing() -> None:
    layout = BinLayout.categorical("SEX", [1, 2, 3])
    # Two banks' noisy counts of an empty third bin: -0.8 and +0.9 (sum 0.1).
    banks = [
        BinCounts(layout=layout, events=[10.4, 3.0, -0.8], non_events=[50.2, 20.0, -0.8]),
        BinCounts(layout=layout, events=[4.9, -1.7, 0.9], non_events=[30.0, 9.6, 0.9]),
    ]
    settled = settle_counts(banks[0] + banks[1])
    np.testing.assert_array_equal(settled.events, [15.0, 1.0, 0.0])
    np.testing.assert_array_equal(settled.non_events, [80.0, 30.0, 0.0])
    # Settling each bank first would invent a row in the empty bin.
    per_bank = settle_counts(banks[0]) + settle_counts(banks[1])
    assert per_bank.events[2] == 1.0
    exact = BinCounts(layout=layout, events=[1, 2, 3], non_events=[4, 5, 6])
    np.testing.assert_array_equal(settle_counts(exact).to_vector(), exact.to_vector())


def test_unsettled_noisy_counts_are_refused() -> None:
    layout = BinLayout.categorical("SEX", [1, 2])
    noisy = BinCounts(layout=layout, events=[3.2, -0.4], non_events=[10.0, 7.0])
    with pytest.raises(
        ValueError, match=r"feature 'SEX': events must be finite and >= 0.*settle_counts"
    ):
        woe_table(noisy)
    with pytest.raises(ValueError, match="feature 'SEX': events hold NaN or infinity"):
        settle_counts(BinCounts(layout=layout, events=[np.nan, 1.0], non_events=[1.0, 1.0]))

"""The stability release: layout from a model's encoder, vectors, sums and comparisons."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from credit.encoding import EncodingKind, FeatureEncoder, StatsSource, fit_encoder
from credit.feature_stats import compute_feature_stats
from credit.governance.stability import PopulationCounts, stability_report
from credit.governance.stability_release import (
    SCORE,
    StabilityCounts,
    StabilityLayout,
    compare_populations,
    development_counts,
    stability_counts,
    stability_from_sum,
    stability_vector,
)
from credit.metrics import score_bin_index
from credit.schema import DatasetSchema

SCORE_BINS = 20


@pytest.fixture(scope="module")
def encoder(schema: DatasetSchema, embedded_frame: pd.DataFrame) -> FeatureEncoder:
    stats = compute_feature_stats(embedded_frame.iloc[:3000], schema, 256)
    return fit_encoder(schema, source=StatsSource.FEDERATED, stats=stats, quantile_bins=5)


def _counts(
    frame: pd.DataFrame, encoder: FeatureEncoder, layout: StabilityLayout, seed: int
) -> StabilityCounts:
    scores = np.random.default_rng(seed).uniform(size=len(frame))
    return stability_counts(
        encoder.bin_indices(frame), score_bin_index(scores, layout.score_bins), layout
    )


def test_the_layout_is_the_encoders_bins_and_the_score_bins(encoder: FeatureEncoder) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)

    assert [name for name, _ in layout.characteristics] == list(encoder.features)
    for name, labels in layout.characteristics:
        assert labels == encoder.bin_labels(name)
    assert layout.n_bins[SCORE] == SCORE_BINS
    assert layout.length == sum(len(labels) for _, labels in layout.characteristics) + SCORE_BINS
    assert layout.sensitivity == math.sqrt(len(encoder.features) + 1)


def test_the_digest_changes_with_any_bin(encoder: FeatureEncoder) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    (name, labels), *rest = layout.characteristics
    one_more = StabilityLayout(((name, (*labels, "[x, y)")), *rest), SCORE_BINS)

    assert layout.digest() == StabilityLayout.of(encoder, SCORE_BINS).digest()
    assert one_more.digest() != layout.digest()
    assert StabilityLayout.of(encoder, SCORE_BINS + 2).digest() != layout.digest()


def test_a_standardised_encoder_has_no_bins_to_monitor(schema: DatasetSchema) -> None:
    standardized = fit_encoder(schema, kind=EncodingKind.STANDARDIZED, source=StatsSource.PUBLIC)

    with pytest.raises(ValueError, match="standardised: its numeric characteristics have no"):
        StabilityLayout.of(standardized, SCORE_BINS)


def test_bank_vectors_add_up_to_the_pooled_counts(
    encoder: FeatureEncoder, embedded_frame: pd.DataFrame
) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    frame = embedded_frame.iloc[:3000]
    pooled = _counts(frame, encoder, layout, seed=1)
    parts = np.split(np.arange(len(frame)), [700, 1900])
    scores = np.random.default_rng(1).uniform(size=len(frame))
    bins = encoder.bin_indices(frame)
    vectors = [
        stability_vector(
            stability_counts(
                {name: index[part] for name, index in bins.items()},
                score_bin_index(scores[part], SCORE_BINS),
                layout,
            ),
            layout,
        )
        for part in parts
    ]
    total = np.sum([*vectors, stability_vector(None, layout)], axis=0)  # a silent bank adds 0

    summed, banks = stability_from_sum(total, layout)

    assert banks == 3
    assert summed is not None
    np.testing.assert_array_equal(summed.to_vector(), pooled.to_vector())
    assert summed.populations[SCORE].counts.sum() == len(frame)


def test_a_sum_without_any_banks_counts_is_none(encoder: FeatureEncoder) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)

    assert stability_from_sum(stability_vector(None, layout), layout) == (None, 0)
    with pytest.raises(ValueError, match=f"has {layout.length + 1} entries"):
        stability_from_sum(np.zeros(3), layout)


def test_comparison_is_stability_report_per_characteristic(
    encoder: FeatureEncoder, embedded_frame: pd.DataFrame
) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    expected = _counts(embedded_frame.iloc[:2000], encoder, layout, seed=2)
    actual = _counts(embedded_frame.iloc[2000:3000], encoder, layout, seed=3)

    comparison = compare_populations(expected, actual)

    for name, result in comparison.results.items():
        assert result == stability_report(expected.populations[name], actual.populations[name]), (
            name
        )
    document = comparison.document(layout)
    assert list(document["characteristics"]) == list(encoder.features)
    bins = document["score"]["table"]
    assert [row["bin"] for row in bins] == list(layout.labels(SCORE))
    assert sum(row["actual"] for row in bins) == 1000


def test_noisy_counts_are_settled_after_summing(encoder: FeatureEncoder) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    rng = np.random.default_rng(4)
    expected = StabilityCounts.from_vector(rng.integers(0, 50, layout.length) + 1.0, layout)
    noisy = StabilityCounts.from_vector(rng.normal(0, 3, layout.length) + 20.0, layout)
    negative = noisy.to_vector() < 0

    comparison = compare_populations(expected, noisy)

    assert (comparison.actual.to_vector() >= 0).all()
    assert (comparison.actual.to_vector()[negative] == 0).all()


def _woe_iv(layout: StabilityLayout, counts: StabilityCounts) -> dict[str, object]:
    """A metrics.json woe_iv section carrying ``counts`` split into classes."""
    tables = {}
    for name, labels in layout.characteristics:
        values = counts.populations[name].counts
        events = np.floor(values / 3)
        tables[name] = {
            "iv": 0.0,
            "bins": [
                {"bin": label, "events": e, "non_events": v - e}
                for label, e, v in zip(labels, events, values, strict=True)
            ],
        }
    return tables


def test_development_counts_come_from_the_released_tables_and_histograms(
    encoder: FeatureEncoder, embedded_frame: pd.DataFrame
) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    counts = _counts(embedded_frame.iloc[:1500], encoder, layout, seed=5)
    score = counts.populations[SCORE].counts
    histograms = {
        "defaulters": list(np.floor(score / 4)),
        "non_defaulters": list(score - np.floor(score / 4)),
    }

    development = development_counts(_woe_iv(layout, counts), histograms, layout)

    np.testing.assert_array_equal(development.to_vector(), counts.to_vector())


def test_development_tables_of_other_bins_are_refused(
    encoder: FeatureEncoder, embedded_frame: pd.DataFrame
) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    counts = _counts(embedded_frame.iloc[:500], encoder, layout, seed=6)
    woe_iv = _woe_iv(layout, counts)
    name = layout.characteristics[0][0]
    table = woe_iv[name]
    assert isinstance(table, dict)
    table["bins"] = table["bins"][1:]
    histograms = {"defaulters": [0.0] * SCORE_BINS, "non_defaulters": [1.0] * SCORE_BINS}

    with pytest.raises(ValueError, match=f"woe_iv's bins of '{name}'"):
        development_counts(woe_iv, histograms, layout)
    with pytest.raises(
        ValueError, match=f"score_histograms have 3 bins, not the run's {SCORE_BINS}"
    ):
        development_counts(
            _woe_iv(layout, counts), {"defaulters": [1, 2, 3], "non_defaulters": [1, 2, 3]}, layout
        )


def test_population_counts_of_a_layout_are_read_back_in_order(encoder: FeatureEncoder) -> None:
    layout = StabilityLayout.of(encoder, SCORE_BINS)
    vector = np.arange(layout.length, dtype=np.float64)

    counts = StabilityCounts.from_vector(vector, layout)

    assert list(counts.populations) == [*encoder.features, SCORE]
    np.testing.assert_array_equal(counts.to_vector(), vector)
    assert isinstance(counts.populations[SCORE], PopulationCounts)

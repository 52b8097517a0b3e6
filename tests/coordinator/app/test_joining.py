"""The run's encoder from the banks' summed set-up statistics (coordinator.app.joining)."""

from __future__ import annotations

import pytest

from coordinator.app.joining import fit_run_encoding
from credit.datasets import embedded_data_path
from credit.encoding import EncodingKind, fit_encoder
from credit.feature_stats import FeatureStats, compute_feature_stats
from credit.loading import load_bank_csv
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from credit.woe_binning import WOE_PREBINS, bin_counts, fit_woe_encoder, woe_tables


@pytest.fixture(scope="module")
def summed(schema: DatasetSchema) -> FeatureStats:
    """Exact statistics of 6,000 embedded rows (what the banks' sum would be)."""
    frame = load_bank_csv(embedded_data_path(), schema).frame.iloc[:6000]
    return compute_feature_stats(frame, schema)


def test_a_woe_run_merges_from_twenty_quantile_bins(
    schema: DatasetSchema, summed: FeatureStats
) -> None:
    config = RunConfig(encoding=EncodingKind.WOE)
    prebinned = fit_encoder(schema, stats=summed, quantile_bins=WOE_PREBINS)
    expected = fit_woe_encoder(prebinned, woe_tables(bin_counts(summed, prebinned, schema)))

    fitted = fit_run_encoding(config, schema, summed, noisy=False)

    assert WOE_PREBINS == 20 and config.quantile_bins == 10
    assert fitted.encoder == expected.encoder
    assert list(fitted.woe) == list(expected.tables)
    # Merged from the finer bins: some kept edges are not edges of the 10 quantile bins.
    coarse = fit_encoder(schema, stats=summed, quantile_bins=config.quantile_bins)
    assert any(
        set(woe.edges) - set(binned.edges)
        for woe, binned in zip(fitted.encoder.numeric, coarse.numeric, strict=True)
    )


def test_a_binned_run_keeps_its_quantile_bins(schema: DatasetSchema, summed: FeatureStats) -> None:
    fitted = fit_run_encoding(RunConfig(), schema, summed, noisy=False)

    assert fitted.encoder == fit_encoder(schema, stats=summed, quantile_bins=10)

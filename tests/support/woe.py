"""A WoE encoder fitted from statistics, as the coordinator fits it (no DP noise)."""

from __future__ import annotations

from credit.encoding import EncodingKind, FeatureEncoder, fit_encoder
from credit.feature_stats import FeatureStats
from credit.schema import DatasetSchema
from credit.woe_binning import WoeFit, bin_counts, fit_woe_encoder, woe_tables

__all__ = ["FITTED_KINDS", "encoder_of", "woe_fit"]

FITTED_KINDS = (EncodingKind.BINNED, EncodingKind.STANDARDIZED)
"""The kinds :func:`credit.encoding.fit_encoder` fits (``woe`` needs per-class counts)."""


def woe_fit(schema: DatasetSchema, stats: FeatureStats, *, quantile_bins: int = 10) -> WoeFit:
    """The WoE encoder of exact summed ``stats`` (merged bins) and its tables."""
    binned = fit_encoder(schema, stats=stats, quantile_bins=quantile_bins)
    return fit_woe_encoder(binned, woe_tables(bin_counts(stats, binned, schema)))


def encoder_of(kind: EncodingKind, schema: DatasetSchema, stats: FeatureStats) -> FeatureEncoder:
    """A federated encoder of any kind from ``stats``."""
    if kind is EncodingKind.WOE:
        return woe_fit(schema, stats).encoder
    return fit_encoder(schema, kind=kind, stats=stats)

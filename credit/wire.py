"""Conversions between fedcredit aggregates and Flower records (both directions)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord

from credit import keys
from credit.feature_stats import FeatureStats, NumericStats
from credit.metrics import ScoreSummary

__all__ = [
    "feature_stats_from_record",
    "feature_stats_to_record",
    "score_summary_from_records",
    "score_summary_to_records",
]


def feature_stats_to_record(stats: FeatureStats) -> ArrayRecord:
    """Pack per-feature moments and histograms into one ArrayRecord."""
    arrays: dict[str, Array] = {}
    for name, numeric in stats.numeric.items():
        moments = np.array([numeric.count, numeric.total, numeric.total_squares], dtype=np.float64)
        arrays[name + keys.MOMENTS_SUFFIX] = Array(moments)
        arrays[name + keys.HISTOGRAM_SUFFIX] = Array(numeric.histogram.astype(np.int64))
    return ArrayRecord(arrays)


def feature_stats_from_record(record: ArrayRecord) -> FeatureStats:
    """Inverse of :func:`feature_stats_to_record`."""
    numeric: dict[str, NumericStats] = {}
    grid_bins = 0
    for key in record:
        if not key.endswith(keys.MOMENTS_SUFFIX):
            continue
        name = key.removesuffix(keys.MOMENTS_SUFFIX)
        count, total, total_squares = record[key].numpy()
        histogram = record[name + keys.HISTOGRAM_SUFFIX].numpy().astype(np.int64)
        grid_bins = histogram.size
        numeric[name] = NumericStats(
            count=int(count),
            total=float(total),
            total_squares=float(total_squares),
            histogram=histogram,
        )
    return FeatureStats(numeric=numeric, grid_bins=grid_bins)


def score_summary_to_records(summary: ScoreSummary) -> tuple[ArrayRecord, MetricRecord]:
    """Histograms go into an ArrayRecord, sums and the row count into a MetricRecord."""
    arrays = ArrayRecord(
        {
            keys.POSITIVES: Array(summary.positives.astype(np.int64)),
            keys.NEGATIVES: Array(summary.negatives.astype(np.int64)),
        }
    )
    metrics = MetricRecord(
        {
            keys.NUM_EXAMPLES: summary.n_rows,
            keys.BRIER_SUM: summary.brier_sum,
            keys.LOG_LOSS_SUM: summary.log_loss_sum,
        }
    )
    return arrays, metrics


def score_summary_from_records(arrays: ArrayRecord, metrics: MetricRecord) -> ScoreSummary:
    """Inverse of :func:`score_summary_to_records`."""
    return ScoreSummary(
        positives=arrays[keys.POSITIVES].numpy().astype(np.int64),
        negatives=arrays[keys.NEGATIVES].numpy().astype(np.int64),
        brier_sum=float(metrics[keys.BRIER_SUM]),  # type: ignore[arg-type]
        log_loss_sum=float(metrics[keys.LOG_LOSS_SUM]),  # type: ignore[arg-type]
    )

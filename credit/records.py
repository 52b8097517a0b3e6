"""Conversions between fedcredit aggregates and Flower records (both directions)."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from numpy.typing import NDArray

from credit import message_keys as keys
from credit.feature_stats import FeatureStats, NumericStats
from credit.metrics import ScoreSummary

__all__ = [
    "array_record",
    "config_float",
    "config_int",
    "config_record",
    "config_str",
    "feature_stats_from_record",
    "feature_stats_to_record",
    "flatten",
    "metric_number",
    "metric_record",
    "score_summary_from_records",
    "score_summary_to_records",
    "unflatten",
]


def array_record(content: RecordDict, key: str) -> ArrayRecord:
    """The ArrayRecord under ``key``; TypeError naming the key otherwise."""
    record = content[key]
    if not isinstance(record, ArrayRecord):
        raise TypeError(f"message record '{key}' is {type(record).__name__}, expected ArrayRecord")
    return record


def metric_record(content: RecordDict, key: str) -> MetricRecord:
    """The MetricRecord under ``key``; TypeError naming the key otherwise."""
    record = content[key]
    if not isinstance(record, MetricRecord):
        raise TypeError(f"message record '{key}' is {type(record).__name__}, expected MetricRecord")
    return record


def config_record(content: RecordDict, key: str) -> ConfigRecord:
    """The ConfigRecord under ``key``; TypeError naming the key otherwise."""
    record = content[key]
    if not isinstance(record, ConfigRecord):
        raise TypeError(f"message record '{key}' is {type(record).__name__}, expected ConfigRecord")
    return record


def config_int(record: ConfigRecord, key: str) -> int:
    """An integer config entry (bools are refused)."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"config entry '{key}' is {value!r}, expected an integer")
    return value


def config_float(record: ConfigRecord, key: str) -> float:
    """A numeric config entry as float."""
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"config entry '{key}' is {value!r}, expected a number")
    return float(value)


def config_str(record: ConfigRecord, key: str) -> str:
    """A string config entry."""
    value = record[key]
    if not isinstance(value, str):
        raise TypeError(f"config entry '{key}' is {value!r}, expected a string")
    return value


def metric_number(record: MetricRecord, key: str) -> float:
    """A scalar metric entry as float."""
    value = record[key]
    if not isinstance(value, int | float):
        raise TypeError(f"metric '{key}' is {value!r}, expected a number")
    return float(value)


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
        brier_sum=metric_number(metrics, keys.BRIER_SUM),
        log_loss_sum=metric_number(metrics, keys.LOG_LOSS_SUM),
    )


def flatten(arrays: ArrayRecord) -> NDArray[np.float64]:
    """All parameters as one float64 vector, in the record's key order."""
    return np.concatenate([arrays[name].numpy().ravel() for name in arrays]).astype(np.float64)


def unflatten(vector: NDArray[np.float64], like: ArrayRecord) -> ArrayRecord:
    """Split ``vector`` back into ``like``'s arrays, with their shapes and dtypes."""
    out, start = {}, 0
    for name in like:
        template = like[name].numpy()
        stop = start + template.size
        out[name] = Array(vector[start:stop].reshape(template.shape).astype(template.dtype))
        start = stop
    if start != vector.size:
        raise ValueError(f"vector has {vector.size} values; the model has {start}")
    return ArrayRecord(out)

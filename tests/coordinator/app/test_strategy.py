"""CreditFedAvg.aggregate_evaluate on bank replies, and the record conversions it relies on."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit import message_keys as keys
from credit.feature_stats import FeatureStats, combine_feature_stats, compute_feature_stats
from credit.metrics import CreditMetrics, ScoreSummary, credit_metrics, summarize_scores
from credit.schema import DatasetSchema

with warnings.catch_warnings():
    # typer (imported by flwr) reads click.utils names that Click 8.3+ deprecates; the
    # warning is attributed to typer, which pyproject's filterwarnings does not ignore.
    warnings.filterwarnings(
        "ignore", message=r"'click\.utils\.\w+' is deprecated", category=DeprecationWarning
    )
    from flwr.app import Error, Message, MessageType, MetricRecord, RecordDict
    from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
    from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from coordinator.app.strategy import CreditFedAvg
    from credit.records import (
        feature_stats_from_record,
        feature_stats_to_record,
        score_summary_from_records,
        score_summary_to_records,
    )

BANK_SIZES = [400, 1_300, 2_500, 5_000]


def _bank_scores(seed: int, n_rows: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_rows) < 0.22).astype(np.int64)
    scores = 1.0 / (1.0 + np.exp(-rng.normal(np.where(labels == 1, 0.3, -1.5), 1.2)))
    return scores, labels


@pytest.fixture
def summaries() -> list[ScoreSummary]:
    """Score summaries of four banks of different sizes."""
    return [summarize_scores(*_bank_scores(seed, size)) for seed, size in enumerate(BANK_SIZES)]


@pytest.fixture
def server_identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What Flower sets in a running ServerApp; needed to create instruction messages."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)
    yield


def _instruction(node_id: int) -> Message:
    return Message(RecordDict(), dst_node_id=node_id, message_type=MessageType.EVALUATE)


def _reply(summary: ScoreSummary, node_id: int) -> Message:
    """The evaluate reply a bank sends (as in participant.app.client_app)."""
    histograms, sums = score_summary_to_records(summary)
    content = RecordDict({keys.SCORES: histograms, keys.METRICS: sums})
    return Message(content, reply_to=_instruction(node_id))


def _error_reply(node_id: int) -> Message:
    return Message(Error(code=1, reason="bank crashed"), reply_to=_instruction(node_id))


def _over_the_wire(content: RecordDict) -> RecordDict:
    """Serialise a RecordDict to protobuf bytes and back, as transport does."""
    data = recorddict_to_proto(content).SerializeToString()
    return recorddict_from_proto(ProtoRecordDict.FromString(data))


# -- aggregate_evaluate ---------------------------------------------------------------


@pytest.mark.usefixtures("server_identity")
def test_aggregate_evaluate_gives_pooled_credit_metrics(summaries: list[ScoreSummary]) -> None:
    replies = [_reply(s, node_id) for node_id, s in enumerate(summaries, start=10)]
    assert all(r.metadata.src_node_id == n for n, r in enumerate(replies, start=10))

    record = CreditFedAvg(min_banks=2).aggregate_evaluate(1, replies)

    assert isinstance(record, MetricRecord)
    expected = credit_metrics(ScoreSummary.combine(summaries))
    assert CreditMetrics.from_dict(dict(record)) == expected
    assert record["n_rows"] == sum(BANK_SIZES)


@pytest.mark.usefixtures("server_identity")
def test_aggregate_evaluate_matches_metrics_of_all_scores(summaries: list[ScoreSummary]) -> None:
    scores, labels = zip(*(_bank_scores(s, n) for s, n in enumerate(BANK_SIZES)), strict=True)
    pooled = credit_metrics(summarize_scores(np.concatenate(scores), np.concatenate(labels)))

    record = CreditFedAvg(min_banks=1).aggregate_evaluate(
        3, [_reply(s, i) for i, s in enumerate(summaries)]
    )

    assert record is not None
    aggregated = CreditMetrics.from_dict(dict(record))
    for name, value in pooled.as_dict().items():
        assert aggregated.as_dict()[name] == pytest.approx(value, rel=1e-12), name


@pytest.mark.usefixtures("server_identity")
def test_error_replies_are_left_out(summaries: list[ScoreSummary]) -> None:
    strategy = CreditFedAvg(min_banks=2)
    good = [_reply(s, i) for i, s in enumerate(summaries[:3])]
    mixed = [_error_reply(90), good[0], _error_reply(91), *good[1:]]

    with_errors = strategy.aggregate_evaluate(2, mixed)
    without = strategy.aggregate_evaluate(2, good)

    assert with_errors is not None
    assert without is not None
    assert dict(with_errors) == dict(without)
    assert with_errors["n_rows"] == sum(BANK_SIZES[:3])


@pytest.mark.usefixtures("server_identity")
def test_no_usable_reply_gives_none() -> None:
    strategy = CreditFedAvg(min_banks=2)

    assert strategy.aggregate_evaluate(1, []) is None
    assert strategy.aggregate_evaluate(1, [_error_reply(1), _error_reply(2)]) is None


@pytest.mark.usefixtures("server_identity")
def test_reply_with_wrong_record_type_is_reported(summaries: list[ScoreSummary]) -> None:
    _, sums = score_summary_to_records(summaries[0])
    content = RecordDict({keys.SCORES: sums, keys.METRICS: sums})
    reply = Message(content, reply_to=_instruction(4))

    with pytest.raises(TypeError, match="message record 'scores' is MetricRecord"):
        CreditFedAvg(min_banks=1).aggregate_evaluate(1, [reply])


def test_strategy_waits_for_min_banks() -> None:
    strategy = CreditFedAvg(min_banks=3)

    assert strategy.min_train_nodes == 3
    assert strategy.min_evaluate_nodes == 3
    assert strategy.min_available_nodes == 3
    assert strategy.fraction_train == 1.0
    assert strategy.fraction_evaluate == 1.0


@pytest.mark.parametrize("min_banks", [0, -1])
def test_fewer_than_one_bank_is_rejected(min_banks: int) -> None:
    with pytest.raises(ValueError, match="min_banks must be >= 1"):
        CreditFedAvg(min_banks=min_banks)


# -- records --------------------------------------------------------------------------


def test_score_summary_round_trips_exactly(summaries: list[ScoreSummary]) -> None:
    for summary in summaries:
        arrays, metrics = score_summary_to_records(summary)
        content = _over_the_wire(RecordDict({keys.SCORES: arrays, keys.METRICS: metrics}))
        restored = score_summary_from_records(content[keys.SCORES], content[keys.METRICS])

        np.testing.assert_array_equal(restored.positives, summary.positives)
        np.testing.assert_array_equal(restored.negatives, summary.negatives)
        assert restored.positives.dtype == np.int64
        assert restored.brier_sum == summary.brier_sum
        assert restored.log_loss_sum == summary.log_loss_sum
        assert content[keys.METRICS][keys.NUM_EXAMPLES] == summary.n_rows


def test_metrics_of_round_tripped_summaries_equal_the_originals(
    summaries: list[ScoreSummary],
) -> None:
    restored = [
        score_summary_from_records(*score_summary_to_records(summary)) for summary in summaries
    ]

    assert credit_metrics(ScoreSummary.combine(restored)) == credit_metrics(
        ScoreSummary.combine(summaries)
    )


@pytest.fixture(scope="module")
def bank_feature_stats(embedded_frame: pd.DataFrame, schema: DatasetSchema) -> list[FeatureStats]:
    rows = np.random.default_rng(2).permutation(len(embedded_frame))
    return [
        compute_feature_stats(embedded_frame.iloc[part], schema, grid_bins=256)
        for part in np.split(rows, [2_000, 9_000, 16_000])
    ]


def test_feature_stats_round_trip_exactly(bank_feature_stats: list[FeatureStats]) -> None:
    for stats in bank_feature_stats:
        record = _over_the_wire(RecordDict({keys.FEATURE_STATS: feature_stats_to_record(stats)}))
        restored = feature_stats_from_record(record[keys.FEATURE_STATS])

        assert restored.grid_bins == stats.grid_bins == 256
        assert sorted(restored.numeric) == sorted(stats.numeric)
        for name, numeric in stats.numeric.items():
            got = restored.numeric[name]
            np.testing.assert_array_equal(got.histogram, numeric.histogram)
            assert got.histogram.dtype == np.int64
            assert (got.count, got.total, got.total_squares) == (
                numeric.count,
                numeric.total,
                numeric.total_squares,
            )


def test_combined_round_tripped_feature_stats_equal_the_originals(
    bank_feature_stats: list[FeatureStats],
) -> None:
    restored = [feature_stats_from_record(feature_stats_to_record(s)) for s in bank_feature_stats]
    combined, expected = combine_feature_stats(restored), combine_feature_stats(bank_feature_stats)

    for name, numeric in expected.numeric.items():
        got = combined.numeric[name]
        np.testing.assert_array_equal(got.histogram, numeric.histogram)
        assert (got.count, got.total, got.total_squares) == (
            numeric.count,
            numeric.total,
            numeric.total_squares,
        )

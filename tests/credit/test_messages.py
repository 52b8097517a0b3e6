"""The message contract: typed parts round-trip over the wire; broken input is refused."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from credit import message_keys as keys
from credit.encoding import StatsSource, fit_encoder
from credit.errors import MalformedMessage
from credit.feature_stats import FeatureStats, combine_feature_stats, compute_feature_stats
from credit.metrics import DEFAULT_SCORE_BINS, ScoreSummary, credit_metrics, summarize_scores
from credit.model_spec import ModelKind, ModelSpec
from credit.schema import DatasetSchema

with warnings.catch_warnings():
    # typer (imported by flwr) reads click.utils names that Click 8.3+ deprecates; the
    # warning is attributed to typer, which pyproject's filterwarnings does not ignore.
    warnings.filterwarnings(
        "ignore", message=r"'click\.utils\.\w+' is deprecated", category=DeprecationWarning
    )
    from flwr.app import Array, ConfigRecord, MetricRecord, RecordDict
    from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
    from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

    from credit.messages import (
        BankIntro,
        Dropped,
        EvaluationDeclined,
        LedgerEvent,
        LedgerSummary,
        ProtocolStage,
        QueryInstructions,
        Refusal,
        RoundInstructions,
        Task,
        TrainMetrics,
        feature_stats_from_record,
        feature_stats_to_record,
        score_summary_from_content,
        score_summary_to_content,
        secagg,
    )
    from privacy.secagg.wire import decode_advertisement, decode_forward, decode_unmask

BANK_SIZES = [400, 1_300, 2_500, 5_000]
BINS = DEFAULT_SCORE_BINS


def _bank_scores(seed: int, n_rows: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n_rows) < 0.22).astype(np.int64)
    scores = 1.0 / (1.0 + np.exp(-rng.normal(np.where(labels == 1, 0.3, -1.5), 1.2)))
    return scores, labels


@pytest.fixture
def summaries() -> list[ScoreSummary]:
    """Score summaries of four banks of different sizes."""
    return [summarize_scores(*_bank_scores(seed, size)) for seed, size in enumerate(BANK_SIZES)]


def _over_the_wire(content: RecordDict) -> RecordDict:
    """Serialise a RecordDict to protobuf bytes and back, as transport does."""
    data = recorddict_to_proto(content).SerializeToString()
    return recorddict_from_proto(ProtoRecordDict.FromString(data))


# -- records --------------------------------------------------------------------------


def test_score_summary_round_trips_exactly(summaries: list[ScoreSummary]) -> None:
    for summary in summaries:
        content = _over_the_wire(score_summary_to_content(summary))
        restored = score_summary_from_content(content, score_bins=summary.positives.size)

        np.testing.assert_array_equal(restored.positives, summary.positives)
        np.testing.assert_array_equal(restored.negatives, summary.negatives)
        assert restored.positives.dtype == np.float64  # noisy counts are reals
        assert restored.brier_sum == summary.brier_sum
        assert restored.log_loss_sum == summary.log_loss_sum
        # The rows scored are not sent beside the histograms: they are their total.
        assert keys.NUM_EXAMPLES not in content[keys.METRICS]


def test_a_noisy_score_summary_round_trips_exactly(summaries: list[ScoreSummary]) -> None:
    """A bank under a budget releases reals: negative and fractional counts are valid."""
    rng = np.random.default_rng(3)
    exact = summaries[0]
    noisy = ScoreSummary.from_vector(
        exact.to_vector() + rng.normal(0.0, 2.0, 2 * exact.positives.size + 2),
        exact.positives.size,
    )
    assert np.any(noisy.to_vector() < 0)

    content = _over_the_wire(score_summary_to_content(noisy))
    restored = score_summary_from_content(content, score_bins=noisy.positives.size)

    np.testing.assert_array_equal(restored.to_vector(), noisy.to_vector())


def test_metrics_of_round_tripped_summaries_equal_the_originals(
    summaries: list[ScoreSummary],
) -> None:
    restored = [
        score_summary_from_content(score_summary_to_content(summary), score_bins=BINS)
        for summary in summaries
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


def test_feature_stats_round_trip_exactly(
    bank_feature_stats: list[FeatureStats], schema: DatasetSchema
) -> None:
    for stats in bank_feature_stats:
        record = _over_the_wire(RecordDict({keys.FEATURE_STATS: feature_stats_to_record(stats)}))
        restored = feature_stats_from_record(
            record[keys.FEATURE_STATS], schema=schema, grid_bins=256
        )

        assert restored.grid_bins == stats.grid_bins == 256
        assert list(restored.numeric) == list(stats.numeric)
        assert list(restored.categorical) == list(stats.categorical)
        np.testing.assert_array_equal(restored.to_vector(), stats.to_vector())
        for name, numeric in stats.numeric.items():
            got = restored.numeric[name]
            assert got.cells.events.dtype == np.float64  # whole counts, or noisy reals
            assert np.array_equal(got.cells.events, np.round(got.cells.events))
            assert got.count == numeric.count and got.cells.regular == 256
        for name, cells in stats.categorical.items():
            assert restored.categorical[name].regular == cells.regular


def test_combined_round_tripped_feature_stats_equal_the_originals(
    bank_feature_stats: list[FeatureStats], schema: DatasetSchema
) -> None:
    restored = [
        feature_stats_from_record(feature_stats_to_record(s), schema=schema, grid_bins=s.grid_bins)
        for s in bank_feature_stats
    ]
    combined, expected = combine_feature_stats(restored), combine_feature_stats(bank_feature_stats)

    np.testing.assert_array_equal(combined.to_vector(), expected.to_vector())
    for name, numeric in expected.numeric.items():
        got = combined.numeric[name]
        np.testing.assert_array_equal(got.histogram, numeric.histogram)
        assert (got.count, got.total, got.total_squares) == (
            numeric.count,
            numeric.total,
            numeric.total_squares,
        )


# -- typed parts ----------------------------------------------------------------------

RUN = {
    "run_name": "q3",
    "schema_hash": "ab" * 32,
    "test_fraction": 0.2,
    "seed": 7,
    "planned_rounds": 3,
    "planned_evaluations": 3,
    "local_epochs": 1,
    "batch_size": 64,
    "max_grad_norm": 1.0,
}


def _round(schema: DatasetSchema) -> RoundInstructions:
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    return RoundInstructions(
        **RUN,
        server_round=2,
        learning_rate=0.05,
        score_bins=100,
        encoder=encoder,
        model_spec=ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs),
    )


def _parts(schema: DatasetSchema) -> list[Any]:
    event = LedgerEvent(
        round=0, noise_multiplier=20.0, sample_rate=1.0, steps=1, max_grad_norm=4.0, kind="x"
    )
    return [
        _round(schema),
        QueryInstructions(**RUN, task=Task.FEATURE_STATS, grid_bins=64),
        QueryInstructions(**RUN, task=Task.SECAGG_UNMASK, server_round=3),
        BankIntro(name="bank-a", n_train=800),
        EvaluationDeclined(reason="bank 'bank-a' holds out fewer than 50 rows"),
        Refusal(
            bank="bank-a",
            reason="PrivacyBudgetExceeded",
            spent=0.5,
            requested=1.2,
            maximum=1.0,
            server_round=4,
        ),
        Refusal(
            bank="bank-a",
            reason="PrivacyBudgetExceeded",
            spent=0.0,
            requested=0.0032,
            maximum=0.001,
            server_round=0,
            detail="max epsilon 0.001 cannot pay for the set-up release (epsilon ≥ 0.0031)",
        ),
        LedgerSummary(
            bank="bank-a",
            epsilon=0.4,
            delta=1e-5,
            max_epsilon=1.0,
            accountant="rdp",
            events=(event,),
        ),
        TrainMetrics(num_examples=800, train_loss=0.43),
        TrainMetrics(epsilon=0.2),
        Dropped(stage=ProtocolStage.UNMASK),
        secagg.KeyRequest(),
        secagg.AdvertiseRequest(roster=b"{}", threshold=3, advertise_round=1),
        secagg.TrainInputs(threshold=3, server_round=1, forward=b"{}", fixed_point="1.0:14:32"),
        secagg.ConsistencyRequest(server_round=1, survivors=b"[]"),
        secagg.UnmaskRequest(server_round=1, unmask=b"{}"),
        secagg.Enrollment(member="bank-a", encryption_key=bytes(32), signature=bytes(64)),
        secagg.SurvivorSignature(signature=bytes(64)),
        secagg.Advertisement(advertisement=b"{}"),
        secagg.Reveal(reveal=b"{}"),
    ]


def test_every_part_round_trips_over_the_wire(schema: DatasetSchema) -> None:
    for part in _parts(schema):
        content = RecordDict()
        part.put(content)
        restored = type(part).take(_over_the_wire(content))
        assert restored == part, type(part).__name__


def test_a_refusal_prints_the_bank_s_detail_or_its_arithmetic() -> None:
    fields: dict[str, Any] = {
        "bank": "bank-a", "reason": "PrivacyBudgetExceeded", "spent": 0.0, "requested": 0.0032,
        "maximum": 0.001, "server_round": 0,
    }  # fmt: skip
    assert Refusal(**fields).text() == (
        "bank 'bank-a' refused round 0 (PrivacyBudgetExceeded: spent 0.0000, would reach "
        "0.0032, maximum 0.0010)"
    )
    explained = Refusal(**fields, detail="max epsilon 0.001 cannot pay for one round")
    assert explained.text() == (
        "bank 'bank-a' refused round 0 (PrivacyBudgetExceeded): max epsilon 0.001 cannot pay "
        "for one round"
    )
    assert "detail" not in Refusal(**fields).document()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("detail", "x" * 501, "'detail': String should have at most 500 characters"),
        ("detail", "two\nlines", "'detail': String should match pattern"),
        ("detail", "\x1b[2Jcleared", "'detail': String should match pattern"),
        ("detail", "", "'detail': String should have at least 1 character"),
        ("bank", "b" * 201, "'bank': String should have at most 200 characters"),
        ("reason", "r" * 101, "'reason': String should have at most 100 characters"),
    ],
)
def test_a_refusal_s_text_is_bounded_and_one_printable_line(
    key: str, value: str, message: str
) -> None:
    """A malicious bank's refusal is printed and recorded: nothing unbounded, no escapes."""
    record = Refusal(
        bank="bank-a", reason="PrivacyBudgetExceeded", spent=0.0, requested=1.0, maximum=0.5,
        server_round=0, detail="fine",
    ).to_record()  # fmt: skip
    with pytest.raises(MalformedMessage, match=f"^record 'refusal': {message}"):
        Refusal.from_record(_broken(record, key, value))


def test_round_instructions_carry_encoder_and_spec_as_json(schema: DatasetSchema) -> None:
    record = _round(schema).to_record()
    assert isinstance(record["encoder"], str) and isinstance(record["model-spec"], str)
    assert RoundInstructions.from_record(record).encoder == _round(schema).encoder


def _broken(record: ConfigRecord, key: str, value: Any) -> ConfigRecord:
    entries = dict(record)
    if value is None:
        del entries[key]
    else:
        entries[key] = value
    return ConfigRecord(entries)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seed", True, "'seed': Input should be a valid integer; got True"),
        ("seed", "7", "'seed': Input should be a valid integer; got '7'"),
        ("task", "exfiltrate", "'task': Input should be 'feature-stats'"),
        ("test-fraction", 1.5, "'test-fraction': Input should be less than 1"),
        ("planned-rounds", 0, "'planned-rounds': Input should be greater than or equal"),
        ("grid-bins", 1, "a feature-stats query needs grid-bins >= 2"),
        ("schema-hash", None, "'schema-hash': Field required"),
        ("sneaky", 1, "'sneaky': unknown key"),
    ],
)
def test_a_malformed_query_is_refused_naming_the_entry(key: str, value: Any, message: str) -> None:
    record = _broken(
        QueryInstructions(**RUN, task=Task.FEATURE_STATS, grid_bins=64).to_record(), key, value
    )
    with pytest.raises(MalformedMessage, match=f"^record 'config': {message}"):
        QueryInstructions.from_record(record)


def test_a_bad_encoder_or_odd_score_bins_are_refused(schema: DatasetSchema) -> None:
    record = _round(schema).to_record()
    with pytest.raises(MalformedMessage, match="record 'config': 'encoder'"):
        RoundInstructions.from_record(_broken(record, "encoder", "{not json"))
    with pytest.raises(MalformedMessage, match="score-bins must be even"):
        RoundInstructions.from_record(_broken(record, "score-bins", 101))


def test_a_missing_or_mistyped_record_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="the message has no 'config' record"):
        QueryInstructions.take(RecordDict())
    content = RecordDict({keys.CONFIG: MetricRecord({"seed": 1})})
    with pytest.raises(MalformedMessage, match="record 'config' is a MetricRecord"):
        QueryInstructions.take(content)


def test_ledger_events_that_are_not_json_are_refused() -> None:
    record = ConfigRecord(
        {"bank": "b", "epsilon": 0.1, "delta": 1e-5, "max-epsilon": 1.0, "accountant": "rdp"}
    )
    record["events"] = "[{"
    with pytest.raises(MalformedMessage, match="record 'privacy': 'events': not JSON"):
        LedgerSummary.from_record(record)


def _scores(summary: ScoreSummary, **arrays: Any) -> RecordDict:
    content = score_summary_to_content(summary)
    for name, value in arrays.items():
        content[keys.SCORES][name] = Array(np.asarray(value))
    return content


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({keys.POSITIVES: np.zeros(99)}, r"shape \(99,\), expected \(100,\)"),
        ({keys.POSITIVES: np.zeros((2, BINS // 2))}, r"shape \(2, 50\), expected \(100,\)"),
        ({keys.NEGATIVES: np.full(BINS, np.nan)}, "not finite numbers"),
        ({keys.NEGATIVES: np.full(BINS, np.inf)}, "not finite numbers"),
        ({keys.POSITIVES: np.full(BINS, -np.inf)}, "not finite numbers"),
        ({keys.POSITIVES: np.ones(BINS, dtype=np.bool_)}, "not finite numbers"),
    ],
)
def test_broken_score_histograms_are_refused(
    summaries: list[ScoreSummary], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(MalformedMessage, match=message):
        score_summary_from_content(_scores(summaries[0], **change), score_bins=BINS)


@pytest.mark.parametrize(
    "change",
    [
        {keys.POSITIVES: -np.ones(BINS, dtype=np.int64)},
        {keys.NEGATIVES: np.full(BINS, 0.5)},
        {keys.NEGATIVES: np.full(BINS, -2.75, dtype=np.float32)},
    ],
)
def test_noisy_counts_below_zero_or_fractional_are_accepted(
    summaries: list[ScoreSummary], change: dict[str, Any]
) -> None:
    restored = score_summary_from_content(_scores(summaries[0], **change), score_bins=BINS)
    ((name, value),) = change.items()
    histogram = restored.positives if name == keys.POSITIVES else restored.negatives
    assert histogram.dtype == np.float64
    np.testing.assert_array_equal(histogram, value.astype(np.float64))


@pytest.mark.parametrize(("key", "value"), [("brier-sum", float("nan")), ("log-loss-sum", np.inf)])
def test_sums_that_are_not_finite_are_refused(
    summaries: list[ScoreSummary], key: str, value: float
) -> None:
    content = score_summary_to_content(summaries[0])
    content[keys.METRICS][key] = value
    with pytest.raises(MalformedMessage, match=f"record 'metrics': '{key}'"):
        score_summary_from_content(content, score_bins=BINS)


def test_noisy_sums_below_zero_are_accepted(summaries: list[ScoreSummary]) -> None:
    content = score_summary_to_content(summaries[0])
    content[keys.METRICS]["brier-sum"] = -1.5
    assert score_summary_from_content(content, score_bins=BINS).brier_sum == -1.5


def test_a_row_count_beside_the_histograms_is_refused(summaries: list[ScoreSummary]) -> None:
    """The rows scored are the histograms' (noisy) total: a count beside them is not a key
    of the contract (it would release the held-out rows exactly)."""
    content = score_summary_to_content(summaries[0])
    content[keys.METRICS]["num-examples"] = summaries[0].n_rows
    with pytest.raises(MalformedMessage, match="record 'metrics': 'num-examples': unknown key"):
        score_summary_from_content(content, score_bins=BINS)


def test_a_bank_intro_with_a_held_out_count_is_refused() -> None:
    """Held-out counts are not public: BankIntro has no n-test."""
    content = RecordDict()
    BankIntro(name="bank-a", n_train=800).put(content)
    content[keys.BANK]["n-test"] = 200
    with pytest.raises(MalformedMessage, match="'n-test': unknown key"):
        BankIntro.take(content)


def test_feature_stats_of_other_features_are_refused(
    bank_feature_stats: list[FeatureStats], schema: DatasetSchema
) -> None:
    record = feature_stats_to_record(bank_feature_stats[0])
    record["SALARY/moments"] = Array(np.zeros(3))
    with pytest.raises(MalformedMessage, match="does not hold the schema's features"):
        feature_stats_from_record(record, schema=schema, grid_bins=256)
    with pytest.raises(MalformedMessage, match="shape"):
        feature_stats_from_record(
            feature_stats_to_record(bank_feature_stats[0]), schema=schema, grid_bins=128
        )
    without_classes = feature_stats_to_record(bank_feature_stats[0])
    del without_classes["PAY_0/non-events"]
    with pytest.raises(MalformedMessage, match="first differences: PAY_0/non-events"):
        feature_stats_from_record(without_classes, schema=schema, grid_bins=256)


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (decode_advertisement, b"not json"),
        (decode_advertisement, b'{"mask_public": 5, "sealed": {}}'),
        (decode_forward, b'{"mask_publics": {"x": "AAAA"}, "sealed": {}}'),
        (decode_forward, b'{"mask_publics": {"1": "@@@"}, "sealed": {}}'),
        (decode_unmask, b'{"survivors": [1]}'),
        (decode_unmask, b"[]"),
    ],
)
def test_malformed_secure_aggregation_bytes_are_refused(decode: Any, data: bytes) -> None:
    with pytest.raises(MalformedMessage, match="malformed secure-aggregation"):
        decode(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score-bins": 10**7}, "'score-bins': Input should be less than or equal to 1000000"),
        ({"model-spec": '{"kind": "mlp", "n_inputs": 10, "hidden_sizes": [100000]}'}, "4096"),
        ({"model-spec": '{"kind": "logreg", "n_inputs": 10000000}'}, "100000"),
    ],
)
def test_a_coordinator_cannot_make_a_bank_allocate_without_bound(
    schema: DatasetSchema, change: dict[str, Any], message: str
) -> None:
    record = _round(schema).to_record()
    for key, value in change.items():
        record = _broken(record, key, value)
    with pytest.raises(MalformedMessage, match=message):
        RoundInstructions.from_record(record)
    query = QueryInstructions(**RUN, task=Task.FEATURE_STATS, grid_bins=64).to_record()
    with pytest.raises(MalformedMessage, match="'grid-bins': Input should be less than or equal"):
        QueryInstructions.from_record(_broken(query, "grid-bins", 2**20))

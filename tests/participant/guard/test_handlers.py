"""The bank's handlers: a train message that also asks for an evaluation, and a
coordinator that sends what it should not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, MessageType, RecordDict

from credit import message_keys as keys
from credit.messages import (
    EvaluateRequest,
    Refusal,
    Task,
    TrainMetrics,
    score_summary_from_content,
    secagg,
)
from credit.metrics import ScoreSummary
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    JoinedBank,
    acme_settings,
    context,
    feature_stats_query,
    guarded_app,
    join_query,
    joined_bank,
    message,
    round_content,
    run_instructions,
)
from tests.support.secagg import pin_members


def test_a_coordinator_sending_undecodable_masking_inputs_charges_nothing(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Secure aggregation's inputs are opened before the round is charged or trained."""
    ledger = tmp_path / "acme.ledger.jsonl"
    settings, _ = pin_members(
        acme_settings(
            write_bank_csv(400),
            max_epsilon=4.0,
            ledger_path=ledger,
            audit_log=tmp_path / "acme.audit.jsonl",
        ),
        tmp_path,
    )
    guard = BankGuard(settings)
    bank = JoinedBank(app=guarded_app(guard), context=context(), guard=guard)
    bank.send(MessageType.QUERY, feature_stats_query(schema))
    spent = ledger.read_text()
    content, _ = round_content(schema, 1)
    secagg.TrainInputs(
        threshold=3, server_round=1, forward=b"garbage", fixed_point="1.0:14:32"
    ).put(content)

    with pytest.raises(
        GuardRefused, match="MalformedMessage: malformed secure-aggregation forward"
    ):
        bank.send(MessageType.TRAIN, content)

    assert ledger.read_text() == spent  # nothing charged, nothing trained


def test_a_bank_that_requires_secure_aggregation_refuses_a_plain_round(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """The attack: drop the secure-aggregation record to read a bank's exact weights."""
    audit = tmp_path / "audit.jsonl"
    settings = acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=audit)
    guard = BankGuard(settings.model_copy(update={"require_secure_aggregation": True}))
    app, ctx = guarded_app(guard), context()
    app(message(MessageType.QUERY, join_query(schema)), ctx)
    content, _ = round_content(schema, 1)

    with pytest.raises(GuardRefused, match="only through secure aggregation"):
        app(message(MessageType.TRAIN, content), ctx)

    last = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "refusal" and last["data"]["kind"] == "plain-update"


def test_a_bank_without_a_pinned_member_list_refuses_secure_aggregation(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Fail closed: no pinned list, no way to check a roster, so no keys at all."""
    audit = tmp_path / "audit.jsonl"
    guard = BankGuard(acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=audit))
    app, ctx = guarded_app(guard), context()
    query = RecordDict()
    run_instructions(schema).query(Task.JOIN).put(query)
    secagg.KeyRequest().put(query)

    with pytest.raises(GuardRefused, match=r"participant start --members FILE"):
        app(message(MessageType.QUERY, query), ctx)

    last = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "refusal" and last["data"]["kind"] == "secagg-members"


def _bank_without_budget(
    schema: DatasetSchema, data_path: Path, *, audit_log: Path | None = None
) -> JoinedBank:
    """A bank named ``acme`` without a privacy budget that has joined a new run."""
    guard = BankGuard(acme_settings(data_path, max_epsilon=None, audit_log=audit_log))
    bank = JoinedBank(app=guarded_app(guard), context=context(), guard=guard)
    bank.send(MessageType.QUERY, feature_stats_query(schema))
    return bank


def _asking_to_score(schema: DatasetSchema, server_round: int, model: ArrayRecord) -> RecordDict:
    """Round ``server_round``'s train message carrying ``model`` (round - 1's), scored first."""
    content, _ = round_content(schema, server_round)
    content[keys.ARRAYS] = model
    EvaluateRequest(server_round=server_round - 1).put(content)
    return content


def _evaluation_in(content: RecordDict) -> ScoreSummary:
    return score_summary_from_content(
        content,
        score_bins=100,
        scores_key=keys.EVALUATION_SCORES,
        sums_key=keys.EVALUATION,
    )


def _same(got: ScoreSummary, want: ScoreSummary) -> None:
    np.testing.assert_array_equal(got.positives, want.positives)
    np.testing.assert_array_equal(got.negatives, want.negatives)
    assert (got.brier_sum, got.log_loss_sum) == (want.brier_sum, want.log_loss_sum)


def test_a_train_message_asking_for_an_evaluation_is_answered_beside_the_update(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """The score summary is the evaluate reply's, under the train reply's own records."""
    log = tmp_path / "acme.audit.jsonl"
    bank = _bank_without_budget(schema, write_bank_csv(400), audit_log=log)
    first, model = round_content(schema, 1)
    assert keys.EVALUATION not in bank.send(MessageType.TRAIN, first).content  # not asked
    evaluated = bank.send(MessageType.EVALUATE, round_content(schema, 1)[0]).content
    expected = score_summary_from_content(evaluated, score_bins=100)

    reply = bank.send(MessageType.TRAIN, _asking_to_score(schema, 2, model)).content

    _same(_evaluation_in(reply), expected)
    rows = TrainMetrics.take(reply).num_examples  # the update, beside it
    assert rows is not None and rows + expected.n_rows == 400
    assert keys.ARRAYS in reply and keys.SCORES not in reply
    events = [json.loads(line) for line in log.read_text().splitlines()][-3:]
    assert [(e["event"], e["data"]["server_round"]) for e in events] == [
        ("evaluate", 1),  # first the model received, round 1's ...
        ("run-end", 1),  # (the run planned one round)
        ("train", 2),  # ... then round 2's training on it
    ]
    assert events[0]["data"]["model_sha256"] == events[2]["data"]["model_sha256"]


def _events_since(ledger: Path, spent: str) -> list[dict[str, Any]]:
    """The release events written to ``ledger`` after its text was ``spent``."""
    text = ledger.read_text()
    assert text.startswith(spent)
    entries = [json.loads(line) for line in text[len(spent) :].splitlines()]
    return [entry for entry in entries if entry.get("type") == "event"]


def test_a_bank_refusing_to_train_still_scores_the_model_it_was_sent(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Round 2 is past the bank's plan (one round): refused, yet evaluated. Under a budget
    the evaluation is noisy and charged to the held-out rows as an evaluation release
    (the run's one planned evaluation), never as training."""
    data = write_bank_csv(400)
    exact_bank = _bank_without_budget(schema, data)
    exact = exact_bank.send(MessageType.EVALUATE, round_content(schema, 1)[0]).content
    expected = score_summary_from_content(exact, score_bins=100)
    ledger = tmp_path / "acme.ledger.jsonl"
    bank = joined_bank(schema, data, max_epsilon=8.0, ledger_path=ledger)
    first, model = round_content(schema, 1)
    bank.send(MessageType.TRAIN, first)
    spent = ledger.read_text()

    reply = bank.send(MessageType.TRAIN, _asking_to_score(schema, 2, model)).content

    assert Refusal.take(reply).server_round == 2
    noisy = _evaluation_in(reply)
    assert noisy.to_vector().shape == expected.to_vector().shape
    assert not np.array_equal(noisy.to_vector(), expected.to_vector())  # noise was added
    assert [(e["kind"], e["round"]) for e in _events_since(ledger, spent)] == [
        ("evaluation-release", 1)
    ]


def test_an_evaluation_asked_for_another_round_than_the_one_before_is_refused(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    bank = _bank_without_budget(schema, write_bank_csv(300))
    content, _ = round_content(schema, 3)
    EvaluateRequest(server_round=1).put(content)
    with pytest.raises(GuardRefused, match="carries round 2's model, not round 1's"):
        bank.send(MessageType.TRAIN, content)

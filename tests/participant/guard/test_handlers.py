"""The bank's handlers against a coordinator that sends what it should not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from flwr.app import MessageType

from credit.messages import secagg
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    acme_settings,
    context,
    feature_stats_query,
    guarded_app,
    joined_bank,
    message,
    round_content,
)


def test_a_coordinator_sending_undecodable_masking_inputs_charges_nothing(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """Secure aggregation's inputs are opened before the round is charged or trained."""
    ledger = tmp_path / "acme.ledger.jsonl"
    bank = joined_bank(schema, write_bank_csv(400), max_epsilon=4.0, ledger_path=ledger)
    spent = ledger.read_text()
    content, _ = round_content(schema, 1)
    secagg.TrainInputs(
        roster=b"{}", threshold=2, server_round=1, forward=b"garbage", fixed_point="1.0:14:32"
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
    app(message(MessageType.QUERY, feature_stats_query(schema)), ctx)
    content, _ = round_content(schema, 1)

    with pytest.raises(GuardRefused, match="only through secure aggregation"):
        app(message(MessageType.TRAIN, content), ctx)

    last = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert last["event"] == "refusal" and last["data"]["kind"] == "plain-update"

"""A bank's guard records what it was asked and did in its signed audit log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ConfigRecord, MessageType, RecordDict

from credit import __version__
from credit import message_keys as keys
from credit.audit import arrays_sha256, verify_audit
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from participant.contract import GuardRequest, ReplyStatus, RequestKind
from participant.guard.bank_guard import BankGuard
from participant.guard.sessions import MemorySessions
from tests.participant.guard.bank_messages import (
    RUN_ID,
    acme_settings,
    context,
    guarded_app,
    joined_bank,
    message,
    round_content,
)


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_bank_logs_join_train_evaluate_end_and_a_refused_round(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    log = tmp_path / "audit" / "acme.jsonl"
    bank = joined_bank(schema, write_bank_csv(400), max_epsilon=8.0, audit_log=log)
    content, sent = round_content(schema, 1)
    reply = bank.send(MessageType.TRAIN, content)
    epsilon = reply.content.metric_records[keys.METRICS]["epsilon"]
    bank.send(MessageType.EVALUATE, round_content(schema, 1)[0])
    refused = bank.send(MessageType.TRAIN, round_content(schema, 2)[0])
    assert keys.REFUSAL in refused.content  # round 2 was not planned: over budget

    report = verify_audit(log, allow_open=True)
    assert report.writer == "bank acme" and not report.closed
    entries = _entries(log)
    assert [e["event"] for e in entries] == [
        "log-open",
        "run-join",
        "train",
        "evaluate",
        "run-end",
        "refusal",
    ]
    join, train, refusal = entries[1]["data"], entries[2]["data"], entries[5]["data"]
    assert join["run"] == "q3-scorecard" and join["flower_run_id"] == RUN_ID
    assert join["config_sha256"] == RunConfig(rounds=1, run_name="q3-scorecard").digest()
    assert join["schema_sha256"] == schema.schema_hash()
    assert join["fedcredit"] == __version__
    assert train["server_round"] == 1 and train["epsilon"] == pytest.approx(epsilon)
    assert train["model_sha256"] == arrays_sha256({n: sent[n].numpy() for n in sent})
    assert refusal["kind"] == "privacy-budget" and refusal["server_round"] == 2
    assert (tmp_path / "audit" / "acme.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "audit" / "acme.pub").is_file()


def test_an_unapproved_release_is_logged_with_the_refusal(
    tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    log = tmp_path / "bank.audit.jsonl"
    settings = acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=log)
    guard = BankGuard(settings.model_copy(update={"approved_version": "0.0.9"}))
    train = message(MessageType.TRAIN, RecordDict({keys.CONFIG: ConfigRecord({"x": 1})}))
    with pytest.raises(RuntimeError, match=r"approved fedcredit 0\.0\.9"):
        guarded_app(guard)(train, context())
    entries = _entries(log)
    assert [e["event"] for e in entries] == ["log-open", "refusal"]
    assert entries[1]["data"]["kind"] == "unapproved-version"
    assert "approved fedcredit 0.0.9" in entries[1]["data"]["reason"]
    assert entries[1]["writer"] == "bank acme"
    verify_audit(log, allow_open=True)
    assert (tmp_path / "bank.audit.pub").is_file()


def test_a_request_that_breaks_the_contract_is_refused_and_logged(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    log = tmp_path / "bank.audit.jsonl"
    guard = BankGuard(acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=log))
    request = GuardRequest(
        kind=RequestKind.QUERY, flower_run_id=7, node_id=5, relay_version=__version__
    )
    content = RecordDict({keys.CONFIG: ConfigRecord({"task": "raw-rows"})})

    reply, answered = guard.answer(request, content, MemorySessions())

    assert reply.status is ReplyStatus.REFUSED and answered == RecordDict()
    refusal = _entries(log)[-1]
    assert refusal["event"] == "refusal" and refusal["data"]["kind"] == "malformed-request"


def test_without_audit_log_a_bank_keeps_none(tmp_path: Path) -> None:
    assert acme_settings(tmp_path / "b.csv", max_epsilon=None).audit_settings() is None


def test_the_key_defaults_beside_the_log(tmp_path: Path) -> None:
    settings = acme_settings(
        tmp_path / "b.csv", max_epsilon=None, audit_log=Path("/srv/audit/bank.jsonl")
    ).audit_settings()
    assert settings is not None
    assert settings.key_path == Path("/srv/audit/bank.key") and settings.writer == "bank acme"

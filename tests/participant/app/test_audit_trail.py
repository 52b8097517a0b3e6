"""A bank's ClientApp records what it was asked and did in its signed audit log."""

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
from participant.app.approval import UnapprovedApp
from participant.app.client_app import make_client_app
from participant.app.node_config import NodeConfig
from tests.participant.app.bank_messages import (
    RUN_ID,
    context,
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


def test_an_unapproved_release_is_logged_before_the_refusal(tmp_path: Path) -> None:
    log = tmp_path / "bank.audit.jsonl"
    node = {
        "approved-version": "0.0.9",
        "data-path": str(tmp_path / "never-read.csv"),
        "audit-log": str(log),
        "audit-key": str(tmp_path / "keys" / "audit.key"),
    }
    train = message(MessageType.TRAIN, RecordDict({keys.CONFIG: ConfigRecord({"x": 1})}))
    with pytest.raises(UnapprovedApp, match=r"approved fedcredit 0\.0\.9"):
        make_client_app()(train, context(node))
    entries = _entries(log)
    assert [e["event"] for e in entries] == ["log-open", "refusal"]
    assert entries[1]["data"]["kind"] == "unapproved-version"
    assert "approved fedcredit 0.0.9" in entries[1]["data"]["reason"]
    assert entries[1]["writer"] == "bank never-read"
    verify_audit(log, allow_open=True)
    assert (tmp_path / "keys" / "audit.pub").is_file()


def _audit_settings(node_config: dict[str, Any]) -> Any:
    return NodeConfig.from_context(context(node_config)).audit_settings()


def test_without_audit_log_a_node_keeps_none() -> None:
    assert _audit_settings({"data-path": "/srv/bank.csv"}) is None


def test_the_key_defaults_beside_the_log() -> None:
    settings = _audit_settings({"audit-log": "/srv/audit/bank.jsonl", "bank-name": "b"})
    assert settings is not None
    assert settings.key_path == Path("/srv/audit/bank.key") and settings.writer == "bank b"

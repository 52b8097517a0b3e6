"""A bank's ClientApp records what it was asked and did in its signed audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, Metadata, RecordDict

from credit import __version__
from credit import message_keys as keys
from credit.audit import arrays_sha256, verify_audit
from credit.encoding import StatsSource, fit_encoder
from credit.models import ModelKind, ModelSpec, build_model
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from participant.app.approval import APPROVED_VERSION, UnapprovedApp
from participant.app.client_app import make_client_app
from participant.app.node_config import audit_settings

RUN_ID = 41


def _message(kind: str, content: RecordDict) -> Message:
    metadata = Metadata(
        run_id=RUN_ID,
        message_id="m",
        src_node_id=1,
        dst_node_id=5,
        reply_to_message_id="",
        group_id="g",
        created_at=time.time(),
        ttl=3600.0,
        message_type=kind,
    )
    return Message(content, metadata=metadata)


def _config(schema: DatasetSchema, **extra: Any) -> ConfigRecord:
    settings: dict[str, Any] = {
        keys.SCHEMA_HASH: schema.schema_hash(),
        keys.TEST_FRACTION: 0.2,
        keys.SEED: 0,
        keys.PLANNED_ROUNDS: 1,
        keys.LOCAL_EPOCHS: 1,
        keys.BATCH_SIZE: 64,
        keys.MAX_GRAD_NORM: 1.0,
        keys.DROPOUT_RATE: 0.0,
        keys.RUN_NAME: "q3-scorecard",
    }
    settings.update(extra)
    return ConfigRecord(settings)


def _round_content(schema: DatasetSchema, server_round: int) -> tuple[RecordDict, ArrayRecord]:
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC)
    spec = ModelSpec(kind=ModelKind.LOGREG, n_inputs=encoder.n_inputs)
    arrays = ArrayRecord(build_model(spec, seed=server_round).state_dict())
    config = _config(
        schema,
        **{
            keys.ENCODER: encoder.model_dump_json(),
            keys.MODEL_SPEC: spec.model_dump_json(),
            keys.SCORE_BINS: 100,
            keys.SERVER_ROUND: server_round,
            keys.LEARNING_RATE: 0.05,
        },
    )
    return RecordDict({keys.CONFIG: config, keys.ARRAYS: arrays}), arrays


def _context(node_config: dict[str, Any]) -> Context:
    run_config = RunConfig(rounds=1, run_name="q3-scorecard").to_flower()
    return Context(
        run_id=RUN_ID, node_id=5, node_config=node_config, state=RecordDict(), run_config=run_config
    )


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_bank_logs_join_train_evaluate_end_and_a_refused_round(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    log = tmp_path / "audit" / "acme.jsonl"
    node = {
        "data-path": str(write_bank_csv(400)),
        "bank-name": "acme",
        "max-epsilon": 8.0,
        "audit-log": str(log),
    }
    app, context = make_client_app(), _context(node)
    stats = _config(schema, **{keys.TASK: keys.TASK_FEATURE_STATS, keys.GRID_BINS: 32})
    app(_message(MessageType.QUERY, RecordDict({keys.CONFIG: stats})), context)
    content, sent = _round_content(schema, 1)
    reply = app(_message(MessageType.TRAIN, content), context)
    epsilon = reply.content.metric_records[keys.METRICS][keys.EPSILON]
    app(_message(MessageType.EVALUATE, _round_content(schema, 1)[0]), context)
    refused = app(_message(MessageType.TRAIN, _round_content(schema, 2)[0]), context)
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
        APPROVED_VERSION: "0.0.9",
        "data-path": str(tmp_path / "never-read.csv"),
        "audit-log": str(log),
        "audit-key": str(tmp_path / "keys" / "audit.key"),
    }
    train = _message(MessageType.TRAIN, RecordDict({keys.CONFIG: ConfigRecord({"x": 1})}))
    with pytest.raises(UnapprovedApp, match=r"approved fedcredit 0\.0\.9"):
        make_client_app()(train, _context(node))
    entries = _entries(log)
    assert [e["event"] for e in entries] == ["log-open", "refusal"]
    assert entries[1]["data"]["kind"] == "unapproved-version"
    assert "approved fedcredit 0.0.9" in entries[1]["data"]["reason"]
    assert entries[1]["writer"] == "bank never-read"
    verify_audit(log, allow_open=True)
    assert (tmp_path / "keys" / "audit.pub").is_file()


def test_without_audit_log_a_node_keeps_none() -> None:
    assert audit_settings(_context({"data-path": "/srv/bank.csv"})) is None


def test_the_key_defaults_beside_the_log() -> None:
    settings = audit_settings(_context({"audit-log": "/srv/audit/bank.jsonl", "bank-name": "b"}))
    assert settings is not None
    assert settings.key_path == Path("/srv/audit/bank.key") and settings.writer == "bank b"

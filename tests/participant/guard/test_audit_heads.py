"""A bank's audit log and the coordinator's: each reply carries the bank's head, each
request's head is recorded, and a bank log that was emptied, deleted or cut is refused."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ArrayRecord, ConfigRecord, MessageType, RecordDict

from credit import __version__
from credit import message_keys as keys
from credit.audit import verify_audit
from credit.errors import ConfigError
from credit.messages import AuditHead
from credit.schema import DatasetSchema
from participant.contract import GuardRequest, ReplyStatus, RequestKind
from participant.guard.bank_guard import BankGuard
from participant.guard.sessions import MemorySessions
from tests.participant.guard.bank_messages import (
    RUN_ID,
    RUN_NAME,
    acme_settings,
    feature_stats_query,
    joined_bank,
    round_content,
)

COORDINATOR = AuditHead(seq=5, head="a" * 64, key="b" * 64)


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _line_hashes(path: Path) -> list[str]:
    return [hashlib.sha256(line).hexdigest() for line in path.read_bytes().splitlines()]


def _request(kind: RequestKind = RequestKind.QUERY) -> GuardRequest:
    return GuardRequest(kind=kind, flower_run_id=RUN_ID, node_id=5, relay_version=__version__)


def _with(content: RecordDict, head: AuditHead | ConfigRecord | ArrayRecord | None) -> RecordDict:
    if isinstance(head, AuditHead):
        head.put(content)
    elif head is not None:
        content[keys.AUDIT_HEAD] = head
    return content


# -- heads carried and recorded ----------------------------------------------------------


def test_every_answered_reply_carries_the_banks_head_after_the_requests_entries(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    log = tmp_path / "audit" / "acme.jsonl"
    bank = joined_bank(schema, write_bank_csv(400), max_epsilon=8.0, audit_log=log)
    joined = len(_entries(log))  # log-open, run-join
    content, _ = round_content(schema, 1)
    trained = bank.send(MessageType.TRAIN, _with(content, COORDINATOR)).content
    refused = bank.send(MessageType.TRAIN, round_content(schema, 2)[0]).content  # over budget

    entries, hashes = _entries(log), _line_hashes(log)
    for reply in (trained, refused):
        head = AuditHead.take(reply)
        assert head.key == verify_audit(log, allow_open=True).fingerprint
        assert head.head == hashes[head.seq - 1]  # a line of the bank's log
    assert keys.REFUSAL in refused
    assert [e["event"] for e in entries[joined:]] == [
        "coordinator-head",
        "train",
        "refusal",
    ]
    # Each head covers its request's own entries: the train reply's is the train entry.
    assert AuditHead.take(trained).seq == joined + 2
    assert AuditHead.take(refused).seq == len(entries)
    recorded = entries[joined]["data"]
    assert recorded == {
        "run": RUN_NAME,
        "server_round": 1,
        "request": "train",
        "seq": 5,
        "head": "a" * 64,
        "key": "b" * 64,
    }


def _last_reply(guard: BankGuard, content: RecordDict) -> RecordDict:
    reply, answered = guard.answer(_request(), content, MemorySessions())
    assert reply.status is ReplyStatus.ANSWERED
    return answered


def test_a_bank_without_audit_log_neither_records_nor_sends_a_head(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    guard = BankGuard(acme_settings(write_bank_csv(300), max_epsilon=None))
    answered = _last_reply(guard, _with(feature_stats_query(schema), COORDINATOR))
    assert keys.AUDIT_HEAD not in answered and keys.BANK in answered


# -- what a malicious coordinator can do with its head: nothing but have it recorded --------


@pytest.mark.parametrize(
    ("head", "recorded"),
    [
        # A claim that is false (no such log): recorded as claimed, trusted for nothing.
        (AuditHead(seq=2**63 - 1, head="f" * 64, key="0" * 64), None),
        # Oversized, injected or mistyped fields: recorded as malformed, cut short.
        (ConfigRecord({"seq": 1, "head": "x" * 1_000_000, "key": "b" * 64}), "malformed"),
        (ConfigRecord({"seq": 1, "head": '"}\n{"event":"run-end"', "key": "b" * 64}), "malformed"),
        (ConfigRecord({"seq": "1", "head": "a" * 64, "key": "b" * 64}), "malformed"),
        (ConfigRecord({"seq": 1, "head": "a" * 64, "key": "b" * 64, "order": "x"}), "malformed"),
        (ArrayRecord(), "malformed"),
    ],
    ids=["false-claim", "oversized", "injection", "mistyped", "extra-field", "wrong-record"],
)
def test_a_coordinators_head_changes_nothing_but_the_entry_that_records_it(
    tmp_path: Path,
    schema: DatasetSchema,
    write_bank_csv: Callable[..., Path],
    head: AuditHead | ConfigRecord | ArrayRecord,
    recorded: str | None,
) -> None:
    """The bank answers exactly as without a head; its log stays valid and small."""
    log = tmp_path / "acme.audit.jsonl"
    guard = BankGuard(acme_settings(write_bank_csv(300), max_epsilon=None, audit_log=log))
    plain = _last_reply(guard, feature_stats_query(schema))
    size = log.stat().st_size
    with_head = _last_reply(guard, _with(feature_stats_query(schema), head))

    assert _without_head(with_head) == _without_head(plain)
    verify_audit(log, allow_open=True)
    entry = _entries(log)[-2]  # before this request's run-join
    assert entry["event"] == "coordinator-head"
    if recorded is None:
        assert isinstance(head, AuditHead)
        assert (entry["data"]["seq"], entry["data"]["head"]) == (head.seq, head.head)
    else:
        assert set(entry["data"]) == {"run", "server_round", "request", "malformed"}
        assert len(entry["data"]["malformed"]) <= 200
        assert log.stat().st_size - size < 2_000  # two entries, whatever was sent
    assert [e["event"] for e in _entries(log)].count("run-end") == 0


def _without_head(content: RecordDict) -> dict[str, Any]:
    """A reply's records other than the bank's own head, as comparable values."""
    records: dict[str, Any] = {}
    for name, record in content.items():
        if name == keys.AUDIT_HEAD:
            continue
        if isinstance(record, ArrayRecord):
            records[name] = {k: record[k].numpy().tolist() for k in record}
        else:
            records[name] = dict(record)
    return records


# -- a bank log that was emptied, deleted or cut is refused, not begun anew -----------------


def _used_log(tmp_path: Path, schema: DatasetSchema, data: Path) -> tuple[Path, BankGuard]:
    log = tmp_path / "node" / "audit.jsonl"
    settings = acme_settings(data, max_epsilon=None, audit_log=log)
    guard = BankGuard(settings)
    for _ in range(2):  # log-open, then coordinator-head and run-join twice
        _last_reply(guard, _with(feature_stats_query(schema), COORDINATOR))
    guard.close()
    return log, guard


def test_an_emptied_bank_log_is_refused_when_the_guard_starts(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path]
) -> None:
    """``truncate -s0 audit.jsonl``: the guard used to begin a new, valid log with its key."""
    log, guard = _used_log(tmp_path, schema, write_bank_csv(300))
    os.truncate(log, 0)
    with pytest.raises(ConfigError) as caught:
        BankGuard.open(guard.settings)
    key = tmp_path / "node" / "audit.key"
    assert str(caught.value).startswith(
        f"audit log: {log} is empty, but key {key} has signed it up to seq 5 (head "
    )
    assert str(caught.value).endswith(
        "restore the log from a backup, or sign a genuinely new log with a new key"
    )
    assert log.read_bytes() == b""


@pytest.mark.parametrize("damage", ["delete", "cut"])
def test_a_deleted_or_cut_bank_log_is_refused_when_the_guard_starts(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path], damage: str
) -> None:
    log, guard = _used_log(tmp_path, schema, write_bank_csv(300))
    if damage == "delete":
        log.unlink()
        expected = f"{log} is missing, but key "
    else:
        log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:3]))
        verify_audit(log, allow_open=True)  # on its own, the cut log looks fine
        expected = f"{log} ends at seq 3 (entries were cut off), but key "
    with pytest.raises(ConfigError, match=r"^audit log: ") as caught:
        BankGuard.open(guard.settings)
    assert expected in str(caught.value)

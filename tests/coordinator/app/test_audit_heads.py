"""Audit-log heads both ways: every message carries the coordinator's head, every reply's
head is recorded as it came (a malformed or missing one never fails the run), and each
log then anchors the other's."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from coordinator.app.audit_trail import CoordinatorAudit, coordinator_log_path
from coordinator.app.exchange import BankExchange, messages_to
from credit import message_keys as keys
from credit.audit import AuditBroken, history_path, verify_audit
from credit.messages import AuditHead
from credit.run_config import RunConfig
from participant.guard.audit_trail import open_audit_log
from participant.guard.settings import AuditSettings
from simulations.engine import SimulationPlan, pinned_banks, plan_simulation
from tests.support.consortium import consortium_grid, run_in_process
from tests.support.fake_grid import FakeGrid

BANK_HEAD = AuditHead(seq=3, head="c" * 64, key="d" * 64)


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- one exchange: heads sent and recorded, whatever the banks reply ------------------------


def _scripted_banks() -> ClientApp:
    """Node 0 replies with a head, 1 with a malformed one, 2 with none; 3 fails."""
    app = ClientApp()

    @app.query()
    def answer(message: Message, context: Context) -> Message:
        partition = context.node_config["partition-id"]
        received = AuditHead.take(message.content)  # the coordinator's, as it arrived
        content = RecordDict({"metrics": MetricRecord({"seen-seq": received.seq})})
        if partition == 0:
            BANK_HEAD.put(content)
        elif partition == 1:
            content[keys.AUDIT_HEAD] = ConfigRecord({"seq": 1, "head": "z" * 100_000, "key": "d"})
        elif partition == 3:
            raise RuntimeError("the bank's guard is down")
        return Message(content, reply_to=message)

    return app


def test_an_exchange_sends_the_coordinators_head_and_records_each_banks_reply(
    tmp_path: Path,
) -> None:
    grid = FakeGrid(_scripted_banks(), num_nodes=4, run_config={})
    audit = CoordinatorAudit(RunConfig(out_dir=str(tmp_path)), flower_run_id=1)
    exchange = BankExchange(grid, min_banks=3, timeout=5)
    exchange.audit = audit
    with grid:
        nodes = sorted(grid.get_node_ids())
        first = exchange(messages_to(nodes, MessageType.QUERY), "feature-stats", 0)
        second = exchange(messages_to(nodes, MessageType.QUERY), "advertise", 1)
    audit.close()

    # A malformed head drops nothing: the three replies without errors are all usable.
    assert len(first) == len(second) == 3
    log = coordinator_log_path(tmp_path)
    verify_audit(log, allow_open=True)
    entries = _entries(log)
    assert [e["event"] for e in entries] == ["log-open", "exchange", "exchange"]
    lines = log.read_bytes().splitlines()
    for push, sent_seq in zip(grid.pushes, (1, 2), strict=True):
        for message in push:  # every message carried the head of the log as it stood
            head = AuditHead.take(message.content)
            assert head.seq == sent_seq and head.key == entries[0]["key"]
            assert head.head == entries[sent_seq]["prev"]  # the hash of line sent_seq
    assert [r.content.metric_records["metrics"]["seen-seq"] for r in second] == [2, 2, 2]
    node = {partition: grid.node_id(partition) for partition in range(4)}
    data = entries[1]["data"]
    assert data["stage"] == "feature-stats" and data["server_round"] == 0
    assert data["sent"] == {"seq": 1, "head": entries[1]["prev"]}
    assert data["heads"] == {str(node[0]): {"seq": 3, "head": "c" * 64, "key": "d" * 64}}
    assert list(data["malformed"]) == [str(node[1])]
    assert data["malformed"][str(node[1])].startswith("record 'audit-head': 'head': ")
    assert len(data["malformed"][str(node[1])]) <= 200
    assert data["missing"] == [node[2]] and data["errors"] == [node[3]]
    assert len(lines[1]) < 2_000  # the bank's 100 kB head is not copied into the log


def test_without_an_audit_trail_an_exchange_sends_no_head(tmp_path: Path) -> None:
    grid = FakeGrid(ClientApp(), num_nodes=2, run_config={})
    exchange = BankExchange(grid, min_banks=0, timeout=1)
    with grid:
        exchange(messages_to(sorted(grid.get_node_ids()), MessageType.QUERY), "connect", 0)
    assert all(keys.AUDIT_HEAD not in m.content for push in grid.pushes for m in push)


# -- a whole run: each side's log holds the other's heads, and so anchors it ----------------


def _with_bank_logs(plan: SimulationPlan, folder: Path) -> SimulationPlan:
    banks = tuple(
        bank.model_copy(update={"audit_log": folder / f"{bank.bank_name}.jsonl", "audit_key": None})
        for bank in plan.banks
    )
    return dataclasses.replace(plan, banks=pinned_banks(banks, plan.config))  # the new keys


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """3 banks x 2 rounds, secure aggregation on, each bank keeping its audit log."""
    root = tmp_path_factory.mktemp("audited")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEDCREDIT_DATA_HOME", str(root / "home"))
        out = root / "out"
        config = RunConfig(rounds=2, out_dir=str(out), seed=3, validation_fraction=0.0)
        plan = plan_simulation(config, n_banks=3)
        plan = _with_bank_logs(plan, root / "banks")
        run_in_process(plan, grid=consortium_grid(plan))
    logs = {bank.bank_name: bank.audit_log for bank in plan.banks if bank.audit_log}
    return coordinator_log_path(out), logs


def _recorded_by_coordinator(log: Path, fingerprint: str) -> list[tuple[int, str]]:
    """The heads of the bank with key ``fingerprint`` the coordinator recorded, in order."""
    heads = []
    for entry in _entries(log):
        if entry["event"] == "exchange":
            heads += [(h["seq"], h["head"]) for h in entry["data"]["heads"].values()
                      if h["key"] == fingerprint]  # fmt: skip
    return heads


def test_the_coordinator_records_every_banks_head_of_every_exchange(
    audited_run: tuple[Path, dict[str, Path]],
) -> None:
    coordinator, banks = audited_run
    exchanges = [e["data"] for e in _entries(coordinator) if e["event"] == "exchange"]
    stages = [(e["stage"], e["server_round"]) for e in exchanges]
    assert stages == [
        ("join", 0),
        ("advertise", 0),
        ("feature-stats", 0),
        ("consistency", 0),
        ("unmask", 0),
        ("train", 1),
        ("consistency", 1),
        ("unmask", 1),
        ("train", 2),
        ("consistency", 2),
        ("unmask", 2),
        ("evaluate", 2),
        ("consistency", 3),
        ("unmask", 3),
    ]
    for data in exchanges:
        assert len(data["heads"]) == 3, data
        assert (data["missing"], data["malformed"], data["errors"]) == ([], {}, []), data
    for bank in banks.values():
        recorded = _recorded_by_coordinator(
            coordinator, verify_audit(bank, allow_open=True).fingerprint
        )
        assert len(recorded) == len(exchanges)
        assert [seq for seq, _ in recorded] == sorted({seq for seq, _ in recorded})  # moving on
        verify_audit(bank, allow_open=True, heads=recorded)  # each a line of the bank's log


def test_each_bank_records_the_coordinators_head_of_every_request(
    audited_run: tuple[Path, dict[str, Path]],
) -> None:
    coordinator, banks = audited_run
    report = verify_audit(coordinator)
    for bank in banks.values():
        recorded = [e["data"] for e in _entries(bank) if e["event"] == "coordinator-head"]
        assert [r["request"] for r in recorded] == [
            "query", "query", "query",  # join, advertise 0, statistics
            "query", "query",  # consistency 0, unmask 0
            "train", "query", "query", "train", "query", "query", "evaluate", "query", "query",
        ]  # fmt: skip
        assert {r["key"] for r in recorded} == {report.fingerprint}
        assert all(r["run"] == "1" for r in recorded)  # Flower's run id: the run has no name
        verify_audit(coordinator, heads=[(r["seq"], r["head"]) for r in recorded])


def test_a_bank_log_begun_anew_behind_its_keys_back_is_exposed_by_the_coordinators_log(
    audited_run: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    """Someone who can delete files in the bank's key folder removes the log and the key's
    record: the guard then begins a valid new log with the same key. Only the peer's
    log can tell, and it does."""
    coordinator, banks = audited_run
    bank_log = tmp_path / "bank-1.jsonl"
    key = tmp_path / "bank-1.key"
    original = banks["bank-1"]
    for source, target in ((original, bank_log), (original.with_suffix(".key"), key)):
        target.write_bytes(source.read_bytes())
    os.chmod(key, 0o600)
    recorded = _recorded_by_coordinator(
        coordinator, verify_audit(original, allow_open=True).fingerprint
    )
    bank_log.unlink()
    history_path(key).unlink(missing_ok=True)
    # The bank's own writer, as its guard opens it: nothing tells it the log existed.
    log = open_audit_log(AuditSettings(log_path=bank_log, key_path=key, writer="bank bank-1"))
    assert log is not None
    for index in range(len(recorded)):
        log.append("run-join", {"run": "1", "note": index})
    log.close()
    verify_audit(bank_log, allow_open=True)  # valid on its own
    with pytest.raises(AuditBroken, match="the log was rewritten or begun anew"):
        verify_audit(bank_log, allow_open=True, heads=recorded)

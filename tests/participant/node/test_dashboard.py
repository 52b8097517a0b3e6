"""The bank's dashboard state, read from a real node folder: plan, ledger and audit log.

The node plan is the one ``participant start`` writes; the ledger is charged and the
audit log signed as the guard does it, and the state is read between writes. The JSON
endpoint is read through a real uvicorn with a real HTTP client.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.app import app
from credit.audit import AuditLog
from deploy.bundle import Bundle
from deploy.web import dashboard_server
from participant.node.dashboard import NodeFiles, ParticipantSource, participant_page
from participant.node.node_keys import BankKeyFiles
from participant.node.supernode import NodeSettings, node_plan
from privacy.accounting import DpEvent
from privacy.budget import PrivacyBudget
from privacy.ledger import PrivacyLedger, read_spent
from tests.participant.guard.bank_messages import hold_out

MAX_EPSILON = 2.5
DELTA = 1e-5


@pytest.fixture
def node(bundle: Bundle, keys: BankKeyFiles, tmp_path: Path) -> NodeSettings:
    """bank-a's node folder with the plan `participant start` writes (nothing spent yet)."""
    settings = NodeSettings(
        bundle=bundle,
        key=keys.node_key,
        data=tmp_path / "bank-a.csv",
        home=tmp_path / "node",
        budget=PrivacyBudget(max_epsilon=MAX_EPSILON, delta=DELTA),
        audit_key=keys.audit_key,
        holdout=hold_out("5a" * 32),
    )
    settings.home.mkdir()
    node_plan(settings).save()
    return settings


def _charge(ledger: PrivacyLedger, server_round: int) -> float:
    event = DpEvent(round=server_round, noise_multiplier=1.1, sample_rate=0.01, steps=50,
                    max_grad_norm=1.0, run="q3")  # fmt: skip
    return ledger.charge(event)


def test_the_banks_spend_ledger_and_refusals_as_they_happen(
    node: NodeSettings, keys: BankKeyFiles
) -> None:
    source = ParticipantSource(NodeFiles.of_home(node.home))
    empty = source.state()
    assert (empty["bank"], empty["budget"]["max_epsilon"], empty["ledger"]["spent"]) == (
        "bank-a",
        MAX_EPSILON,
        None,
    )
    assert empty["audit"]["present"] is False and empty["services"] == {
        "guard": None,
        "supernode": None,
    }
    ledger = PrivacyLedger(node.ledger, bank="bank-a", budget=node.budget)  # type: ignore[arg-type]
    log = AuditLog.open(node.audit_log, keys.audit_key, "bank bank-a")
    log.append("run-join", {"run": "q3", "task": "feature-stats", "planned_rounds": 3})
    spent = [_charge(ledger, server_round) for server_round in (1, 2)]
    log.append("train", {"run": "q3", "server_round": 1, "epsilon": spent[0]})
    log.append("train", {"run": "q3", "server_round": 2, "epsilon": spent[1]})
    log.append("refusal", {"run": "q3", "server_round": 3, "kind": "privacy-budget",
                           "reason": "ε 2.6 would pass the budget 2.5"})  # fmt: skip
    state = source.state()
    events = state["ledger"]["events"]
    assert [(e["index"], e["round"], e["run"]) for e in events] == [(1, 1, "q3"), (2, 2, "q3")]
    assert [e["epsilon_after"] for e in events] == pytest.approx(spent)
    assert state["ledger"]["spent"]["epsilon"] == pytest.approx(read_spent(node.ledger))
    assert state["refusals"] == [
        {"time": state["refusals"][0]["time"], "run": "q3", "round": 3,
         "kind": "privacy-budget", "reason": "ε 2.6 would pass the budget 2.5"}
    ]  # fmt: skip
    assert state["runs"] == [
        {"run": "q3", "joined": state["runs"][0]["joined"], "trained": 2, "evaluated": 0,
         "refused": 1, "last_round": 3, "ended": False}
    ]  # fmt: skip
    audit = state["audit"]
    assert audit["verified"] and audit["entries"] == 5 and audit["head"] == log.head
    assert audit["key"] == str(keys.audit_public)  # the bank's published key, not the log's own
    assert [a["event"] for a in state["activity"]] == [
        "refusal", "train", "train", "run-join", "log-open",
    ]  # fmt: skip


def test_an_edited_audit_log_or_ledger_is_flagged(node: NodeSettings, keys: BankKeyFiles) -> None:
    log = AuditLog.open(node.audit_log, keys.audit_key, "bank bank-a")
    log.append("run-join", {"run": "q3"})
    log.close()
    node.audit_log.write_text(node.audit_log.read_text().replace('"q3"', '"q4"'))
    node.ledger.write_text('{"type": "budget", "bank": "bank-a"}\n')
    state = ParticipantSource(NodeFiles.of_home(node.home)).state()
    assert not state["audit"]["verified"] and "line 2" in state["audit"]["problem"]
    assert "not a budget line" in state["ledger"]["problem"]


def test_the_json_endpoint_through_uvicorn(node: NodeSettings) -> None:
    files = NodeFiles.of_home(node.home)
    server = dashboard_server(
        participant_page(files.bank), ParticipantSource(files), host="127.0.0.1", port=0
    )
    server.start()
    try:
        ledger = PrivacyLedger(node.ledger, bank="bank-a", budget=node.budget)  # type: ignore[arg-type]
        with httpx.Client(base_url=server.url) as client:
            page = client.get("")
            before = client.get("api/state").json()
            _charge(ledger, 1)
            after = client.get("api/state").json()
    finally:
        server.stop()
    assert page.status_code == 200 and "<title>bank-a: node dashboard</title>" in page.text
    assert before["ledger"]["events"] == [] and len(after["ledger"]["events"]) == 1


def test_a_folder_without_a_node_plan_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["participant", "dashboard", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ")
    assert "run `fedcredit participant start`" in result.output
    assert len(result.output.strip().splitlines()) == 1

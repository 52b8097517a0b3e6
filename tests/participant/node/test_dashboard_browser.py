"""The bank's dashboard in headless Chromium while its ledger and audit log grow.

Releases are charged to the real ledger and entries signed into the real audit log
of a node folder between the page's polls; the page must follow (ledger table,
ε chart, refusals), request nothing but its own server, and log no error. The README's
screenshot is of a simulated bank's real files
(``tests/simulations/test_simulate_dashboard_browser.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from credit.audit import AuditLog
from deploy.bundle import Bundle
from deploy.web import dashboard_server
from participant.node.dashboard import NodeFiles, ParticipantSource, participant_page
from participant.node.node_keys import BankKeyFiles
from participant.node.supernode import NodeSettings, node_plan
from privacy.accounting import DpEvent
from privacy.budget import PrivacyBudget
from privacy.ledger import PrivacyLedger
from tests.participant.guard.bank_messages import hold_out
from tests.support.live_browser import live_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

WAIT_MS = 15_000
BUDGET = PrivacyBudget(max_epsilon=3.0, delta=1e-5)


def _rows(tab: Page, count: int) -> None:
    """Wait until the table shows ``count`` rows (the page's CSP forbids evaluated strings)."""
    from playwright.sync_api import expect

    expect(tab.locator("#ledger tbody tr")).to_have_count(count, timeout=WAIT_MS)


def test_the_ledger_follows_the_banks_releases_with_no_error_and_no_request_elsewhere(
    bundle: Bundle, keys: BankKeyFiles, tmp_path: Path
) -> None:
    settings = NodeSettings(bundle=bundle, key=keys.node_key, data=tmp_path / "bank-a.csv",
                            home=tmp_path / "node", budget=BUDGET, audit_key=keys.audit_key,
                            holdout=hold_out("5a" * 32))  # fmt: skip
    settings.home.mkdir()
    node_plan(settings).save()
    ledger = PrivacyLedger(settings.ledger, bank="bank-a", budget=BUDGET)
    log = AuditLog.open(settings.audit_log, keys.audit_key, "bank bank-a")
    log.append("run-join", {"run": "q3", "task": "feature-stats", "planned_rounds": 6})

    def train(server_round: int) -> None:
        event = DpEvent(round=server_round, noise_multiplier=1.4, sample_rate=0.01, steps=60,
                        max_grad_norm=1.0, run="q3")  # fmt: skip
        log.append("train", {"run": "q3", "server_round": server_round,
                             "epsilon": ledger.charge(event)})  # fmt: skip

    train(1)
    files = NodeFiles.of_home(settings.home)
    server = dashboard_server(
        participant_page(files.bank), ParticipantSource(files), host="127.0.0.1", port=0
    )
    server.start()
    try:
        with live_page(server.url) as (tab, record):
            _rows(tab, 1)
            for server_round in (2, 3, 4, 5):
                train(server_round)
            log.append("refusal", {"run": "q3", "server_round": 6, "kind": "privacy-budget",
                                   "reason": "ε 3.1 would pass the budget 3"})  # fmt: skip
            _rows(tab, 5)
            tab.wait_for_selector("#refusals tbody tr", timeout=WAIT_MS)
            assert tab.locator("#chart svg circle").count() == 5
            assert "privacy-budget" in tab.locator("#refusals").inner_text()
            assert "verified" in tab.locator("#tiles").inner_text()
    finally:
        server.stop()
    assert record.errors == [] and record.failed == []
    assert {url.split("?")[0] for url in record.requests} == {server.url, server.url + "api/state"}

"""``fedcredit simulate --dashboard`` in headless Chromium: a real run watched as it goes.

The operator's page is opened as soon as the command prints its address, while a
real run (Flower's Simulation Engine, 3 banks, each with a privacy budget) trains:
the round table must grow round by round while the run is in progress, end with every
round of ``metrics.json`` and a verified audit log, and the page must request nothing
but its own server and log no error. Then a simulated bank's page is served from the
same finished run (its real ledger and signed audit log, the files a bank's node
keeps). With ``FEDCREDIT_DASHBOARD_SCREENSHOTS=docs`` both finished pages are saved as
``docs/dashboard-coordinator.png`` and ``docs/dashboard-participant.png``
(``make dashboard-screenshots``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from deploy.web import dashboard_server
from participant.node.dashboard import NodeFiles, ParticipantSource, participant_page
from privacy.ledger import read_ledger
from tests.support.live_browser import PageRecord, live_page, save_screenshot
from tests.support.live_simulation import FINISHED, simulate_with_dashboard

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROUNDS = 8
"""Rounds take about a second here and the page polls every 1.5 s: eight rounds give the
page several polls between the first round and the last, even when a loaded machine
(CI's two cores) stretches a poll to several rounds."""
EPSILON = 3.0
TIMEOUT_S = 600
IN_PROGRESS = ("\N{EN DASH}", "not started", "running")
"""The status tile before the run's first entry, before its first round, and during it."""
WAIT_MS = 15_000
WHOLE_PAGE = 3000
"""Screenshot height (px) past the bottom of either finished page: the whole page."""


def _watch_rounds(tab: Page) -> list[tuple[str, int]]:
    """(run status, round-table rows) each time the page showed a new pair, until the end."""
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        status = tab.locator("#tiles .tile").nth(1).locator(".value").inner_text()
        shown = (status, tab.locator("#rounds tbody tr").count())
        if not seen or seen[-1] != shown:
            seen.append(shown)
        if status not in IN_PROGRESS:
            return seen
        time.sleep(0.1)
    pytest.fail(f"the page still showed the run in progress after {TIMEOUT_S} s: {seen}")


def _assert_own_requests_only(record: PageRecord, url: str) -> None:
    assert record.errors == [] and record.failed == []
    assert {request.split("?")[0] for request in record.requests} == {url, url + "api/state"}


def _bank_page(out: Path, bank: str) -> None:
    """A simulated bank's page, from its ledger and audit log in the finished run."""
    ledger = out / "ledgers" / f"{bank}.jsonl"
    contents = read_ledger(ledger)
    files = NodeFiles(home=out, bank=bank, budget=contents.budget, ledger=ledger,
                      audit_log=out / "audit" / f"{bank}.jsonl",
                      audit_public_key=out / "audit" / f"{bank}.pub")  # fmt: skip
    server = dashboard_server(
        participant_page(bank), ParticipantSource(files), host="127.0.0.1", port=0
    )
    server.start()
    try:
        with live_page(server.url) as (tab, record):
            from playwright.sync_api import expect

            rows = tab.locator("#ledger tbody tr")
            expect(rows).to_have_count(len(contents.events), timeout=WAIT_MS)
            assert "verified" in tab.locator("#tiles").inner_text()
            assert f"ε {EPSILON:.3f}" in tab.locator("#tiles").inner_text()
            save_screenshot(tab, "dashboard-participant.png", height=WHOLE_PAGE)
    finally:
        server.stop()
    _assert_own_requests_only(record, server.url)


def test_the_round_table_grows_while_a_real_simulation_runs(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    argv = ["--banks", "3", "--rounds", str(ROUNDS), "--epsilon", str(EPSILON),
            "--evaluate-every", "1", "--out", str(out)]  # fmt: skip
    with simulate_with_dashboard(*argv) as simulation:
        url = simulation.dashboard_url()
        with live_page(url) as (tab, record):
            seen = _watch_rounds(tab)
            simulation.wait_for(FINISHED, timeout=60)
            final = tab.locator("#rounds tbody tr")
            table = [final.nth(i).locator("td").all_inner_texts()[:3] for i in range(ROUNDS)]
            tiles = tab.locator("#tiles").inner_text()
            audit = tab.locator("#audit").inner_text()
            save_screenshot(tab, "dashboard-coordinator.png", height=WHOLE_PAGE)
    _assert_own_requests_only(record, url)
    while_running = [rows for status, rows in seen if status == "running"]
    grew = len(set(while_running)) >= 2 and any(0 < rows < ROUNDS for rows in while_running)
    assert grew, f"the table did not grow while the run went on: {seen}"
    assert [rows for _, rows in seen] == sorted(rows for _, rows in seen)
    assert seen[-1] == ("completed", ROUNDS)
    metrics = json.loads((out / "metrics.json").read_text())
    expected = [[str(r["round"]), f"{r['auc']:.4f}", f"{r['ks']:.4f}"] for r in metrics["rounds"]]
    assert table == expected
    assert "verified" in tiles and "verified: every signature" in audit and "(closed)" in audit
    _bank_page(out, "bank-1")

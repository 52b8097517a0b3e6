"""The operator's dashboard in headless Chromium while a (fabricated) run goes on.

Rounds are appended to the run's signed log and checkpoint between the page's polls,
as the coordinator writes them; the page must follow (round table, chart, banks'
spend, refusals, dropouts, the secure-aggregation stage), request nothing but its own
server, and log no error. A real run is watched by
``tests/simulations/test_simulate_dashboard_browser.py`` (which also takes the README's
screenshot); this one controls what arrives between polls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from coordinator.ops.dashboard import SimulationSource, coordinator_page
from deploy.web import DashboardServer, dashboard_server
from tests.support.dashboard import MAX_EPSILON, FabricatedRun
from tests.support.live_browser import live_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

BANKS = ("bank-a", "bank-b", "bank-c")
WAIT_MS = 15_000


@pytest.fixture
def run(tmp_path: Path) -> FabricatedRun:
    out = tmp_path / "demo"
    banks = [{"name": b, "rows": 6000, "budget": {"max_epsilon": MAX_EPSILON}} for b in BANKS]
    fabricated = FabricatedRun(out, planned_rounds=6)
    (out / "simulation.json").write_text(json.dumps({"banks": banks}))
    fabricated.start(run="demo")
    fabricated.complete_round(1)
    return fabricated


@pytest.fixture
def server(run: FabricatedRun) -> Iterator[DashboardServer]:
    page = coordinator_page("Simulation demo")
    running = dashboard_server(page, SimulationSource(run.folder), host="127.0.0.1", port=0)
    running.start()
    yield running
    running.stop()


def _rows(tab: Page, count: int) -> None:
    """Wait until the table shows ``count`` rows (the page's CSP forbids evaluated strings)."""
    from playwright.sync_api import expect

    expect(tab.locator("#rounds tbody tr")).to_have_count(count, timeout=WAIT_MS)


def test_the_round_table_follows_the_run_with_no_error_and_no_request_elsewhere(
    run: FabricatedRun, server: DashboardServer
) -> None:
    with live_page(server.url) as (tab, record):
        _rows(tab, 1)
        assert tab.locator("#tiles").inner_text().count("verified") == 1
        run.complete_round(2, dropped=("bank-c",))
        run.complete_round(3, refused=("bank-b",))
        _rows(tab, 3)
        run.complete_round(4)
        _rows(tab, 4)
        cells = tab.locator("#rounds tbody tr").nth(3).locator("td").all_inner_texts()
        assert cells[:3] == ["4", "0.7800", "0.3600"]
        assert tab.locator("#chart svg circle").count() == 8  # AUC and KS of 4 rounds
        assert "bank-b" in tab.locator("#refusals").inner_text()
        assert tab.locator("#secagg li.now").inner_text() == "unmask"
        assert tab.locator("#banks progress").count() == len(BANKS)
        run.end()
        tab.wait_for_selector("#runs a[href='files/report.html']", timeout=WAIT_MS)
        assert "completed" in tab.locator("#tiles").inner_text()
    assert record.errors == [] and record.failed == []
    assert {url.split("?")[0] for url in record.requests} == {server.url, server.url + "api/state"}

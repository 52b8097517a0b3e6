"""``fedcredit simulate --dashboard``: a real run through Flower's Simulation Engine, watched.

The command serves the dashboard of its output folder while the run goes on and after
it, until Ctrl-C. The finished run's state must be what its files say: every round
with the AUC and KS of ``metrics.json``, the audit log verified and closed, the
report served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live_simulation import FINISHED, simulate_with_dashboard

pytestmark = pytest.mark.slow

TIMEOUT = 600


def test_simulate_serves_its_dashboard_during_and_after_the_run(tmp_path: Path) -> None:
    out = tmp_path / "watched"
    with simulate_with_dashboard("--banks", "3", "--rounds", "2", "--out", str(out)) as simulation:
        client = httpx.Client(base_url=simulation.dashboard_url(), timeout=30)
        page = client.get("")
        statuses = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            state = client.get("api/state").json()
            statuses.append(state["run"]["status"])
            if state["run"]["status"] != "running" and state["run"]["status"] != "not started":
                break
            time.sleep(0.5)
        simulation.wait_for(FINISHED, timeout=60)
        final = client.get("api/state").json()
        report = client.get("files/report.html")
    assert page.status_code == 200 and "running" in statuses
    metrics = json.loads((out / "metrics.json").read_text())
    run = final["run"]
    assert run["status"] == "completed" and run["audit"]["verified"] and run["audit"]["closed"]
    assert [(r["round"], r["auc"], r["ks"]) for r in run["rounds"]] == [
        (r["round"], r["auc"], r["ks"]) for r in metrics["rounds"]
    ]
    assert run["final"]["auc"] == metrics["final"]["auc"]
    assert [b["status"] for b in final["banks"]] == ["simulated"] * 3
    assert report.status_code == 200 and report.text == (out / "report.html").read_text()
    assert simulation.process.returncode == 0 and "dashboard stopped" in simulation.output()

"""``fedcredit simulate --dashboard``: a real run through Flower's Simulation Engine, watched.

The command serves the dashboard of its output folder while the run goes on and after
it, until Ctrl-C. The finished run's state must be what its files say: every round
with the AUC and KS of ``metrics.json``, the audit log verified and closed, the
report served.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

TIMEOUT = 600


def _line(process: subprocess.Popen[str], pattern: str) -> re.Match[str]:
    """Read the command's output until a line matches ``pattern``."""
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(pattern, line)
        if found is not None:
            return found
    pytest.fail(f"the command ended without printing {pattern!r}")


def test_simulate_serves_its_dashboard_during_and_after_the_run(tmp_path: Path) -> None:
    out = tmp_path / "watched"
    argv = ["simulate", "--banks", "3", "--rounds", "2", "--out", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-c", "from cli.app import main; main()", *argv,
         "--dashboard", "--dashboard-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
    )  # fmt: skip
    try:
        url = _line(process, r"dashboard: (http://127\.0\.0\.1:\d+/) ").group(1)
        client = httpx.Client(base_url=url, timeout=30)
        page = client.get("")
        statuses = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            state = client.get("api/state").json()
            statuses.append(state["run"]["status"])
            if state["run"]["status"] != "running" and state["run"]["status"] != "not started":
                break
            time.sleep(0.5)
        _line(process, r"still serving the finished run")
        final = client.get("api/state").json()
        report = client.get("files/report.html")
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
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
    assert process.returncode == 0 and "dashboard stopped" in rest

"""Assertions on the coordinator's signed audit log (``OUT/audit/coordinator.jsonl``).

Shared by the in-process and the Simulation Engine tests of the same behaviour. pytest
rewrites assertions only in test modules, so each assertion here carries its values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from credit.audit import verify_audit

__all__ = ["assert_audit_log_of_resumed_run"]


def assert_audit_log_of_resumed_run(out: Path) -> None:
    """Check the audit log of a 3-round run stopped after round 2 and then resumed.

    One signed, closed log across both runs (in-process runs or Simulation Engine
    processes alike): each run's events in order, every round logged once, and the
    resume entry between the two, naming round 2's model, which the resumed set-up
    starts from.

    Parameters
    ----------
    out : pathlib.Path
        The run's output folder (``RunConfig.out_dir``).
    """
    log = out / "audit" / "coordinator.jsonl"
    report = verify_audit(log)
    assert report.closed, f"{log} is not closed"
    entries: list[dict[str, Any]] = [
        entry
        for entry in (json.loads(line) for line in log.read_text().splitlines())
        if entry["event"] != "exchange"  # one per exchange: the banks' log heads
    ]
    events = [e["event"] for e in entries]
    assert events == [
        "log-open",
        "run-start",
        "setup",
        "round",
        "round",
        "run-end",
        "run-resume",
        "setup",
        "round",
        "run-end",
    ], events
    rounds = [e["data"] for e in entries if e["event"] == "round"]
    assert [r["server_round"] for r in rounds] == [1, 2, 3], rounds
    resume, setup = entries[6]["data"], entries[7]["data"]
    assert resume["after_round"] == 2, resume
    assert resume["model_sha256"] == rounds[1]["model_sha256"] == setup["model_sha256"], (
        resume,
        rounds[1],
        setup,
    )
    assert entries[-1]["data"]["rounds_completed"] == 3, entries[-1]

"""Where an exchange's time goes over Flower, from a run's signed audit logs.

A ``fedcredit simulate`` run writes ``OUT/audit/coordinator.jsonl`` (one ``exchange``
entry per exchange, written when its replies are in, carrying the head it sent) and
``OUT/audit/bank-N.jsonl`` (one ``coordinator-head`` entry per request, written when
the bank's guard takes the request up). With their timestamps (milliseconds), each
exchange splits into: the previous exchange's end to the first bank taking the request
up (the coordinator's work between the two and the push through Flower's Simulation
Engine, which hands each node's queued messages to the backend every 0.1 s), the first
to the last bank taking it up (the banks' ClientApps one after another on the
machine's cores), and the last bank to the exchange's end (that bank's work, its
reply's way back and the coordinator's pull, polled every 0.05 s at first).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

PHASES = ("total", "to_first_bank", "bank_spread", "last_bank_to_end")


def _time(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["time"]).timestamp()


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def exchange_phases(audit: Path) -> dict[str, dict[str, float]]:
    """Per stage: the number of exchanges and each phase's median seconds (module docstring).

    Exchanges some bank has no entry for are left out.
    """
    exchanges = [e for e in _entries(audit / "coordinator.jsonl") if e["event"] == "exchange"]
    taken_up: dict[int, list[float]] = defaultdict(list)
    bank_logs = sorted(audit.glob("bank-*.jsonl"))
    for path in bank_logs:
        for entry in _entries(path):
            if entry["event"] == "coordinator-head":
                taken_up[entry["data"]["seq"]].append(_time(entry))
    phases: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for before, exchange in pairwise(exchanges):
        times = sorted(taken_up.get(exchange["data"]["sent"]["seq"], []))
        if len(times) != len(bank_logs):
            continue
        start, end = _time(before), _time(exchange)
        stage = phases[exchange["data"]["stage"]]
        for name, value in zip(
            PHASES,
            (end - start, times[0] - start, times[-1] - times[0], end - times[-1]),
            strict=True,
        ):
            stage[name].append(value)
    return {
        stage: {"exchanges": len(values["total"])}
        | {name: statistics.median(values[name]) for name in PHASES}
        for stage, values in phases.items()
    }

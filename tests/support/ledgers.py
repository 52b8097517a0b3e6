"""Ledger files as banks wrote them before a format change, for loading and verify tests."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["write_ledger_before_row_sets"]


def write_ledger_before_row_sets(path: Path) -> Path:
    """A bank's ledger from before events named their run and row set (one plan, one event).

    Its plan has no n_train, batch size or epochs, so q and steps cannot be checked.
    """
    lines = [
        {"type": "budget", "bank": "bank-1", "max_epsilon": 1.0, "delta": 1e-5},
        {"type": "plan", "run": "7", "noise_multiplier": 1.3, "sample_rate": 0.01,
         "steps_per_round": 100, "planned_rounds": 10, "max_grad_norm": 1.0},
        {"type": "event", "round": 1, "noise_multiplier": 1.3, "sample_rate": 0.01,
         "steps": 100, "max_grad_norm": 1.0, "kind": "dp-sgd"},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path

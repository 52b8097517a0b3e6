"""What the consortium operator runs: the Flower ServerApp, strategy and run driver."""

from __future__ import annotations

from coordinator.errors import CoordinatorError, RoundFailed
from coordinator.federation import BankInfo, Federation, RoundResult, RunOutcome
from coordinator.strategy import CreditFedAvg

__all__ = [
    "BankInfo",
    "CoordinatorError",
    "CreditFedAvg",
    "Federation",
    "RoundFailed",
    "RoundResult",
    "RunOutcome",
]

"""What the consortium operator runs: the Flower ServerApp, strategy and run driver."""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
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

# Exports resolve on first use (see credit.lazy): operator commands stay quick.
_EXPORTS = {
    "BankInfo": "coordinator.federation",
    "CoordinatorError": "coordinator.errors",
    "CreditFedAvg": "coordinator.strategy",
    "Federation": "coordinator.federation",
    "RoundFailed": "coordinator.errors",
    "RoundResult": "coordinator.federation",
    "RunOutcome": "coordinator.federation",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

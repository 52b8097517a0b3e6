"""What the consortium operator runs: the Flower ServerApp, strategy and run driver."""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from coordinator.app.run_driver import BankInfo, Federation, RoundResult, RunOutcome
    from coordinator.app.strategy import CreditFedAvg
    from coordinator.errors import CoordinatorError, RoundFailed

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
    "BankInfo": "coordinator.app.run_driver",
    "CoordinatorError": "coordinator.errors",
    "CreditFedAvg": "coordinator.app.strategy",
    "Federation": "coordinator.app.run_driver",
    "RoundFailed": "coordinator.errors",
    "RoundResult": "coordinator.app.run_driver",
    "RunOutcome": "coordinator.app.run_driver",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

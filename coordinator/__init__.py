"""What the consortium operator runs.

``coordinator.app`` is the Flower ServerApp runtime (run driver, aggregation, run
state, checkpoint, run files, audit trail); ``coordinator.ops`` sets up and operates the
consortium (config, PKI, edge, services, members, runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from coordinator.app.run_driver import RunDriver
    from coordinator.app.run_state import BankInfo, RoundResult, RunState
    from coordinator.app.strategy import CreditFedAvg
    from coordinator.errors import CoordinatorError, RoundFailed

__all__ = [
    "BankInfo",
    "CoordinatorError",
    "CreditFedAvg",
    "RoundFailed",
    "RoundResult",
    "RunDriver",
    "RunState",
]

# Exports resolve on first use (see credit.lazy): operator commands stay quick.
_EXPORTS = {
    "BankInfo": "coordinator.app.run_state",
    "CoordinatorError": "coordinator.errors",
    "CreditFedAvg": "coordinator.app.strategy",
    "RunDriver": "coordinator.app.run_driver",
    "RoundFailed": "coordinator.errors",
    "RoundResult": "coordinator.app.run_state",
    "RunState": "coordinator.app.run_state",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

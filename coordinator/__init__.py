"""What the consortium operator runs.

``coordinator.app`` is the Flower ServerApp runtime (run driver, aggregation, run
state, checkpoint, run files, audit trail); ``coordinator.ops`` sets up and operates the
consortium (config, PKI, edge, services, members, runs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from credit.lazy import lazy_getattr

if TYPE_CHECKING:
    from coordinator.app.aggregation import Aggregation, PlainAggregation
    from coordinator.app.run_driver import RunDriver
    from coordinator.app.run_state import BankInfo, RoundResult, RunState
    from coordinator.app.secagg_server import SecureAggregation
    from coordinator.errors import CoordinatorError, RoundAborted, RoundFailed, RunStopped

__all__ = [
    "Aggregation",
    "BankInfo",
    "CoordinatorError",
    "PlainAggregation",
    "RoundAborted",
    "RoundFailed",
    "RoundResult",
    "RunDriver",
    "RunState",
    "RunStopped",
    "SecureAggregation",
]

# Exports resolve on first use (see credit.lazy): operator commands stay quick.
_EXPORTS = {
    "Aggregation": "coordinator.app.aggregation",
    "BankInfo": "coordinator.app.run_state",
    "CoordinatorError": "coordinator.errors",
    "PlainAggregation": "coordinator.app.aggregation",
    "RoundAborted": "coordinator.errors",
    "RoundFailed": "coordinator.errors",
    "RoundResult": "coordinator.app.run_state",
    "RunDriver": "coordinator.app.run_driver",
    "RunState": "coordinator.app.run_state",
    "RunStopped": "coordinator.errors",
    "SecureAggregation": "coordinator.app.secagg_server",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())

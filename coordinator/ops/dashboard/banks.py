"""The banks of the operator's dashboard: who is registered (or simulated), online, and
what each has spent, refused and dropped in the current run.

A deployed consortium's banks are its participant records (``coordinator
add-participant``); whether each is online is the SuperLink's answer to ``flwr
supernode ls`` (as ``coordinator status`` shows it), asked at most every
:data:`ONLINE_SECONDS` seconds: the page polls far more often than the SuperLink
needs asking. A simulation's banks are those its ``simulation.json`` records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coordinator.ops.consortium import Consortium
from coordinator.ops.members import ParticipantStatus, list_participants
from credit.errors import OperationFailed

__all__ = [
    "ONLINE_SECONDS",
    "BankRow",
    "OnlineStatus",
    "bank_rows",
    "registered_banks",
    "simulated_banks",
]

ONLINE_SECONDS = 10.0
"""How long the SuperLink's list of online nodes is reused, in seconds."""


@dataclass(frozen=True)
class BankRow:
    """A bank before the run's figures are added: its name, state and budget."""

    name: str
    status: str
    node_id: int | None = None
    max_epsilon: float | None = None


@dataclass
class OnlineStatus:
    """Node id -> Flower's node status of a consortium, asked at most every ``seconds``.

    Parameters
    ----------
    consortium : Consortium
        The consortium whose SuperLink is asked.
    seconds : float, default ONLINE_SECONDS
        How long an answer is reused.
    clock : callable, default time.monotonic
        The time in seconds (tests pass their own).
    """

    consortium: Consortium
    seconds: float = ONLINE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _asked: float | None = field(default=None, init=False)
    _answer: dict[int, str] | str = field(default="unknown", init=False)

    def nodes(self) -> dict[int, str] | str:
        """Node id -> status, or why nobody can say (the SuperLink is down, flwr failed)."""
        now = self.clock()
        if self._asked is None or now - self._asked >= self.seconds:
            self._answer = self._ask()
            self._asked = now
        return self._answer

    def _ask(self) -> dict[int, str] | str:
        from coordinator.ops.services import node_states, superlink_service

        if superlink_service(self.consortium).pid() is None:
            return "unknown (SuperLink down)"
        try:
            return {node.node_id: node.status for node in node_states(self.consortium)}
        except OperationFailed:
            return "unknown (flwr supernode ls failed)"


def registered_banks(consortium: Consortium, online: OnlineStatus) -> list[BankRow]:
    """Every bank ever added to the consortium: removed, online, offline or unknown."""
    records = list_participants(consortium)
    nodes = online.nodes() if records else {}
    rows = []
    for record in records:
        if record.status is ParticipantStatus.REMOVED:
            status = "removed"
        elif isinstance(nodes, str):
            status = nodes
        else:
            status = "online" if nodes.get(record.node_id) == "online" else "offline"
        rows.append(BankRow(name=record.name, status=status, node_id=record.node_id))
    return rows


def simulated_banks(simulation: Mapping[str, Any] | None) -> list[BankRow]:
    """The banks a simulation's ``simulation.json`` records, with their budgets."""
    rows = []
    for bank in (simulation or {}).get("banks", []):
        budget = bank.get("budget") or {}
        rows.append(
            BankRow(
                name=str(bank["name"]), status="simulated", max_epsilon=budget.get("max_epsilon")
            )
        )
    return rows


def bank_rows(
    banks: list[BankRow],
    run: Mapping[str, Any] | None,
    budgets: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Each bank with its spend against its budget and its part in the current run.

    Banks the run names but the list does not (a bank removed since, or a run
    from before the records) are added with status ``in run only``.

    Parameters
    ----------
    banks : list of BankRow
        The registered (or simulated) banks.
    run : mapping, optional
        :func:`~coordinator.ops.dashboard.run_view.run_document` of the current run.
    budgets : mapping
        Bank -> {epsilon, max_epsilon} from the run's ledger summaries.
    """
    rounds = (run or {}).get("rounds", [])
    refusals = (run or {}).get("refusals", [])
    listed = {bank.name for bank in banks}
    in_run = sorted(set((run or {}).get("banks", [])) - listed)
    rows = []
    for bank in [*banks, *(BankRow(name=name, status="in run only") for name in in_run)]:
        budget = budgets.get(bank.name, {})
        rows.append(
            {
                "name": bank.name,
                "status": bank.status,
                "node_id": bank.node_id,
                "epsilon": _latest_epsilon(rounds, bank.name, budget.get("epsilon")),
                "max_epsilon": budget.get("max_epsilon", bank.max_epsilon),
                "rounds": sum(bank.name in r["banks"] for r in rounds),
                "refusals": sum(refusal["bank"] == bank.name for refusal in refusals),
                "dropouts": sum(bank.name in r["dropped"] for r in rounds),
            }
        )
    return rows


def _latest_epsilon(rounds: list[dict[str, Any]], bank: str, fallback: Any) -> Any:
    """The bank's epsilon in the last round entry that records it (else ``fallback``)."""
    for row in reversed(rounds):
        if bank in row["epsilon"]:
            return row["epsilon"][bank]
    return fallback

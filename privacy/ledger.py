"""A bank's privacy ledger: every release about its training records, persisted.

The ledger lives at the bank (a JSON-lines file next to its data) and is the single
source of truth for what the bank has spent: epsilon is always recomputed from it,
never stored as a running total. A restarted participant reopens the same file and
keeps its spend. Checks happen before commits: :meth:`PrivacyLedger.charge` refuses a
release that would pass ``max_epsilon`` and then leaves the file untouched.

File format, one JSON object per line::

    {"type": "budget", "bank": "bank-1", "max_epsilon": 1.0, "delta": 4.2e-05}
    {"type": "plan", "run": "...", "noise_multiplier": 1.73, ...}
    {"type": "event", "round": 1, "noise_multiplier": 1.73, "sample_rate": 0.0133, ...}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from privacy.accounting import ACCOUNTANT, DpEvent, epsilon_spent
from privacy.budget import PrivacyBudget
from privacy.errors import LedgerError, PrivacyBudgetExceeded

__all__ = ["PrivacyLedger", "RunPlan", "read_spent"]


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """The noise calibration a bank fixed for one run (reused after a restart)."""

    run: str
    noise_multiplier: float
    sample_rate: float
    steps_per_round: int
    planned_rounds: int
    max_grad_norm: float


class PrivacyLedger:
    """Append-only, persisted record of a bank's DP releases.

    Parameters
    ----------
    path : pathlib.Path
        The ledger file; created with the budget line when missing.
    bank : str
        The bank's name; an existing file must belong to it.
    budget : PrivacyBudget
        The bank's budget with its delta resolved (:meth:`PrivacyBudget.for_rows`);
        an existing file must record the same one (a bank cannot raise its maximum
        by restarting with another flag).
    """

    def __init__(self, path: Path, *, bank: str, budget: PrivacyBudget) -> None:
        if budget.delta is None:
            raise ValueError(
                "the ledger needs the budget's delta resolved (PrivacyBudget.for_rows)"
            )
        self.delta: float = budget.delta
        self.path = path
        self.bank = bank
        self.budget = budget
        self._events: list[DpEvent] = []
        self._plans: dict[str, RunPlan] = {}
        if path.exists():
            self._load()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"type": "budget", "bank": bank, **budget.model_dump()})

    @property
    def events(self) -> tuple[DpEvent, ...]:
        """Every recorded release, oldest first."""
        return tuple(self._events)

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far, recomputed from the events."""
        return epsilon_spent(self._events, self.delta)

    def plan_for(self, run: str) -> RunPlan | None:
        """The calibration fixed for ``run``, if any."""
        return self._plans.get(run)

    def record_plan(self, plan: RunPlan) -> None:
        """Persist the calibration for a run (once per run)."""
        if plan.run in self._plans:
            raise LedgerError(f"{self.path}: run '{plan.run}' already has a plan")
        self._append({"type": "plan", **asdict(plan)})
        self._plans[plan.run] = plan

    def charge(self, event: DpEvent) -> float:
        """Record ``event`` if the budget allows it; return the new epsilon.

        Raises
        ------
        PrivacyBudgetExceeded
            The event would take epsilon past ``max_epsilon``; nothing is recorded.
        """
        spent = self.epsilon
        after = epsilon_spent([*self._events, event], self.delta)
        if after > self.budget.max_epsilon:
            raise PrivacyBudgetExceeded(
                bank=self.bank,
                spent=spent,
                requested=after,
                maximum=self.budget.max_epsilon,
                server_round=event.round,
            )
        self._append({"type": "event", **asdict(event)})
        self._events.append(event)
        return after

    def summary(self) -> dict[str, Any]:
        """The ledger as released in ``metrics.json``'s ``privacy`` section."""
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "max_epsilon": self.budget.max_epsilon,
            "accountant": ACCOUNTANT,
            "events": [asdict(event) for event in self._events],
        }

    def _append(self, entry: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
        entries = [self._parse(number, line) for number, line in numbered]
        if not entries or entries[0].get("type") != "budget":
            raise LedgerError(f"{self.path}: first line must be the budget")
        head = entries[0]
        if head.get("bank") != self.bank:
            raise LedgerError(
                f"{self.path}: ledger belongs to bank '{head.get('bank')}', not '{self.bank}'"
            )
        recorded = PrivacyBudget(max_epsilon=head["max_epsilon"], delta=head["delta"])
        if recorded != self.budget:
            raise LedgerError(
                f"{self.path}: ledger was opened with max_epsilon={recorded.max_epsilon}, "
                f"delta={recorded.delta}; a budget cannot change once spending started "
                "(start a new ledger for a new data set)"
            )
        for (number, _), entry in zip(numbered[1:], entries[1:], strict=True):
            kind = entry.pop("type", None)
            try:
                if kind == "event":
                    self._events.append(DpEvent(**entry))
                elif kind == "plan":
                    plan = RunPlan(**entry)
                    self._plans[plan.run] = plan
                else:
                    raise LedgerError(f"{self.path}: line {number}: unknown entry type {kind!r}")
            except TypeError as exc:
                raise LedgerError(
                    f"{self.path}: line {number}: not a {kind} entry ({exc})"
                ) from exc

    def _parse(self, number: int, line: str) -> dict[str, Any]:
        """One ledger line as JSON; LedgerError naming the line otherwise."""
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LedgerError(f"{self.path}: line {number}: not a ledger entry ({exc})") from exc
        if not isinstance(entry, dict):
            raise LedgerError(f"{self.path}: line {number}: not a ledger entry (not an object)")
        return entry


def read_spent(path: Path) -> float:
    """Epsilon spent per an existing ledger file, under the budget its first line records.

    Raises
    ------
    LedgerError
        The file is unreadable or not a ledger (names the line).
    """
    try:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        head = json.loads(first)
        budget = PrivacyBudget(max_epsilon=head["max_epsilon"], delta=head["delta"])
        bank = str(head["bank"])
    except (OSError, IndexError, ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"{path}: line 1: not a ledger's budget line ({exc})") from exc
    return PrivacyLedger(path, bank=bank, budget=budget).epsilon

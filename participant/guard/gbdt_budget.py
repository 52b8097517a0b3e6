"""A bank's privacy budget for federated boosting: one ledger event per tree level.

At the run's first level the bank plans its noise: the smallest noise multiplier that
lets the announced ``n_trees * max_depth`` levels (one Gaussian release each, q = 1,
sensitivity ``sqrt(33 F / 16)``: :mod:`privacy.gbdt_histogram`) fit the training rows'
remaining budget, recorded as the run's ``gbdt`` plan with the first level's event.
Every level is charged before anything is released; the ledger refuses a level past
the plan's count, past the budget, or released before (same run and level number).
"""

from __future__ import annotations

from dataclasses import dataclass

from privacy.accounting import DpEvent, calibrate_noise_multiplier, epsilon_by_rows
from privacy.errors import PrivacyBudgetExceeded
from privacy.gbdt_histogram import histogram_sensitivity, level_event
from privacy.ledger import PrivacyLedger, RunPlan

__all__ = ["BoostingLevel", "charge_level"]


@dataclass(frozen=True)
class BoostingLevel:
    """One level of a run as the ledger sees it.

    Attributes
    ----------
    run : str
        The run's name.
    tree, depth : int
        The level (from 0).
    n_trees, max_depth : int
        The ensemble the run announced (what the plan covers).
    features : int
        Features the histograms cover.
    n_train : int
        The bank's training rows (recorded in the plan).
    """

    run: str
    tree: int
    depth: int
    n_trees: int
    max_depth: int
    features: int
    n_train: int

    @property
    def number(self) -> int:
        """The level's number in the run, from 1 (the event's round)."""
        return self.tree * self.max_depth + self.depth + 1


def charge_level(ledger: PrivacyLedger, level: BoostingLevel) -> DpEvent:
    """Charge ``level`` (planning the run at its first); its event.

    Raises
    ------
    PrivacyBudgetExceeded
        No noise fits the announced levels in the remaining budget, the run made its
        planned levels, or this one would pass the budget; nothing is recorded.
    privacy.errors.LedgerError
        The level was released before; nothing is recorded.
    """
    plan = ledger.plan_for(level.run, "gbdt")
    new_plan = None
    if plan is None:
        plan = new_plan = _plan(ledger, level)
    event = level_event(
        run=level.run,
        level=level.number,
        noise_multiplier=plan.noise_multiplier,
        features=level.features,
    )
    ledger.charge(event, plan=new_plan, at_most=plan.planned_rounds)
    return event


def _plan(ledger: PrivacyLedger, level: BoostingLevel) -> RunPlan:
    """The run's noise: the announced levels on the training rows' remaining budget."""
    levels = level.n_trees * level.max_depth
    try:
        noise_multiplier = calibrate_noise_multiplier(
            spent=ledger.events,
            planned_rounds=levels,
            sample_rate=1.0,
            steps_per_round=1,
            max_epsilon=ledger.budget.max_epsilon,
            delta=ledger.delta,
            rows="train",
        )
    except ValueError as exc:
        raise PrivacyBudgetExceeded(
            bank=ledger.bank,
            spent=epsilon_by_rows(ledger.events, ledger.delta)["train"],
            requested=float("inf"),
            maximum=ledger.budget.max_epsilon,
            server_round=level.number,
            detail=f"no noise lets {levels} boosting levels fit the remaining budget",
        ) from exc
    return RunPlan(
        run=level.run,
        kind="gbdt",
        noise_multiplier=noise_multiplier,
        sample_rate=1.0,
        steps_per_round=1,
        planned_rounds=levels,
        max_grad_norm=histogram_sensitivity(level.features),
        n_train=level.n_train,
        batch_size=0,
        local_epochs=0,
    )

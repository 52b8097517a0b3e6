"""What a run may release about a bank's held-out rows: its evaluations and one governance release.

Every release about the held-out (test) rows is a Gaussian mechanism (q = 1, one step)
charged to the bank's ledger as an ``evaluation-release`` of those rows, whose
``max_grad_norm`` is the release's L2 sensitivity:

* an **evaluation** (score histograms, Brier and log-loss sums), sensitivity
  :data:`~credit.metrics.EVALUATION_SENSITIVITY`, as many as the run announced
  (``planned_evaluations``); an evaluation of the bank's validation part (the run's
  per-round evaluations when it selects its best round) is charged the same way: its
  rows are never trained on either, so counting it against the held-out rows'
  budget is conservative;
* the **governance release** (calibration and fairness sums, with the evaluation of the
  run's last model), sensitivity ``sqrt(5 + 3 C)`` for C protected columns
  (:func:`credit.governance.release.governance_sensitivity`), at most once per run.

At the run's first evaluation the bank fixes one noise multiplier z for all of them:
the smallest for which ``planned_evaluations + 1`` such releases (the announced
evaluations and the governance release), composed with the held-out rows' earlier
releases, fit ``max_epsilon`` (:func:`~privacy.accounting.calibrate_noise_multiplier`).
The plan is persisted with the first release (``RunPlan.planned_rounds`` counts all of
them). A Gaussian release's privacy loss depends on its noise multiplier alone (the
noise's standard deviation is ``z`` times the release's own sensitivity), so each of
them costs the same and the plan holds whichever sensitivity a release has. The
ledger then keeps the run to its plan: evaluations past the announced number, and a
second governance release, are refused (``at_most`` of
:meth:`~privacy.ledger.PrivacyLedger.charge`), whatever the budget would still allow.
"""

from __future__ import annotations

from credit.metrics import EVALUATION_SENSITIVITY
from privacy.accounting import DpEvent, calibrate_noise_multiplier, epsilon_by_rows
from privacy.errors import PrivacyBudgetExceeded
from privacy.ledger import PrivacyLedger, RunPlan

__all__ = ["GOVERNANCE_RELEASES", "charge_evaluation", "charge_governance"]

GOVERNANCE_RELEASES = 1
"""Governance releases a run's evaluation plan holds beside its announced evaluations."""


def charge_evaluation(
    ledger: PrivacyLedger, *, n_train: int, run: str, server_round: int, planned_evaluations: int
) -> DpEvent:
    """Charge one evaluation release of ``run`` (planning the run at its first); its event.

    Raises
    ------
    PrivacyBudgetExceeded
        No noise fits the remaining test-row budget, the run already made its planned
        evaluations, or this release would pass the budget; nothing is recorded.
    """
    if planned_evaluations < 1:
        raise ValueError(f"planned_evaluations must be >= 1; got {planned_evaluations}")
    plan = ledger.plan_for(run, "evaluation")
    new_plan = None
    if plan is None:
        releases = planned_evaluations + GOVERNANCE_RELEASES
        plan = new_plan = _evaluation_plan(ledger, n_train, run, server_round, releases)
    event = _release(plan, server_round, EVALUATION_SENSITIVITY)
    ledger.charge(event, plan=new_plan, at_most=plan.planned_rounds - GOVERNANCE_RELEASES)
    return event


def charge_governance(
    ledger: PrivacyLedger, *, run: str, server_round: int, sensitivity: float
) -> DpEvent:
    """Charge ``run``'s governance release (sensitivity ``sensitivity``) at its plan's noise.

    The run's evaluation plan must exist: the governance release comes with an
    evaluation, which is charged first.

    Raises
    ------
    PrivacyBudgetExceeded
        The run has no evaluation plan, already made its governance release, or this
        release would pass the budget; nothing is recorded.
    """
    plan = ledger.plan_for(run, "evaluation")
    if plan is None:
        spent = epsilon_by_rows(ledger.events, ledger.delta)["test"]
        raise PrivacyBudgetExceeded(
            bank=ledger.bank,
            spent=spent,
            requested=spent,
            maximum=ledger.budget.max_epsilon,
            server_round=server_round,
            detail=f"run '{run}' has no evaluation plan: a governance release comes with an "
            "evaluation",
        )
    event = _release(plan, server_round, sensitivity)
    ledger.charge(event, at_most=GOVERNANCE_RELEASES)
    return event


def _release(plan: RunPlan, server_round: int, sensitivity: float) -> DpEvent:
    """A release of the test rows at ``plan``'s noise multiplier and ``sensitivity``."""
    return DpEvent(
        round=server_round,
        noise_multiplier=plan.noise_multiplier,
        sample_rate=1.0,
        steps=1,
        max_grad_norm=sensitivity,
        kind="evaluation-release",
        run=plan.run,
        rows="test",
    )


def _evaluation_plan(
    ledger: PrivacyLedger, n_train: int, run: str, server_round: int, releases: int
) -> RunPlan:
    """The noise of ``releases`` releases on the test rows' remaining budget."""
    budget = ledger.budget
    try:
        noise_multiplier = calibrate_noise_multiplier(
            spent=ledger.events,
            planned_rounds=releases,
            sample_rate=1.0,
            steps_per_round=1,
            max_epsilon=budget.max_epsilon,
            delta=ledger.delta,
            rows="test",
        )
    except ValueError as exc:
        raise PrivacyBudgetExceeded(
            bank=ledger.bank,
            spent=epsilon_by_rows(ledger.events, ledger.delta)["test"],
            requested=float("inf"),
            maximum=budget.max_epsilon,
            server_round=server_round,
        ) from exc
    return RunPlan(
        run=run,
        kind="evaluation",
        noise_multiplier=noise_multiplier,
        sample_rate=1.0,
        steps_per_round=1,
        planned_rounds=releases,
        max_grad_norm=EVALUATION_SENSITIVITY,
        n_train=n_train,
        batch_size=0,
        local_epochs=0,
    )

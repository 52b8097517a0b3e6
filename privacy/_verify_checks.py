"""What ``fedcredit privacy verify`` checks in a ledger's events and plans (pure functions).

Independent of the code that wrote the ledger: epsilon is recomputed with Google's
``dp_accounting`` (RDP with fedcredit's orders, and PLD) per row set, and the
mechanism each event records is checked against its run's plan, the plan against the
bank's training-row count.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import dp_accounting
from dp_accounting import pld, rdp

from credit.governance.calibration import CALIBRATION_SENSITIVITY
from credit.governance.fairness import FAIRNESS_SENSITIVITY
from credit.governance.release import governance_sensitivity
from privacy.accounting import RDP_ORDERS, ROW_SETS, DpEvent
from privacy.budget import default_delta
from privacy.gbdt_histogram import is_histogram_sensitivity
from privacy.ledger import RunPlan

__all__ = ["RowEpsilon", "independent_epsilons", "ledger_problems"]

_PLD_DISCRETIZATION = 1e-4
_PLAN_OF_KIND = {
    "dp-sgd": "dp-sgd",
    "gaussian-release": "dp-sgd",
    "evaluation-release": "evaluation",
    "gbdt-histogram": "gbdt",
}


@dataclass(frozen=True)
class RowEpsilon:
    """One row set's epsilon per the independent RDP and PLD accountants."""

    rows: str
    rdp: float
    pld: float


def independent_epsilons(events: Sequence[DpEvent], delta: float) -> tuple[RowEpsilon, ...]:
    """Each row set's epsilon at ``delta`` per ``dp_accounting`` (0 without events)."""
    result = []
    for rows in ROW_SETS:
        side = tuple(event for event in events if event.rows == rows)
        rdp_epsilon, pld_epsilon = _epsilons(side, delta) if side else (0.0, 0.0)
        result.append(RowEpsilon(rows, rdp_epsilon, pld_epsilon))
    return tuple(result)


@functools.lru_cache(maxsize=256)
def _epsilons(events: tuple[DpEvent, ...], delta: float) -> tuple[float, float]:
    """RDP and PLD epsilon of ``events`` composed (cached: a run's summaries repeat)."""
    composed = dp_accounting.ComposedDpEvent([_dp_event(event) for event in events])
    rdp_accountant = rdp.RdpAccountant(list(RDP_ORDERS))
    rdp_accountant.compose(composed)
    pld_accountant = pld.PLDAccountant(value_discretization_interval=_PLD_DISCRETIZATION)
    pld_accountant.compose(composed)
    return float(rdp_accountant.get_epsilon(delta)), float(pld_accountant.get_epsilon(delta))


def _dp_event(event: DpEvent) -> dp_accounting.DpEvent:
    gaussian = dp_accounting.GaussianDpEvent(event.noise_multiplier)
    step = (
        gaussian
        if event.sample_rate == 1.0
        else dp_accounting.PoissonSampledDpEvent(event.sample_rate, gaussian)
    )
    return dp_accounting.SelfComposedDpEvent(step, event.steps)


def ledger_problems(
    events: Sequence[DpEvent], plans: Sequence[RunPlan], *, n_train: int, delta: float
) -> list[str]:
    """Everything in a ledger's events and plans that does not add up (empty: none).

    Checks: every event's run has a plan of the event's kind; each DP-SGD plan has
    q = B / n_train and steps = S (a plan in local steps) or E * ceil(n_train / B)
    for the bank's ``n_train``;
    every event runs its plan's mechanism (a governance release, an evaluation
    release of the test rows at its own sensitivity, runs the evaluation plan's
    noise multiplier); one set-up release and at most one governance release per
    run; a stability release (a later file's counts) is one step with q = 1; a
    boosting plan (``gbdt``) is one step with q = 1 per level at the sensitivity
    ``sqrt(33 F / 16)`` of a whole number F of features, its run releases each level
    once and at most its planned levels; delta is at most 1 / (10 n_train).
    """
    problems = _plan_problems(plans, n_train)
    by_run: dict[tuple[str, str], RunPlan] = {(plan.run, plan.kind): plan for plan in plans}
    for event in events:
        if event.kind == "stability-release":  # no plan: each is calibrated on its own
            problems += _stability_problems(event)
            continue
        problems += _event_problems(event, by_run.get((event.run, _PLAN_OF_KIND[event.kind])))
    setups = Counter(event.run for event in events if event.kind == "gaussian-release")
    problems += [
        f"run '{run}' made {count} set-up releases (gaussian-release); a run makes one"
        for run, count in sorted(setups.items())
        if count > 1
    ]
    governance = Counter(
        event.run
        for event in events
        if event.kind == "evaluation-release" and _is_governance(event.max_grad_norm)
    )
    problems += [
        f"run '{run}' made {count} governance releases (calibration and fairness sums); "
        "a run makes one"
        for run, count in sorted(governance.items())
        if count > 1
    ]
    problems += _level_problems(events, by_run)
    if n_train >= 1 and delta > default_delta(n_train) * (1 + 1e-9):
        problems.append(
            f"delta {delta:.3g} is larger than 1/(10 n_train) = {default_delta(n_train):.3g} "
            f"for {n_train} training rows"
        )
    return problems


def _is_governance(sensitivity: float) -> bool:
    """Whether an evaluation release's sensitivity is a governance release's.

    The governance release (calibration sums and the fairness sums of C protected
    columns, :mod:`credit.governance.release`) has L2 sensitivity
    ``sqrt(CALIBRATION_SENSITIVITY^2 + C * FAIRNESS_SENSITIVITY^2)`` for a whole
    C >= 0; an evaluation's is ``EVALUATION_SENSITIVITY``, below all of them.
    """
    columns = (sensitivity**2 - CALIBRATION_SENSITIVITY**2) / FAIRNESS_SENSITIVITY**2
    whole = round(columns)
    return whole >= 0 and math.isclose(sensitivity, governance_sensitivity(whole), rel_tol=1e-12)


def _plan_problems(plans: Sequence[RunPlan], n_train: int) -> list[str]:
    problems = []
    for plan in plans:
        where = f"plan of run '{plan.run}' ({plan.kind})"
        if plan.kind == "evaluation":
            if plan.sample_rate != 1.0 or plan.steps_per_round != 1:
                problems.append(f"{where}: an evaluation release has q = 1 and one step")
            continue
        if plan.kind == "gbdt":
            problems += _gbdt_plan_problems(plan, where)
            continue
        if min(plan.n_train, plan.batch_size, max(plan.local_epochs, plan.local_steps)) < 1:
            problems.append(
                f"{where}: no n_train, batch size or epochs recorded (a plan written before "
                "fedcredit recorded them): q and steps cannot be checked"
            )
            continue
        if plan.local_epochs >= 1 and plan.local_steps >= 1:
            problems.append(
                f"{where}: records both {plan.local_epochs} local epochs and "
                f"{plan.local_steps} local steps; a plan has one of them"
            )
            continue
        if plan.n_train != n_train:
            problems.append(f"{where}: n_train {plan.n_train}, the bank reports {n_train}")
        expected_q = min(1.0, plan.batch_size / plan.n_train)
        if not math.isclose(plan.sample_rate, expected_q, rel_tol=1e-12):
            problems.append(
                f"{where}: sampling rate {plan.sample_rate:.6g} is not batch_size/n_train = "
                f"{plan.batch_size}/{plan.n_train} = {expected_q:.6g}"
            )
        problems += _steps_problems(plan, where)
    return problems


def _steps_problems(plan: RunPlan, where: str) -> list[str]:
    """A DP-SGD plan's steps per round against its local steps, or epochs and n/B."""
    if plan.local_steps >= 1:
        expected, rule = plan.local_steps, "local_steps"
    else:
        expected = plan.local_epochs * math.ceil(plan.n_train / plan.batch_size)
        rule = "local_epochs * ceil(n_train/batch_size)"
    if plan.steps_per_round != expected:
        return [f"{where}: {plan.steps_per_round} steps per round, not {rule} = {expected}"]
    return []


def _gbdt_plan_problems(plan: RunPlan, where: str) -> list[str]:
    """A boosting plan: one Gaussian step with q = 1 per level, at a histogram's sensitivity."""
    problems = []
    if plan.sample_rate != 1.0 or plan.steps_per_round != 1:
        problems.append(f"{where}: a level's histograms are one step with q = 1")
    if not is_histogram_sensitivity(plan.max_grad_norm):
        problems.append(
            f"{where}: sensitivity {plan.max_grad_norm:.6g} is not sqrt(33 F / 16) for a "
            "whole number F of features (privacy.gbdt_histogram)"
        )
    return problems


def _level_problems(events: Sequence[DpEvent], by_run: dict[tuple[str, str], RunPlan]) -> list[str]:
    """Each boosting level released once, and no more levels than the run's plan."""
    levels = Counter((e.run, e.round) for e in events if e.kind == "gbdt-histogram")
    problems = [
        f"run '{run}' released level {level}'s histograms {count} times; a level is released once"
        for (run, level), count in sorted(levels.items())
        if count > 1
    ]
    per_run = Counter(run for run, _ in levels.elements())
    for run, count in sorted(per_run.items()):
        plan = by_run.get((run, "gbdt"))
        if plan is not None and count > plan.planned_rounds:
            problems.append(
                f"run '{run}' made {count} level releases (gbdt-histogram); its plan "
                f"allows {plan.planned_rounds}"
            )
    return problems


def _stability_problems(event: DpEvent) -> list[str]:
    """A stability release is one Gaussian release (q = 1, one step) with no plan."""
    if event.sample_rate != 1.0 or event.steps != 1:
        return [
            f"stability release of run '{event.run}': a stability release is one step with q = 1"
        ]
    return []


def _event_problems(event: DpEvent, plan: RunPlan | None) -> list[str]:
    where = f"round {event.round} {event.kind} of run '{event.run}'"
    if plan is None:
        return [f"{where}: no {_PLAN_OF_KIND[event.kind]} plan for the run"]
    if event.kind == "gaussian-release":
        if event.sample_rate != 1.0 or event.steps != 1 or event.round != 0:
            return [f"{where}: a set-up release is one step with q = 1 in round 0"]
        return []
    recorded = (event.noise_multiplier, event.sample_rate, event.steps, event.max_grad_norm)
    planned = (plan.noise_multiplier, plan.sample_rate, plan.steps_per_round, plan.max_grad_norm)
    if event.kind == "evaluation-release" and _is_governance(event.max_grad_norm):
        planned = (*planned[:3], event.max_grad_norm)  # the governance release's own
    if recorded != planned:
        return [
            f"{where}: (noise multiplier, q, steps, max-grad-norm) = {recorded}, the run's "
            f"plan has {planned}"
        ]
    return []

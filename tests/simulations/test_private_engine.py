"""DP-SGD through Flower's Simulation Engine: budgets hold, refusals stop the run cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit.run_config import RunConfig
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation, run_simulated_consortium
from tests.support.checks import (
    check_a_bank_without_budget_left_is_skipped,
    check_private_run_spends_at_most_the_budget_and_verifies,
    check_rounds_past_the_plan_are_refused,
)

pytestmark = pytest.mark.slow


def _run(out: Path, **config: object) -> list[str]:
    """Run 2 banks with a budget of epsilon 1 each, in the clear (secure aggregation needs
    3 banks; the in-process twins in test_run_driver run it, as here without validation
    parts: the rounds' own scores are checked); return the event lines."""
    run_config = RunConfig(
        out_dir=str(out),
        secure_aggregation=False,
        validation_fraction=0.0,
        **config,  # type: ignore[arg-type]
    )
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    plan = plan_simulation(run_config, n_banks=2, budgets=policy)
    events: list[str] = []
    run_simulated_consortium(plan, on_event=events.append)
    return events


def test_private_run_spends_at_most_the_budget_and_verifies(tmp_path: Path) -> None:
    _run(tmp_path, rounds=3, batch_size=256)
    check_private_run_spends_at_most_the_budget_and_verifies(tmp_path)
    # Every check passes, signatures too: the banks signed their summaries in Ray's
    # worker processes with the keys in OUT/audit/.
    checks = verify_run(tmp_path)
    assert [check.problems for check in checks] == [()] * 4
    assert all(check.ok for check in checks)


def test_rounds_past_the_plan_are_refused_and_the_run_stops_cleanly(tmp_path: Path) -> None:
    events = _run(tmp_path, rounds=4, planned_rounds=2, batch_size=256)
    check_rounds_past_the_plan_are_refused(tmp_path, events)


def test_a_bank_without_budget_left_is_skipped_and_the_others_go_on(tmp_path: Path) -> None:
    run_config = RunConfig(out_dir=str(tmp_path), rounds=2, batch_size=256, min_banks=2)
    policy = BudgetPolicy(
        default=PrivacyBudget(max_epsilon=1.0), banks={"bank-3": PrivacyBudget(max_epsilon=0.001)}
    )
    run_simulated_consortium(plan_simulation(run_config, n_banks=4, budgets=policy))
    check_a_bank_without_budget_left_is_skipped(tmp_path)

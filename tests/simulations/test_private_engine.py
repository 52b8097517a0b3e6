"""DP-SGD through Flower's Simulation Engine: budgets hold, refusals stop the run cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from credit.model_card import load_model
from credit.run_config import RunConfig
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation, run_simulated_consortium

pytestmark = pytest.mark.slow


def _run(out: Path, **config: object) -> tuple[dict, list[str]]:
    run_config = RunConfig(out_dir=str(out), **config)  # type: ignore[arg-type]
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    plan = plan_simulation(run_config, n_banks=2, budgets=policy)
    events: list[str] = []
    run_simulated_consortium(plan, on_event=events.append)
    return json.loads((out / "metrics.json").read_text()), events


def test_private_run_spends_at_most_the_budget_and_verifies(tmp_path: Path) -> None:
    document, _ = _run(tmp_path, rounds=3, batch_size=256)
    assert set(document["privacy"]) == {"bank-1", "bank-2"}
    for ledger in document["privacy"].values():
        assert 0.9 < ledger["epsilon"] <= 1.0
        assert ledger["accountant"] == "rdp"
        rounds = [e["round"] for e in ledger["events"]]
        assert rounds == [0, 1, 2, 3]
    checks = verify_run(tmp_path)
    assert all(c.agrees and c.within_budget for c in checks)
    assert document["status"] == "completed"


def test_rounds_past_the_plan_are_refused_and_the_run_stops_cleanly(tmp_path: Path) -> None:
    document, events = _run(tmp_path, rounds=4, planned_rounds=2, batch_size=256)
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert document["status"].startswith("stopped: round 3")
    refused = sorted((r["bank"], r["server-round"]) for r in document["refusals"])
    assert refused == [("bank-1", 3), ("bank-2", 3)]
    assert any("refused round 3" in line for line in events)
    for ledger in document["privacy"].values():
        assert ledger["epsilon"] <= 1.0
        assert [e["round"] for e in ledger["events"]] == [0, 1, 2]
    model = load_model(tmp_path / "model")
    assert model.card["metrics"]["auc"] == document["final"]["auc"]


def test_a_bank_without_budget_left_is_skipped_and_the_others_go_on(tmp_path: Path) -> None:
    run_config = RunConfig(out_dir=str(tmp_path), rounds=2, batch_size=256, min_banks=2)
    policy = BudgetPolicy(
        default=PrivacyBudget(max_epsilon=1.0), banks={"bank-3": PrivacyBudget(max_epsilon=0.001)}
    )
    plan = plan_simulation(run_config, n_banks=3, budgets=policy)
    events: list[str] = []
    run_simulated_consortium(plan, on_event=events.append)
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["status"] == "completed"
    assert [r["banks"] for r in document["rounds"]] == [["bank-1", "bank-2"]] * 2
    # bank-3 refused the set-up release, so it is outside the run's secure-aggregation
    # roster and is never asked to train.
    assert [r["refused"] for r in document["rounds"]] == [[], []]
    assert [(r["bank"], r["server-round"]) for r in document["refusals"]] == [("bank-3", 0)]
    assert document["privacy"]["bank-3"]["events"] == []
    assert document["privacy"]["bank-3"]["epsilon"] == 0.0
    for bank in ("bank-1", "bank-2"):
        assert document["privacy"][bank]["epsilon"] <= 1.0
    assert set(document["participants"]) == {"bank-1", "bank-2"}

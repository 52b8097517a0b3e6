"""A simulation's plan: bank files, budgets, and the record of how it was set up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from credit.errors import ConfigError
from credit.run_config import RunConfig
from privacy.budget import PrivacyBudget
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation
from simulations.settings import SIMULATION_FILE, PartitionScheme, PartitionSettings


def test_the_plan_is_recorded_beside_the_run(tmp_path: Path) -> None:
    split = PartitionSettings(partition=PartitionScheme.DIRICHLET, alpha=2.0)
    policy = BudgetPolicy(banks={"bank-2": PrivacyBudget(max_epsilon=0.5)})
    plan = plan_simulation(
        RunConfig(out_dir=str(tmp_path), seed=3),
        3,
        partition=split,
        budgets=policy,
        budget_source="budgets.toml",
        dropout_rate=0.1,
    )
    document = json.loads((tmp_path / SIMULATION_FILE).read_text())
    assert document["partition"] == {
        "data": "",
        "partition": "dirichlet",
        "alpha": 2.0,
        "partition_column": "EDUCATION",
        "classes_per_bank": 2,
        "size_skew": 1.0,
    }
    assert document["dropout_rate"] == 0.1
    assert [bank["name"] for bank in document["banks"]] == ["bank-1", "bank-2", "bank-3"]
    assert sum(bank["rows"] for bank in document["banks"]) == 30_000
    assert [bank["budget"] for bank in document["banks"]] == [
        None,
        {"max_epsilon": 0.5, "delta": None},
        None,
    ]
    assert all(Path(bank["file"]).is_file() for bank in document["banks"])
    assert plan.banks[1].ledger_path == tmp_path / "ledgers" / "bank-2.jsonl"
    assert plan.banks[0].ledger_path is None


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_a_dropout_rate_outside_zero_to_one_is_refused_before_anything_is_written(
    tmp_path: Path, rate: float
) -> None:
    with pytest.raises(ConfigError, match=r"--dropout-rate: must be in \[0, 1\)"):
        plan_simulation(RunConfig(out_dir=str(tmp_path / "out")), 2, dropout_rate=rate)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("banks", [1, 2])
def test_secure_aggregation_needs_three_banks(tmp_path: Path, banks: int) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^--banks: secure aggregation needs at least 3 banks .*--no-secure-aggregation$",
    ):
        plan_simulation(RunConfig(out_dir=str(tmp_path)), banks)
    plan = plan_simulation(RunConfig(out_dir=str(tmp_path), secure_aggregation=False), 1)
    assert plan.config.min_banks == 1  # a consortium of one does not wait for a second bank

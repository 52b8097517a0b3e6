"""Whole simulated consortia in this process: the fast tier's end-to-end runs.

Each test is the in-process equivalent of a Simulation Engine test (named in its
docstring) with the same assertions: the real ServerApp body, RunDriver, ClientApp
handlers (with the simulation's dropout mod), secure aggregation, DP-SGD, ledgers and
audit logs; only Flower's transport is replaced, by
:class:`tests.support.fake_grid.FakeGrid` (no Ray).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from privacy.accounting import DpEvent, epsilon_by_rows
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation
from tests.support.checks import (
    check_audit_log_of_two_bank_run,
    check_dropouts_happen_and_every_round_completes,
    check_private_run_spends_at_most_the_budget_and_verifies,
    check_same_banks_give_the_same_update_up_to_quantization,
    check_saved_model_scores_like_the_run,
    check_secure_aggregation_matches_plain_fedavg,
    check_two_bank_run_metrics,
)
from tests.support.consortium import run_in_process

TwoBankRun = tuple[RunConfig, Path, list[str]]


@pytest.fixture(scope="module")
def two_bank_run(tmp_path_factory: pytest.TempPathFactory) -> TwoBankRun:
    """2 banks x 2 rounds, in the clear (as ``test_engine.two_bank_run``; secure
    aggregation needs 3 banks: ``test_secure_aggregation_matches_plain_fedavg``)."""
    out = tmp_path_factory.mktemp("inprocess")
    config = RunConfig(rounds=2, out_dir=str(out), seed=3, secure_aggregation=False)
    plan = plan_simulation(config, n_banks=2)
    lines: list[str] = []
    run_in_process(
        plan,
        on_round=lambda result, total: lines.append(f"{result.server_round}/{total}"),
        on_event=lines.append,
    )
    return config, out, lines


def test_two_banks_two_rounds_write_complete_metrics(two_bank_run: TwoBankRun) -> None:
    """In-process ``test_engine.test_two_banks_two_rounds_write_complete_metrics``."""
    _, out, lines = two_bank_run
    check_two_bank_run_metrics(out, lines)


def test_saved_model_reloads_and_scores_like_the_run(
    two_bank_run: TwoBankRun, schema: DatasetSchema
) -> None:
    """In-process ``test_engine.test_saved_model_reloads_and_scores_like_the_run``."""
    config, out, _ = two_bank_run
    check_saved_model_scores_like_the_run(out, config, schema)


def test_the_run_leaves_a_verified_audit_log_with_one_entry_per_round(
    two_bank_run: TwoBankRun,
) -> None:
    """In-process ``test_engine.test_the_run_leaves_a_verified_audit_log_...``."""
    _, out, _ = two_bank_run
    check_audit_log_of_two_bank_run(out)


def test_private_run_spends_at_most_the_budget_and_verifies(tmp_path: Path) -> None:
    """In-process ``test_private_engine.test_private_run_spends_at_most_the_budget_...``."""
    config = RunConfig(out_dir=str(tmp_path), rounds=3, batch_size=256, secure_aggregation=False)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    run_in_process(plan_simulation(config, n_banks=2, budgets=policy))
    check_private_run_spends_at_most_the_budget_and_verifies(tmp_path)


def test_banks_with_max_epsilon_0_1_join_and_train(tmp_path: Path) -> None:
    """Every bank pays its set-up release (a tenth of its budget) and trains every round.

    Before issue 12 the set-up release alone cost about 0.17 epsilon, so both banks
    refused round 0 and the run ended there.
    """
    config = RunConfig(out_dir=str(tmp_path), rounds=3, batch_size=256, secure_aggregation=False)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=0.1))
    run_in_process(plan_simulation(config, n_banks=2, budgets=policy))
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["status"] == "completed" and document["refusals"] == []
    assert [r["banks"] for r in document["rounds"]] == [["bank-1", "bank-2"]] * 3
    for ledger in document["privacy"].values():
        assert 0.09 < ledger["epsilon"] <= 0.1
        setup = [e for e in ledger["events"] if e["kind"] == "gaussian-release"]
        assert len(setup) == 1
        release = DpEvent(**setup[0])
        assert 0.0099 < epsilon_by_rows([release], ledger["delta"])["train"] <= 0.01
    checks = verify_run(tmp_path)
    assert all(check.ok for check in checks), [check.problems for check in checks]


# -- secure aggregation with simulated dropouts equals plain FedAvg (test_secure_engine) --

DROPOUT_ROUNDS = 3
"""Three rounds (``test_secure_engine`` runs 10 through Ray) keep the fast tier quick and
already exercise every kind of dropout."""
DROPOUT_SEED = 4984
"""At this seed and rate 0.2, rounds 1-3 each lose one bank, at train, unmask and
advertise in turn (rounds 4-10 at most one each): the threshold 4 of 5 (t > 2N/3)
tolerates one dropout per round, not two."""


def _five_bank_run(out: Path, **settings: Any) -> dict[str, Any]:
    config = RunConfig(rounds=DROPOUT_ROUNDS, out_dir=str(out), seed=DROPOUT_SEED, **settings)
    run_in_process(plan_simulation(config, n_banks=5, dropout_rate=0.2))
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return {
        "secure": _five_bank_run(tmp_path_factory.mktemp("secure")),
        "plain": _five_bank_run(tmp_path_factory.mktemp("plain"), secure_aggregation=False),
    }


def test_dropouts_happen_and_every_round_completes(runs: dict[str, dict[str, Any]]) -> None:
    """In-process ``test_secure_engine.test_dropouts_happen_and_every_round_completes``."""
    check_dropouts_happen_and_every_round_completes(
        runs["secure"], runs["plain"], rounds=DROPOUT_ROUNDS
    )


def test_secure_aggregation_matches_plain_fedavg(runs: dict[str, dict[str, Any]]) -> None:
    """In-process ``test_secure_engine.test_secure_aggregation_matches_plain_fedavg``."""
    check_secure_aggregation_matches_plain_fedavg(runs["secure"], runs["plain"])


def test_the_same_banks_give_the_same_update_up_to_quantization(
    runs: dict[str, dict[str, Any]],
) -> None:
    """In-process ``test_secure_engine.test_the_same_banks_give_the_same_update_...``."""
    check_same_banks_give_the_same_update_up_to_quantization(runs["secure"], runs["plain"])


def test_every_bank_of_a_round_trained_or_dropped(runs: dict[str, dict[str, Any]]) -> None:
    """A bank that drops out at any stage (advertise included) is listed as dropped."""
    for document in runs.values():
        everyone = set(document["participants"])
        for result in document["rounds"]:
            if result["aborted"]:
                continue
            assert set(result["banks"]).isdisjoint(result["dropped"])
            assert set(result["banks"]) | set(result["dropped"]) == everyone, result
    secure_dropped = [r["dropped"] for r in runs["secure"]["rounds"]]
    assert any(secure_dropped[1:])  # rounds after the first lose banks at advertise too


def test_the_consortiums_threshold_policy_reaches_the_coordinator_and_every_bank(
    tmp_path: Path,
) -> None:
    """``--secagg-threshold-fraction 0.75``: 4 banks sum with t = 4, which every bank accepts."""
    config = RunConfig(rounds=1, out_dir=str(tmp_path), secagg_threshold_fraction=0.75)
    run_in_process(plan_simulation(config, n_banks=4))
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["secure_aggregation"]["threshold"] == 4  # 2/3 would give 3
    assert not document["rounds"][0]["aborted"] and len(document["rounds"][0]["banks"]) == 4

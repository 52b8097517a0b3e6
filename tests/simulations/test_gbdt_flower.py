"""Federated boosting over Flower's messages, in this process (the fake Grid, no Ray).

The real ServerApp body (``model = "gbdt"``: :class:`coordinator.app.boosting_run.
BoostingDriver`), the banks' real ClientApp and guard (``gbdt-level`` queries), in the
clear and through secure aggregation: the trees equal central training on the banks'
pooled training rows with the run's bins, and the exported XGBoost model predicts ours.
``tests/simulations/test_gbdt_engine.py`` runs the same through the Simulation Engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coordinator.app.run_files import METRICS_FILE
from credit.gbdt import raw_matrix
from credit.metrics import credit_metrics, summarize_scores
from credit.run_config import RunConfig
from participant.guard.in_process import guard_for
from simulations.engine import SimulationPlan, plan_simulation
from tests.support.boosting import (
    central_ensemble,
    check_trees_equal_central_training,
    check_xgboost_predicts_our_margins,
    run_encoder,
)
from tests.support.consortium import consortium_grid, exchanges, run_in_process

TREES, DEPTH = 2, 3


def _run(out: Path, *, secure: bool) -> tuple[SimulationPlan, list[str], list[str]]:
    config = RunConfig(
        out_dir=str(out),
        model="gbdt",
        trees=TREES,
        max_depth=DEPTH,
        max_bins=32,
        seed=5,
        secure_aggregation=secure,
    )
    plan = plan_simulation(config, n_banks=3)
    grid = consortium_grid(plan)
    events: list[str] = []
    run_in_process(plan, grid=grid, on_event=events.append)
    return plan, exchanges(grid), events


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[SimulationPlan, list[str]]]:
    plain_plan, plain_exchanges, _ = _run(tmp_path_factory.mktemp("plain"), secure=False)
    secure_plan, secure_exchanges, _ = _run(tmp_path_factory.mktemp("secure"), secure=True)
    return {"plain": (plain_plan, plain_exchanges), "secure": (secure_plan, secure_exchanges)}


@pytest.mark.parametrize("kind", ["plain", "secure"])
def test_federated_trees_equal_central_training_on_the_pooled_rows(
    runs: dict[str, tuple[SimulationPlan, list[str]]], kind: str
) -> None:
    plan, _ = runs[kind]
    out = Path(plan.config.out_dir)
    check_trees_equal_central_training(out, central_ensemble(plan, out), trees=TREES)


def test_one_exchange_per_level_in_the_clear_three_under_secure_aggregation(
    runs: dict[str, tuple[SimulationPlan, list[str]]],
) -> None:
    _, plain = runs["plain"]
    levels = plain.count("query:gbdt-level")
    assert plain == ["query:feature-stats", *["query:gbdt-level"] * levels, "query:gbdt-evaluate"]
    assert TREES <= levels <= TREES * DEPTH
    _, secure = runs["secure"]
    per_level = ["query:gbdt-level", "query:secagg-consistency", "query:secagg-unmask"]
    evaluation = ["query:gbdt-evaluate", "query:secagg-consistency", "query:secagg-unmask"]
    assert secure[5:] == per_level * levels + evaluation  # set-up: join, secure round 0


@pytest.mark.parametrize("kind", ["plain", "secure"])
def test_the_held_out_evaluation_is_the_pooled_one(
    runs: dict[str, tuple[SimulationPlan, list[str]]], kind: str
) -> None:
    plan, _ = runs[kind]
    out = Path(plan.config.out_dir)
    test = pd.concat([guard_for(settings).bank.test for settings in plan.banks])
    encoder = run_encoder(out)
    labels = test[guard_for(plan.banks[0]).bank.schema.target].to_numpy(dtype=np.int64)
    predicted = central_ensemble(plan, out).predict_proba(raw_matrix(test, encoder))
    pooled = credit_metrics(summarize_scores(predicted, labels, plan.config.score_bins))
    final = json.loads((out / METRICS_FILE).read_text())["final"]
    assert final["n_rows"] == len(test)
    assert final["auc"] == pytest.approx(pooled.auc, abs=1e-12)
    assert final["ks"] == pytest.approx(pooled.ks, abs=1e-12)


def test_the_exported_model_loads_in_xgboost_and_predicts_our_margins(
    runs: dict[str, tuple[SimulationPlan, list[str]]],
) -> None:
    pytest.importorskip("xgboost")
    plan, _ = runs["secure"]
    out = Path(plan.config.out_dir)
    rows = pd.concat([guard_for(settings).bank.test for settings in plan.banks])
    check_xgboost_predicts_our_margins(out, rows, central_ensemble(plan, out))
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["trees"] == TREES
    assert metrics["secure_aggregation"]["banks"] == 3


def test_the_runs_model_folder_is_a_package_signed_with_the_coordinators_key(
    runs: dict[str, tuple[SimulationPlan, list[str]]],
) -> None:
    """Signed by the key of the coordinator's audit log; scored as XGBoost scores it."""
    xgboost = pytest.importorskip("xgboost")
    from coordinator.app.audit_trail import coordinator_key_path
    from credit.audit import load_public_key, public_key_path
    from credit.package import load_package
    from credit.scoring import Scorer

    plan, _ = runs["secure"]
    out = Path(plan.config.out_dir)
    pinned = load_public_key(public_key_path(coordinator_key_path(plan.config)))
    package = load_package(out / "model", signer=pinned)
    assert package.kind == "gbdt"
    assert package.manifest.run == out.name
    assert package.privacy == json.loads((out / METRICS_FILE).read_text())["privacy"]
    assert package.scoring.cutoff == plan.config.decision_cutoff
    rows = pd.concat([guard_for(settings).bank.test for settings in plan.banks])
    scored = Scorer(package).score(rows)
    booster = xgboost.Booster(model_file=str(out / "model" / "xgboost.json"))
    features = list(package.encoder.features)
    data = xgboost.DMatrix(raw_matrix(rows, package.encoder), feature_names=features)
    np.testing.assert_allclose(scored.probability, booster.predict(data), rtol=0, atol=1e-6)


def _private_run(out: Path, *, reproducible: bool) -> SimulationPlan:
    """Three banks with a budget of epsilon 4 each, in the clear, two trees of depth 2."""
    from privacy.budget import PrivacyBudget
    from simulations.budgets import BudgetPolicy

    config = RunConfig(
        out_dir=str(out), model="gbdt", trees=2, max_depth=2, max_bins=16, seed=1,
        secure_aggregation=False,
    )  # fmt: skip
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=4.0))
    plan = plan_simulation(config, n_banks=3, budgets=policy, reproducible_noise=reproducible)
    run_in_process(plan)
    return plan


def test_banks_with_a_budget_charge_every_level_and_their_ledgers_verify(tmp_path: Path) -> None:
    from privacy.gbdt_histogram import KIND
    from privacy.verify import verify_run

    plan = _private_run(tmp_path, reproducible=False)
    levels = len(json.loads((tmp_path / METRICS_FILE).read_text())["levels"])
    checks = verify_run(tmp_path)
    assert checks and all(check.ok for check in checks), [check.problems for check in checks]
    for ledger in sorted((tmp_path / "ledgers").glob("*.jsonl")):
        lines = [json.loads(line) for line in ledger.read_text().splitlines()]
        charged = [line for line in lines if line.get("kind") == KIND]
        assert len(charged) == levels, ledger.name
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert set(metrics["privacy"]) == {settings.bank_name for settings in plan.banks}


def test_with_reproducible_noise_the_same_seed_grows_the_same_noisy_trees(
    tmp_path: Path,
) -> None:
    from coordinator.app.boosting_checkpoint import CHECKPOINT_FILE

    trees = []
    for name in ("first", "second"):
        _private_run(tmp_path / name, reproducible=True)
        trees.append(json.loads((tmp_path / name / CHECKPOINT_FILE).read_text())["trees"])
    assert trees[0] == trees[1]

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

import numpy as np
import pytest

from credit.loading import load_bank_csv
from credit.model_card import load_model
from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation
from tests.support.consortium import run_in_process

TwoBankRun = tuple[RunConfig, Path, list[str]]


@pytest.fixture(scope="module")
def two_bank_run(tmp_path_factory: pytest.TempPathFactory) -> TwoBankRun:
    """2 banks x 2 rounds, secure aggregation on (as ``test_engine.two_bank_run``)."""
    out = tmp_path_factory.mktemp("inprocess")
    config = RunConfig(rounds=2, out_dir=str(out), seed=3)
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
    document = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    assert "1/2" in lines and "2/2" in lines
    assert set(document["participants"]) == {"bank-1", "bank-2"}
    for counts in document["participants"].values():
        assert counts["n_train"] > 4 * counts["n_test"] * 0.8
    final = document["final"]
    assert {"auc", "ks", "gini", "brier", "log_loss", "accuracy", "f1"} <= set(final)
    assert 0.70 < final["auc"] < 0.85
    assert final["gini"] == pytest.approx(2 * final["auc"] - 1)
    assert document["config"]["num-server-rounds"] == 2
    assert document["wall_seconds"] > 0
    assert (out / "rounds.png").stat().st_size > 1000


def test_saved_model_reloads_and_scores_like_the_run(
    two_bank_run: TwoBankRun, schema: DatasetSchema
) -> None:
    """In-process ``test_engine.test_saved_model_reloads_and_scores_like_the_run``."""
    from sklearn.metrics import roc_auc_score

    from participant.app.bank import held_out_rows

    config, out, _ = two_bank_run
    model = load_model(out / "model")
    scores, labels = [], []
    for bank_file in sorted((out / "banks").glob("*.csv")):
        frame = load_bank_csv(bank_file, schema).frame
        test = frame[
            held_out_rows(
                frame, schema, test_fraction=config.test_fraction, seed=config.seed, salt=""
            )
        ]
        scores.append(model.predict_proba(test))
        labels.append(test[schema.target].to_numpy())
    pooled_auc = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
    reported = json.loads((out / "metrics.json").read_text())["final"]["auc"]
    assert pooled_auc == pytest.approx(reported, abs=0.002)
    again = load_model(out / "model").predict_proba(test)
    np.testing.assert_array_equal(again, scores[-1])


def test_the_run_leaves_a_verified_audit_log_with_one_entry_per_round(
    two_bank_run: TwoBankRun,
) -> None:
    """In-process ``test_engine.test_the_run_leaves_a_verified_audit_log_...``."""
    from credit.audit import arrays_sha256, fingerprint, load_public_key, verify_audit

    _, out, _ = two_bank_run
    log = out / "audit" / "coordinator.jsonl"
    report = verify_audit(log, load_public_key(out / "audit" / "coordinator.pub"))
    assert report.closed and report.writer == "coordinator"
    assert report.fingerprint == fingerprint(load_public_key(out / "audit" / "coordinator.pub"))
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    events = [entry["event"] for entry in entries]
    assert events == ["log-open", "run-start", "setup", "round", "round", "run-end"]
    document = json.loads((out / "metrics.json").read_text())
    start = entries[1]["data"]
    assert start["config_sha256"] == RunConfig.from_flower(document["config"]).digest()
    assert start["schema_sha256"] == document["schema"]["sha256"]
    assert start["planned_rounds"] == 2
    rounds = [entry["data"] for entry in entries if entry["event"] == "round"]
    assert [r["server_round"] for r in rounds] == [1, 2]
    assert all(r["banks"] == ["bank-1", "bank-2"] and r["secure_aggregation"] for r in rounds)
    initial = entries[2]["data"]["model_sha256"]
    assert len({initial, rounds[0]["model_sha256"], rounds[1]["model_sha256"]}) == 3
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    with np.load(out / "checkpoint" / state["arrays_file"]) as saved:
        arrays = {name: saved[f"arr_{i}"] for i, name in enumerate(state["array_names"])}
    end = entries[-1]["data"]
    assert rounds[-1]["model_sha256"] == arrays_sha256(arrays) == end["final_model_sha256"]
    assert end["status"] == "completed" and end["rounds_completed"] == 2
    assert end["final_auc"] == pytest.approx(document["final"]["auc"])


def test_private_run_spends_at_most_the_budget_and_verifies(tmp_path: Path) -> None:
    """In-process ``test_private_engine.test_private_run_spends_at_most_the_budget_...``."""
    config = RunConfig(out_dir=str(tmp_path), rounds=3, batch_size=256)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    run_in_process(plan_simulation(config, n_banks=2, budgets=policy))
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert set(document["privacy"]) == {"bank-1", "bank-2"}
    for ledger in document["privacy"].values():
        assert 0.9 < ledger["epsilon"] <= 1.0
        assert ledger["accountant"] == "rdp"
        rounds = [e["round"] for e in ledger["events"]]
        assert rounds == [0, 1, 2, 3]
    checks = verify_run(tmp_path)
    assert all(c.agrees and c.within_budget for c in checks)
    assert document["status"] == "completed"


# -- secure aggregation with simulated dropouts equals plain FedAvg (test_secure_engine) --

DROPOUT_ROUNDS = 3
"""At seed 0 and rate 0.2, rounds 1-3 lose banks at every stage: train, unmask, advertise."""


def _five_bank_run(out: Path, **settings: Any) -> dict[str, Any]:
    config = RunConfig(rounds=DROPOUT_ROUNDS, out_dir=str(out), seed=0, **settings)
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
    for document in runs.values():
        assert document["status"] == "completed"
        assert [r["round"] for r in document["rounds"]] == list(range(1, DROPOUT_ROUNDS + 1))
    assert any(r["dropped"] for r in runs["secure"]["rounds"])


def test_secure_aggregation_matches_plain_fedavg(runs: dict[str, dict[str, Any]]) -> None:
    """In-process ``test_secure_engine.test_secure_aggregation_matches_plain_fedavg``."""
    secure, plain = runs["secure"], runs["plain"]
    assert secure["secure_aggregation"]["threshold"] == 3
    assert plain["secure_aggregation"] is None
    assert abs(secure["final"]["auc"] - plain["final"]["auc"]) <= 0.003


def test_the_same_banks_give_the_same_update_up_to_quantization(
    runs: dict[str, dict[str, Any]],
) -> None:
    """In-process ``test_secure_engine.test_the_same_banks_give_the_same_update_...``.

    Round 1 starts from the same model and (seed 0) trains the same four banks.
    """
    secure, plain = runs["secure"]["rounds"][0], runs["plain"]["rounds"][0]
    assert secure["banks"] == plain["banks"]
    assert len(secure["banks"]) == 4
    assert secure["auc"] == pytest.approx(plain["auc"], abs=1e-4)
    assert secure["train_loss"] == pytest.approx(plain["train_loss"], abs=1e-5)


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

"""End to end through Flower's Simulation Engine (Ray backend): real ServerApp, real ClientApps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from credit.loading import load_bank_csv
from credit.model_card import load_model
from credit.run_config import RunConfig
from simulations.engine import plan_simulation, run_simulated_consortium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_bank_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunConfig, Path, list[str]]:
    out = tmp_path_factory.mktemp("sim")
    config = RunConfig(rounds=2, out_dir=str(out), seed=3)
    plan = plan_simulation(config, n_banks=2)
    lines: list[str] = []
    run_simulated_consortium(
        plan,
        on_round=lambda result, total: lines.append(f"{result.server_round}/{total}"),
        on_event=lines.append,
    )
    return config, out, lines


@pytest.mark.smoke
def test_two_banks_two_rounds_write_complete_metrics(two_bank_run) -> None:
    """The fast tier's one run through Ray (``smoke``): the engine's wiring still works."""
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


def test_saved_model_reloads_and_scores_like_the_run(two_bank_run, schema) -> None:
    """The model file scores the banks' test rows to the AUC the run reported."""
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


def test_the_run_leaves_a_verified_audit_log_with_one_entry_per_round(two_bank_run) -> None:
    """OUT/audit/coordinator.jsonl verifies, and its hashes match the run's own files."""
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

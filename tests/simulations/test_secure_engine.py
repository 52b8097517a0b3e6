"""Secure aggregation through Flower's Simulation Engine, with simulated dropouts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from credit.run_config import RunConfig
from simulations.engine import plan_simulation, run_simulated_consortium

pytestmark = pytest.mark.slow


def _run(out: Path, **settings: Any) -> dict[str, Any]:
    config = RunConfig(rounds=10, out_dir=str(out), seed=0, **settings)
    run_simulated_consortium(
        plan_simulation(config, n_banks=5, dropout_rate=0.2),
        on_round=lambda r, t: None,
        on_event=lambda t: None,
    )
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return {
        "secure": _run(tmp_path_factory.mktemp("secure")),
        "plain": _run(tmp_path_factory.mktemp("plain"), secure_aggregation=False),
    }


def test_dropouts_happen_and_every_round_completes(runs: dict[str, dict[str, Any]]) -> None:
    for document in runs.values():
        assert document["status"] == "completed"
        assert [r["round"] for r in document["rounds"]] == list(range(1, 11))
    assert any(r["dropped"] for r in runs["secure"]["rounds"])


def test_secure_aggregation_matches_plain_fedavg(runs: dict[str, dict[str, Any]]) -> None:
    secure, plain = runs["secure"], runs["plain"]
    assert secure["secure_aggregation"]["threshold"] == 3
    assert plain["secure_aggregation"] is None
    assert abs(secure["final"]["auc"] - plain["final"]["auc"]) <= 0.003


def test_the_same_banks_give_the_same_update_up_to_quantization(
    runs: dict[str, dict[str, Any]],
) -> None:
    """Round 1 starts from the same model and (seed 0) trains the same four banks."""
    secure, plain = runs["secure"]["rounds"][0], runs["plain"]["rounds"][0]
    assert secure["banks"] == plain["banks"]
    assert len(secure["banks"]) == 4
    assert secure["auc"] == pytest.approx(plain["auc"], abs=1e-4)
    assert secure["train_loss"] == pytest.approx(plain["train_loss"], abs=1e-5)

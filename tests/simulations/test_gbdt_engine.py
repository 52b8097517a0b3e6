"""``fedcredit simulate --model gbdt`` end to end through Flower's Simulation Engine (Ray).

Three banks, three trees of depth three, secure aggregation on: the trees equal central
training on the banks' pooled training rows with the run's bins, XGBoost loads the
exported model and predicts our margins; then a run with ``--epsilon`` whose ledgers
``fedcredit privacy verify`` accepts. The fast tier runs the same through the fake Grid
(``test_gbdt_flower.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.app import app
from credit.run_config import RunConfig
from participant.guard.in_process import guard_for
from privacy.gbdt_histogram import KIND
from simulations.engine import plan_simulation
from tests.support.boosting import (
    central_ensemble,
    check_trees_equal_central_training,
    check_xgboost_predicts_our_margins,
)

pytestmark = pytest.mark.slow


def test_simulate_gbdt_equals_central_training_exports_xgboost_and_verifies_ledgers(
    tmp_path: Path,
) -> None:
    out = tmp_path / "secure"
    boosting = ["--model", "gbdt", "--banks", "3", "--max-bins", "64", "--seed", "2"]
    exact = [*boosting, "--trees", "3", "--max-depth", "3", "--secure-aggregation"]

    result = CliRunner().invoke(app, ["simulate", *exact, "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert "tree 3/3" in result.stdout
    assert "held-out evaluation (3 banks" in result.stdout
    # The same banks and training rows, planned again (splits and salts are seeded):
    # a boosting simulation sets no validation part apart, every row outside the
    # held-out part trains.
    config = RunConfig(
        out_dir=str(tmp_path / "replanned"), model="gbdt", trees=3, max_depth=3, max_bins=64,
        seed=2, validation_fraction=0.0,
    )  # fmt: skip
    plan = plan_simulation(config, n_banks=3)
    central = central_ensemble(plan, out)
    check_trees_equal_central_training(out, central, trees=3)
    rows = pd.concat([guard_for(settings).bank.test for settings in plan.banks])
    check_xgboost_predicts_our_margins(out, rows, central)

    private = tmp_path / "private"
    noisy = [*boosting, "--trees", "2", "--max-depth", "2", "--epsilon", "4"]
    result = CliRunner().invoke(app, ["simulate", *noisy, "--out", str(private)])
    assert result.exit_code == 0, result.output
    verified = CliRunner().invoke(app, ["privacy", "verify", str(private)])
    assert verified.exit_code == 0, verified.output
    levels = len(json.loads((private / "metrics.json").read_text())["levels"])
    for ledger in sorted((private / "ledgers").glob("*.jsonl")):
        kinds = [json.loads(line).get("kind") for line in ledger.read_text().splitlines()]
        assert kinds.count(KIND) == levels, ledger.name

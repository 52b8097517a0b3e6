"""``fedcredit coordinator launch --model gbdt`` on Flower's Deployment Engine, every
process real, on 127.0.0.1: two banks start their guards and SuperNodes with
``fedcredit participant start``, the operator launches a small boosting run (2 trees of
depth 2, secure aggregation on, as the banks require), and the collected outputs hold
the trees, an XGBoost model XGBoost loads, the held-out evaluation, the signed package
and the report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.deployment.consortium import FEDCREDIT, RunningConsortium, fedcredit, process_env
from tests.support.boosting import check_xgboost_predicts_our_margins, run_encoder

pytestmark = pytest.mark.deployment

BANKS = ["bank-a", "bank-b", "bank-c"]  # banks refuse a secure roster under 3
ROWS_PER_BANK = 2_000
TREES, DEPTH = 2, 2
LAUNCH_TIMEOUT = 900.0


def _launch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FEDCREDIT), "coordinator", "launch", *args],
        capture_output=True,
        text=True,
        env={**process_env(), "COLUMNS": "200"},
        timeout=LAUNCH_TIMEOUT,
        check=False,
    )


def test_launch_trains_boosted_trees_over_real_banks(
    running_consortium: RunningConsortium, embedded_frame: pd.DataFrame, tmp_path: Path
) -> None:
    data = running_consortium.work / "data"
    data.mkdir(parents=True, exist_ok=True)
    files = {}
    for index, bank in enumerate(BANKS):
        files[bank] = data / f"{bank}.csv"
        rows = embedded_frame.iloc[index * ROWS_PER_BANK : (index + 1) * ROWS_PER_BANK]
        rows.to_csv(files[bank], index=False)
    running_consortium.add_banks_and_start(files, max_epsilon=None)
    running_consortium.wait_for_statuses(BANKS, "online")
    root, out = str(running_consortium.root), tmp_path / "results"

    launched = _launch(
        root, "--model", "gbdt", "--trees", str(TREES), "--max-depth", str(DEPTH),
        "--max-bins", "32", "--run-name", "trees", "--out", str(out),
    )  # fmt: skip

    said = launched.stdout + launched.stderr
    assert launched.returncode == 0, said
    assert f"tree {TREES}/{TREES}:" in said  # the ServerApp's progress, streamed
    assert f"completed, {TREES}/{TREES} trees" in said and "held-out AUC" in said
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["status"], metrics["model"], metrics["trees"]) == ("completed", "gbdt", TREES)
    assert {level["tree"] for level in metrics["levels"]} == set(range(TREES))
    assert all(level["depth"] < DEPTH for level in metrics["levels"])
    assert sorted(metrics["banks"]) == BANKS
    assert metrics["params"]["max_bins"] == 32
    assert metrics["secure_aggregation"]["banks"] == len(BANKS)
    assert metrics["final_banks"] == len(BANKS) and metrics["final_missing"] is None
    assert 0.6 < metrics["final"]["auc"] <= 1.0 and 0 < metrics["final"]["ks"] <= 1.0
    consortium = running_consortium.consortium
    _check_the_model(out, consortium.paths.run("trees"), files["bank-a"], consortium.schema_path)
    # The ServerApp signed the package and wrote the report; launch collected both.
    assert 'id="trees"' in (out / "report.html").read_text(encoding="utf-8")
    signer = running_consortium.bundle(BANKS[0]) / "coordinator.pub"
    verified = fedcredit("model", "verify", str(out / "model"), "--signer", str(signer))
    assert "intact" in verified.stdout, verified.stdout

    listed = fedcredit("coordinator", "list", root).stdout
    assert f"{TREES}/{TREES} trees" in listed

    refused = _launch(root, "--resume", "trees")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "boosting run" in refused.stderr and "afresh" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def _check_the_model(out: Path, run_dir: Path, rows: Path, schema: Path) -> None:
    """XGBoost loads the exported trees and gives the margins of the run's own trees (its
    checkpoint in the consortium folder) on a bank's validated rows."""
    from coordinator.app.boosting_checkpoint import CHECKPOINT_FILE, load_boosting_checkpoint
    from credit.gbdt import BoostingParams, bins_from_encoder
    from credit.loading import load_bank_csv
    from credit.schema import load_schema

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    encoder = run_encoder(out)
    trees = load_boosting_checkpoint(
        run_dir / CHECKPOINT_FILE,
        params=BoostingParams.model_validate(metrics["params"]),
        bins=bins_from_encoder(encoder),
    )
    frame = load_bank_csv(rows, load_schema(schema)).frame
    check_xgboost_predicts_our_margins(out, frame, trees.ensemble())

"""Checks of a federated boosting run's outputs, shared by the in-process and engine tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from coordinator.app.boosting_checkpoint import CHECKPOINT_FILE
from coordinator.app.boosting_run import ENCODER_FILE, MODEL_CARD_FILE, XGBOOST_FILE
from coordinator.app.run_files import RunFiles
from credit.encoding import FeatureEncoder
from credit.gbdt import Ensemble, bins_from_encoder, raw_matrix, train_central
from participant.guard.in_process import guard_for
from simulations.engine import SimulationPlan

__all__ = [
    "central_ensemble",
    "check_trees_equal_central_training",
    "check_xgboost_predicts_our_margins",
    "run_encoder",
    "small_private_run",
]


def run_encoder(out: Path) -> FeatureEncoder:
    """The binned encoder a boosting run in ``out`` wrote (its edges are the run's bins)."""
    return FeatureEncoder.model_validate_json((out / "model" / ENCODER_FILE).read_text())


def central_ensemble(plan: SimulationPlan, out: Path) -> Ensemble:
    """Central training on ``plan``'s banks' pooled training rows, on the bins of the run
    in ``out``, with the run's hyperparameters and seed."""
    encoder = run_encoder(out)
    bins = bins_from_encoder(encoder)
    train = pd.concat([guard_for(settings).bank.train for settings in plan.banks])
    target = guard_for(plan.banks[0]).bank.schema.target
    return train_central(
        bins.codes(raw_matrix(train, encoder)),
        train[target].to_numpy(dtype=np.int64),
        plan.config.boosting_params(),
        np.random.default_rng(plan.config.seed),
        bins=bins,
    )


def check_trees_equal_central_training(out: Path, central: Ensemble, *, trees: int) -> None:
    """The run's trees (its checkpoint) are central training's: splits, thresholds, leaves."""
    document = json.loads((out / CHECKPOINT_FILE).read_text())
    assert len(document["trees"]) == trees
    assert document["base_score"] == central.base_score
    for ours, theirs in zip(document["trees"], central.trees, strict=True):
        for field in ("split_features", "split_bins", "thresholds", "default_left", "values"):
            assert tuple(ours[field]) == getattr(theirs, field), field


def check_xgboost_predicts_our_margins(out: Path, rows: pd.DataFrame, ours: Ensemble) -> None:
    """XGBoost loads ``model/xgboost.json`` and gives ``ours``' margins on ``rows``; the
    model card names the matrix's columns in order and every feature's importance."""
    import xgboost

    encoder = run_encoder(out)
    matrix = raw_matrix(rows, encoder)
    booster = xgboost.Booster(model_file=str(out / "model" / XGBOOST_FILE))
    data = xgboost.DMatrix(matrix, missing=np.nan, feature_names=list(encoder.features))
    theirs = booster.predict(data, output_margin=True)
    np.testing.assert_allclose(theirs, ours.margin(matrix), atol=2e-6)
    card = json.loads((out / "model" / MODEL_CARD_FILE).read_text())
    assert card["model"] == "gbdt"
    assert [column["name"] for column in card["input"]["columns"]] == list(encoder.features)
    assert set(card["feature_importance"]) == set(encoder.features)


def small_private_run(out: Path, *, rows: int = 3000) -> RunFiles:
    """A small boosting run in this process, every output written (report.html too).

    The real ServerApp body and ClientApps over the fake Grid: the first ``rows`` rows
    of the embedded data in 3 banks, 3 trees of depth 3 on 16 bins, secure aggregation
    and a budget of epsilon 4 per bank with the noise keyed from the seed (the same
    run every time). Seconds, where the embedded data's 30,000 rows take a minute.
    """
    from credit.datasets import embedded_data_path
    from credit.run_config import RunConfig
    from privacy.budget import PrivacyBudget
    from simulations.budgets import BudgetPolicy
    from simulations.engine import plan_simulation
    from simulations.settings import PartitionSettings
    from tests.support.consortium import run_in_process

    out.mkdir(parents=True, exist_ok=True)
    data = out / "applicants.csv"
    pd.read_csv(embedded_data_path(), nrows=rows, dtype=str).to_csv(data, index=False)
    config = RunConfig(
        out_dir=str(out), model="gbdt", trees=3, max_depth=3, max_bins=16, seed=5,
        secure_aggregation=True,
    )  # fmt: skip
    plan = plan_simulation(
        config,
        n_banks=3,
        partition=PartitionSettings(data=str(data)),
        budgets=BudgetPolicy(default=PrivacyBudget(max_epsilon=4.0)),
        reproducible_noise=True,
    )
    return run_in_process(plan)

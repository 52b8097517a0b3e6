"""Run folders to report on: one with every section's data, one with as little as possible.

The full run's governance sections are made by :mod:`credit.governance` itself
(``as_dict``/``to_dict``, ``write_scorecard_csv``) on seeded synthetic scores, so the
report reads exactly the forms the issue's output contract gives them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from coordinator.app.run_state import ScoreHistograms
from credit.encoding import StatsSource, fit_encoder
from credit.governance import (
    BinLayout,
    Grouping,
    build_scorecard,
    calibration_report,
    calibration_sums,
    count_bins,
    fairness_report,
    fairness_sums,
    woe_table,
    write_scorecard_csv,
)
from credit.messages import LedgerEvent, LedgerSummary, Refusal
from credit.metrics import credit_metrics, summarize_scores
from credit.model_card import SCORECARD_FILE, save_model
from credit.model_spec import ModelSpec
from credit.models import build_model
from credit.run_config import RunConfig
from credit.schema import load_schema

RunFolder = Callable[..., Path]

ROWS = 3000


def _scores(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic held-out rows: outcome, predicted probability, one feature, a group."""
    rng = np.random.default_rng(seed)
    feature = rng.normal(size=ROWS)
    group = rng.integers(1, 3, size=ROWS)
    log_odds = -1.4 + 0.9 * feature + 0.2 * (group == 2)
    outcome = (rng.random(ROWS) < 1 / (1 + np.exp(-log_odds))).astype(np.int64)
    predicted = 1 / (1 + np.exp(-(log_odds + rng.normal(scale=0.3, size=ROWS))))
    return outcome, predicted, feature, group


def _rounds() -> list[dict[str, Any]]:
    """Four rounds: scored, aborted, not evaluated (bank-2 dropped), scored (bank-3 refused)."""
    base = {"train_loss": 0.47, "refused": [], "dropped": [], "aborted": None, "seconds": 1.2}
    return [
        {**base, "round": 1, "auc": 0.71, "ks": 0.35, "loss": 0.48,
         "banks": ["bank-1", "bank-2", "bank-3"], "max_epsilon_spent": 0.3},
        {**base, "round": 2, "auc": None, "ks": None, "loss": None, "train_loss": None,
         "banks": [], "aborted": "round 2: 1 bank left after dropouts, 2 needed",
         "max_epsilon_spent": 0.3},
        {**base, "round": 3, "auc": None, "ks": None, "loss": None,
         "banks": ["bank-1", "bank-3"], "dropped": ["bank-2"], "max_epsilon_spent": 0.6},
        {**base, "round": 4, "auc": 0.74, "ks": 0.38, "loss": 0.46,
         "banks": ["bank-1", "bank-2"], "refused": ["bank-3"], "max_epsilon_spent": 0.6},
    ]  # fmt: skip


def _privacy() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    ledger = LedgerSummary(
        bank="bank-3",
        epsilon=0.6,
        delta=1e-5,
        max_epsilon=0.7,
        accountant="rdp",
        events=(
            LedgerEvent(
                round=1,
                noise_multiplier=1.1,
                sample_rate=0.01,
                steps=80,
                max_grad_norm=1.0,
                kind="dp-sgd",
            ),
        ),
    )
    refusal = Refusal(
        bank="bank-3",
        reason="PrivacyBudgetExceeded",
        spent=0.6,
        requested=0.9,
        maximum=0.7,
        server_round=4,
    )
    return {"bank-3": ledger.document()}, [refusal.document()]


def _governance(seed: int, model: Path) -> dict[str, Any]:
    """calibration, fairness and woe_iv as the governance types write them; scorecard.csv."""
    outcome, predicted, feature, group = _scores(seed)
    sex = Grouping(column="SEX", levels=(1, 2))
    fairness = fairness_report(fairness_sums(group, sex, predicted, outcome, cutoff=0.5), sex)
    limit = BinLayout.numeric("LIMIT_BAL", [-1.0, 0.0, 1.0])
    marriage = BinLayout.categorical("MARRIAGE", [1, 2, 3], has_missing=True)
    tables = [
        woe_table(count_bins(np.searchsorted([-1.0, 0.0, 1.0], feature), outcome, limit)),
        woe_table(count_bins(group - 1 + (np.arange(ROWS) % 7 == 0), outcome, marriage)),
    ]
    scorecard = build_scorecard(
        tables, coefficients={"LIMIT_BAL": 0.9, "MARRIAGE": 0.5}, intercept=-1.3
    )
    write_scorecard_csv(scorecard, model / SCORECARD_FILE)
    return {
        "calibration": calibration_report(calibration_sums(predicted, outcome)).as_dict(),
        "fairness": {"SEX": fairness.as_dict()},
        "woe_iv": {table.feature: table.to_dict() for table in tables},
    }


def _model_card(model: Path, config: RunConfig, final: dict[str, Any]) -> None:
    schema = load_schema()
    encoder = fit_encoder(schema, source=StatsSource.PUBLIC, quantile_bins=config.quantile_bins)
    spec = ModelSpec(kind=config.model, n_inputs=encoder.n_inputs, hidden_sizes=(8,))
    save_model(
        model,
        build_model(spec, seed=0),
        spec=spec,
        encoder=encoder,
        schema_name=schema.name,
        training=config.to_flower(),
        metrics=final,
    )


def _metrics_document(config: RunConfig, seed: int) -> dict[str, Any]:
    outcome, predicted, _, _ = _scores(seed)
    summary = summarize_scores(predicted, outcome, n_bins=config.score_bins)
    final = credit_metrics(summary).as_dict()
    privacy, refusals = _privacy()
    return {
        "config": config.to_flower(),
        "schema": {"name": "uci-default-credit-card", "sha256": "0" * 64},
        "rounds": _rounds(),
        "final": final,
        "score_histograms": ScoreHistograms.settled(4, summary).document(),
        "participants": {f"bank-{i}": {"n_train": 4000 + i} for i in (1, 2, 3)},
        "privacy": privacy,
        "refusals": refusals,
        "secure_aggregation": {"protocol": "SecAgg", "banks": 3, "threshold": 2},
        "status": "completed",
        "wall_seconds": 12.5,
    }


def write_run(
    out: Path,
    *,
    governance: bool = True,
    model_card: bool = True,
    edit: Callable[[dict[str, Any]], None] | None = None,
    seed: int = 7,
) -> Path:
    """Write a run folder (``metrics.json`` and ``model/``) into ``out``; return ``out``.

    ``governance`` adds the calibration, fairness and WoE/IV sections and
    ``model/scorecard.csv``; ``edit`` changes the document before it is written.
    """
    config = RunConfig(out_dir=str(out), rounds=4, run_name="q3-review")
    model = out / "model"
    model.mkdir(parents=True)
    document = _metrics_document(config, seed)
    if governance:
        document.update(_governance(seed, model))
    if model_card:
        _model_card(model, config, document["final"])
    if edit is not None:
        edit(document)
    (out / "metrics.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return out


@pytest.fixture
def run_folder(tmp_path: Path) -> RunFolder:
    """Call with :func:`write_run`'s keywords; each call writes a new folder."""
    count = 0

    def make(**options: Any) -> Path:
        nonlocal count
        count += 1
        return write_run(tmp_path / f"run-{count}", **options)

    return make

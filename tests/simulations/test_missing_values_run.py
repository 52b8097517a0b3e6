"""Consortia that train on files with missing values and special codes, in this process.

The data are the embedded rows blanked as :mod:`tests.support.missing_data` says
(20 % of ``LIMIT_BAL`` and 10 % of ``PAY_2`` missing, some ``PAY_AMT1`` special
codes); the schema allows them. The whole run is real (set-up release, secure
aggregation, DP-SGD, evaluation, the saved model) with Flower's transport replaced by
:class:`tests.support.fake_grid.FakeGrid`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from credit.encoding import EncodingKind
from credit.loading import load_bank_csv
from credit.metrics import ScoreSummary, credit_metrics, summarize_scores
from credit.model_card import load_model
from credit.run_config import RunConfig
from credit.schema import load_schema
from participant.guard.bank import held_out_rows
from participant.guard.settings import EvaluationPolicy, HoldOut
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation
from simulations.settings import PartitionScheme, PartitionSettings
from tests.support.consortium import run_in_process
from tests.support.missing_data import Blanked, write_blanked

N_ROWS = 6_000


@pytest.fixture(scope="module")
def blanked(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Blanked:
    return write_blanked(tmp_path_factory.mktemp("blanked"), embedded_frame, n_rows=N_ROWS)


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


def test_a_private_secure_run_trains_on_missing_values_and_special_codes(
    tmp_path: Path, blanked: Blanked
) -> None:
    """Three banks, secure aggregation, a budget each: the set-up histograms (regular
    values only) are noisy and charged, every round trains, the spend verifies.

    No AUC bound: under budgets the reported metrics come from noisy releases of 1,200
    held-out rows per bank (the quality check is the next, non-private test)."""
    config = RunConfig(
        out_dir=str(tmp_path), rounds=2, batch_size=256, schema=str(blanked.schema), seed=2
    )
    plan = plan_simulation(
        config,
        n_banks=3,
        partition=PartitionSettings(data=str(blanked.data)),
        budgets=BudgetPolicy(default=PrivacyBudget(max_epsilon=2.0)),
    )

    run_in_process(plan)

    document = _metrics(tmp_path)
    assert document["status"] == "completed" and document["refusals"] == []
    assert [r["banks"] for r in document["rounds"]] == [["bank-1", "bank-2", "bank-3"]] * 2
    for ledger in document["privacy"].values():
        assert 0.0 < ledger["epsilon"] <= 2.0
        assert [e["kind"] for e in ledger["events"]].count("gaussian-release") == 1
    checks = verify_run(tmp_path)
    assert all(check.ok for check in checks), [check.problems for check in checks]
    names = load_model(tmp_path / "model").encoder.input_names
    assert "LIMIT_BAL[missing]" in names and "PAY_2[missing]" in names
    assert {"PAY_AMT1[special 96]", "PAY_AMT1[special 98]"} <= set(names)


def test_banks_split_by_a_column_with_missing_values_train_standardized(
    tmp_path: Path, blanked: Blanked
) -> None:
    """One bank per ``PAY_2`` value, the rows missing it a bank of their own."""
    config = RunConfig(
        out_dir=str(tmp_path),
        rounds=1,
        schema=str(blanked.schema),
        encoding=EncodingKind.STANDARDIZED,
        secure_aggregation=False,
    )
    partition = PartitionSettings(
        data=str(blanked.data), partition=PartitionScheme.COLUMN, partition_column="PAY_2"
    )

    plan = plan_simulation(config, partition=partition)
    run_in_process(plan)

    names = [bank.bank_name for bank in plan.banks]
    assert names == ["PAY_2=-2", "PAY_2=-1", "PAY_2=0", "PAY_2=2", "PAY_2=missing", "PAY_2=other"]
    missing_bank = plan.partitions[names.index("PAY_2=missing")]
    np.testing.assert_array_equal(missing_bank.rows, np.flatnonzero(blanked.missing_pay_2))
    document = _metrics(tmp_path)
    assert document["status"] == "completed"
    assert set(document["participants"]) == set(names)
    assert 0.6 < document["final"]["auc"] < 0.9
    encoder = load_model(tmp_path / "model").encoder
    assert encoder.kind is EncodingKind.STANDARDIZED
    assert encoder.input_names[:2] == ["LIMIT_BAL", "LIMIT_BAL[missing]"]
    # The banks' files (missing values written as empty cells) reload, hold out the
    # same rows, and the saved model scores them to the metrics the run reported. The
    # run's come from the banks' score histograms, so they are compared as histograms
    # (one round's scores lie within a few of the 100 bins), and from the banks that
    # hold out enough rows to release an evaluation (PAY_2=other holds out fewer).
    schema = load_schema(blanked.schema)
    model = load_model(tmp_path / "model")
    holdout = HoldOut.for_simulation(fraction=config.test_fraction, seed=config.seed)
    summaries = []
    for bank in plan.banks:
        frame = load_bank_csv(bank.data_path, schema).frame
        test = frame[held_out_rows(frame, schema, holdout)]
        if len(test) < EvaluationPolicy().min_holdout_rows:
            continue
        labels = test[schema.target].to_numpy()
        summaries.append(summarize_scores(model.predict_proba(test), labels, config.score_bins))
    assert len(summaries) == len(names) - 1
    pooled = credit_metrics(ScoreSummary.combine(summaries))
    assert pooled.auc == pytest.approx(document["final"]["auc"], abs=1e-9)
    assert pooled.n_rows == document["final"]["n_rows"]

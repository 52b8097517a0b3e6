"""K-fold cross-validation over customers (``fedcredit simulate --folds K``), in this process.

The folds' plans and the summary are checked directly; whole cross-validations run
through the in-process consortium (:mod:`tests.support.consortium`), and one through
the command line with the engine's runner replaced by the in-process one
(``test_cross_validation_engine.py`` runs the same command through Ray).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import simulations.engine
from cli.app import app
from coordinator.app.run_files import RunFiles
from credit.errors import ConfigError
from credit.run_config import RunConfig
from participant.guard.bank import BankSource, prepare_bank
from participant.guard.settings import Fold, HoldOut
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.cross_validation import (
    MetricSummary,
    fold_config,
    folds_of,
    run_cross_validation,
    summarise,
)
from simulations.engine import SimulationPlan, plan_bank_files, plan_simulation
from simulations.settings import PartitionSettings
from tests.support.checks import check_cross_validation_output
from tests.support.consortium import run_in_process

CUSTOMERS = 1500
"""Rows of the small data set the in-process cross-validations split into 3 banks:
each bank holds out about 167 customers per fold of 3, above the 50 below which a
bank releases no evaluation."""


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("cv-data") / "data.csv"
    embedded_frame.iloc[:CUSTOMERS].to_csv(path, index=False)
    return path


def _planner(
    data: Path, banks: int = 3, **options: Any
) -> Callable[[RunConfig, Fold], SimulationPlan]:
    """Plans every fold as ``fedcredit simulate --data DATA --banks BANKS`` does."""

    def plan(config: RunConfig, fold: Fold) -> SimulationPlan:
        return plan_simulation(
            config, banks, partition=PartitionSettings(data=str(data)), fold=fold, **options
        )

    return plan


def test_the_summary_is_numpys_mean_and_sample_sd_of_the_folds() -> None:
    rng = np.random.default_rng(14)
    finals = [{"auc": a, "ks": k, "n_rows": n} for a, k, n in rng.uniform(0.2, 0.9, (5, 3))]

    summary = summarise(finals)

    assert list(summary) == ["auc", "ks", "n_rows"]
    for name, metric in summary.items():
        values = np.array([final[name] for final in finals])
        assert metric.per_fold == tuple(values)
        assert metric.mean == pytest.approx(np.mean(values), rel=1e-14)
        assert metric.sd == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        assert metric.sd != pytest.approx(np.std(values, ddof=0), rel=1e-3)  # not ddof 0


def test_the_summary_refuses_folds_that_report_other_metrics() -> None:
    with pytest.raises(ValueError, match=r"fold 1 does not report the metrics \['ks'\]"):
        summarise([{"auc": 0.7, "ks": 0.4}, {"auc": 0.8}])
    with pytest.raises(ValueError, match="needs two values; got 1"):
        MetricSummary.of([0.7])


@pytest.mark.parametrize("count", [1, 0, -2])
def test_fewer_than_two_folds_are_refused(count: int) -> None:
    with pytest.raises(ConfigError, match=rf"^--folds: must be at least 2 .*; got {count}$"):
        folds_of(count)


def test_the_folds_hold_out_disjoint_customers_and_every_customer_once(
    tmp_path: Path, small_data: Path
) -> None:
    """Fold k's banks together hold out fold k; the K folds partition the customers."""
    base = RunConfig(out_dir=str(tmp_path), seed=5, secure_aggregation=False)
    held_out: list[set[str]] = []
    for fold in folds_of(3):
        plan = _planner(small_data)(fold_config(base, fold), fold)
        assert plan.config.test_fraction == 1 / 3
        assert {bank.holdout.fold for bank in plan.banks} == {fold}
        ids = [
            set(prepare_bank(bank.source(), bank.holdout).test["ID"].tolist())
            for bank in plan.banks
        ]
        assert sum(len(part) for part in ids) == len(set().union(*ids))  # banks hold no twins
        held_out.append(set().union(*ids))
    for k, fold in enumerate(held_out):
        assert abs(len(fold) - CUSTOMERS / 3) < 100, len(fold)
        assert all(fold.isdisjoint(other) for other in held_out[k + 1 :])
    assert sum(len(fold) for fold in held_out) == CUSTOMERS


def test_a_fold_run_asking_for_another_test_fraction_is_refused(
    tmp_path: Path, small_data: Path
) -> None:
    config = RunConfig(out_dir=str(tmp_path / "out"), secure_aggregation=False)
    with pytest.raises(
        ConfigError,
        match=r"^--folds: fold 0 of 3 holds out 1/3 of every bank's rows; the run's "
        r"test-fraction is 0\.2: run it with test-fraction 1/3$",
    ):
        _planner(small_data)(config, Fold(index=0, count=3))
    assert not (tmp_path / "out").exists()


def test_more_folds_than_a_banks_rows_are_refused_before_anything_is_written(
    tmp_path: Path, write_bank_csv: Callable[..., Path]
) -> None:
    files = [write_bank_csv(200, name="big"), write_bank_csv(60, start=200, name="small")]
    base = RunConfig(out_dir=str(tmp_path / "out"), secure_aggregation=False)
    fold = Fold(index=0, count=61)
    with pytest.raises(
        ConfigError,
        match=r"^--folds: 61 folds need at least 61 rows at every bank; bank 'small' has 60: "
        r"use --folds 60 or fewer$",
    ):
        plan_bank_files(fold_config(base, fold), files, fold=fold)
    assert not (tmp_path / "out").exists()
    fold = Fold(index=59, count=60)
    plan = plan_bank_files(fold_config(base, fold), files, fold=fold)
    assert [bank.holdout.fold for bank in plan.banks] == [fold, fold]


@pytest.fixture(scope="module")
def three_folds(tmp_path_factory: pytest.TempPathFactory, small_data: Path) -> Path:
    """3 folds x 3 banks x 1 round on 1,500 customers, in the clear."""
    out = tmp_path_factory.mktemp("cv")
    config = RunConfig(out_dir=str(out), rounds=1, seed=2, secure_aggregation=False)
    run_cross_validation(config, 3, plan_fold=_planner(small_data), run_fold=run_in_process)
    return out


def test_a_cross_validation_writes_k_runs_and_their_summary(three_folds: Path) -> None:
    """In-process ``test_cross_validation_engine``: the output contract."""
    check_cross_validation_output(three_folds, folds=3, customers=CUSTOMERS)


def _validation_rows(fold_dir: Path, fold: Fold) -> int:
    """The fold's banks' validation parts, as their guards split them (seed 2)."""
    holdout = HoldOut.for_simulation(
        fraction=fold.fraction, seed=2, fold=fold, validation_fraction=0.2
    )
    return sum(
        len(prepare_bank(BankSource(name=path.stem, data_path=path), holdout).validation)
        for path in sorted((fold_dir / "banks").glob("*.csv"))
    )


def test_every_fold_trains_on_the_other_folds_customers(three_folds: Path) -> None:
    """A bank's training rows in fold k are its rows outside fold k but its validation part."""
    rows = [json.loads((three_folds / f"fold-{k}" / "metrics.json").read_text()) for k in range(3)]
    trained = [sum(p["n_train"] for p in document["participants"].values()) for document in rows]
    held_out = [document["final"]["n_rows"] for document in rows]
    validation = [
        _validation_rows(three_folds / f"fold-{k}", Fold(index=k, count=3)) for k in range(3)
    ]
    assert all(v > 0 for v in validation)
    totals = zip(trained, held_out, validation, strict=True)
    assert [t + h + v for t, h, v in totals] == [CUSTOMERS] * 3


def test_each_fold_spends_its_own_budget_in_its_own_ledgers(
    tmp_path: Path, small_data: Path
) -> None:
    """Under budgets every fold is a run of its own: its ledgers, its spend, verified.

    (Batch 8 of about 375 training rows per bank keeps the banks' noise calibration quick.)
    """
    config = RunConfig(out_dir=str(tmp_path), rounds=1, batch_size=8, secure_aggregation=False)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=2.0))
    planner = _planner(small_data, banks=2, budgets=policy)

    result = run_cross_validation(config, 2, plan_fold=planner, run_fold=run_in_process)

    assert result.folds == 2 and (tmp_path / "metrics.json").is_file()
    for k in range(2):
        run = tmp_path / f"fold-{k}"
        ledgers = sorted(path.name for path in (run / "ledgers").glob("*.jsonl"))
        assert ledgers == ["bank-1.jsonl", "bank-2.jsonl"]
        privacy = json.loads((run / "metrics.json").read_text())["privacy"]
        assert all(0 < ledger["epsilon"] <= 2.0 for ledger in privacy.values())
        checks = verify_run(run)
        assert all(check.ok for check in checks), [check.problems for check in checks]
    assert not (tmp_path / "ledgers").exists()  # no ledger is shared by two folds


def test_the_command_line_runs_the_folds_and_prints_mean_and_sd(
    tmp_path: Path, small_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fedcredit simulate --folds 3``, each fold run in this process instead of on Ray."""

    def in_process(plan: SimulationPlan, **callbacks: Any) -> RunFiles:
        callbacks.pop("cpus")
        callbacks.pop("ray_address")
        return run_in_process(plan, **callbacks)

    monkeypatch.setattr(simulations.engine, "run_simulated_consortium", in_process)
    out = tmp_path / "out"
    arguments = ["--data", str(small_data), "--banks", "3", "--rounds", "1", "--seed", "2",
                 "--write-bank-files"]  # fmt: skip

    result = CliRunner().invoke(app, ["simulate", *arguments, "--folds", "3", "--out", str(out)])

    assert result.exit_code == 0, result.output
    check_cross_validation_output(out, folds=3, customers=CUSTOMERS)
    lines = result.stdout.splitlines()
    starts = [line for line in lines if line.startswith("fold ") and "holds out" in line]
    ends = [line for line in lines if line.startswith("fold ") and "completed: AUC" in line]
    assert len(starts) == len(ends) == 3
    assert starts[1].startswith("fold 1 (2 of 3): every bank holds out the customers with ")
    assert "[0.3333, 0.6667)" in starts[1]
    summary = json.loads((out / "metrics.json").read_text())["cross_validation"]["auc"]
    assert "mean ± sd" in result.stdout
    assert f"{summary['mean']:.4f} ± {summary['sd']:.4f}" in result.stdout

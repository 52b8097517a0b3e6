"""End to end through Flower's Simulation Engine (Ray backend): real ServerApp, real ClientApps."""

from __future__ import annotations

from pathlib import Path

import pytest

from credit.run_config import RunConfig
from credit.schema import DatasetSchema
from simulations.engine import plan_simulation, run_simulated_consortium
from tests.support.checks import (
    check_audit_log_of_two_bank_run,
    check_saved_model_scores_like_the_run,
    check_two_bank_run_metrics,
)

pytestmark = pytest.mark.slow

TwoBankRun = tuple[RunConfig, Path, list[str]]


@pytest.fixture(scope="module")
def two_bank_run(tmp_path_factory: pytest.TempPathFactory) -> TwoBankRun:
    """2 banks x 2 rounds, seed 3, in the clear (run in process in the fast tier; secure
    aggregation needs 3 banks: ``test_secure_engine``)."""
    out = tmp_path_factory.mktemp("sim")
    config = RunConfig(rounds=2, out_dir=str(out), seed=3, secure_aggregation=False)
    plan = plan_simulation(config, n_banks=2)
    lines: list[str] = []
    run_simulated_consortium(
        plan,
        on_round=lambda result, total: lines.append(f"{result.server_round}/{total}"),
        on_event=lines.append,
    )
    return config, out, lines


@pytest.mark.smoke
def test_two_banks_two_rounds_write_complete_metrics(two_bank_run: TwoBankRun) -> None:
    """The fast tier's one run through Ray (``smoke``): the engine's wiring still works."""
    _, out, lines = two_bank_run
    check_two_bank_run_metrics(out, lines)


def test_saved_model_reloads_and_scores_like_the_run(
    two_bank_run: TwoBankRun, schema: DatasetSchema
) -> None:
    """The model file scores the banks' test rows to the AUC the run reported."""
    config, out, _ = two_bank_run
    check_saved_model_scores_like_the_run(out, config, schema)


def test_the_run_leaves_a_verified_audit_log_with_one_entry_per_round(
    two_bank_run: TwoBankRun,
) -> None:
    """OUT/audit/coordinator.jsonl verifies, and its hashes match the run's own files."""
    _, out, _ = two_bank_run
    check_audit_log_of_two_bank_run(out)

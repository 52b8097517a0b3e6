"""``--reproducible-noise``: a private simulation repeats exactly at the same seed.

Small DP runs (3 banks, 2 rounds, secure aggregation, every bank with a budget) in
this process (:mod:`tests.support.consortium`): with the flag, the same seed gives the
same metrics and the same model; without it, or at another seed, they differ. The
slow test runs the same on Flower's Simulation Engine, where a bank's messages may be
answered in different Ray workers, and checks what the run's outputs say.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from credit.run_config import RunConfig
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import SimulationPlan, plan_simulation
from simulations.noise import REPRODUCIBLE, UNPREDICTABLE, record_noise
from simulations.settings import SIMULATION_FILE, PartitionSettings
from tests.support.consortium import consortium_grid, run_in_process

BANKS = 3
ROUNDS = 2


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, embedded_frame: pd.DataFrame) -> Path:
    """The embedded data set's first 3,000 rows: 1,000 per bank (quick, still DP-trainable)."""
    path = tmp_path_factory.mktemp("data") / "credit.csv"
    embedded_frame.iloc[:3000].to_csv(path, index=False)
    return path


def _plan(out: Path, data: Path, *, seed: int, reproducible: bool) -> SimulationPlan:
    config = RunConfig(out_dir=str(out), rounds=ROUNDS, seed=seed, batch_size=64, local_steps=10)
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    return plan_simulation(
        config,
        n_banks=BANKS,
        partition=PartitionSettings(data=str(data)),
        budgets=policy,
        reproducible_noise=reproducible,
    )


def _outcome(out: Path) -> dict[str, Any]:
    """What must repeat: every round's and the final metrics, the ledgers, the model."""
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    state = torch.load(out / "model" / "model.pt", weights_only=True)
    return {
        "final": metrics["final"],
        "rounds": [(r.get("auc"), r.get("ks"), r.get("loss")) for r in metrics["rounds"]],
        "events": {  # the run key aside: Flower's run id, new at every run
            bank: [{k: v for k, v in event.items() if k != "run"} for event in summary["events"]]
            for bank, summary in metrics["privacy"].items()
        },
        "model": {name: tensor.tolist() for name, tensor in state.items()},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, data: Path) -> dict[str, Path]:
    """Four in-process runs: flagged twice at seed 0, unflagged at seed 0, flagged at 1.

    Each is another Flower run id, as every run on the Simulation Engine is (a run
    without a name is keyed by it): the noise must not depend on it.
    """
    settings = {
        "flagged": (0, True),
        "flagged-again": (0, True),
        "unflagged": (0, False),
        "other-seed": (1, True),
    }
    outs = {}
    for run_id, (name, (seed, reproducible)) in enumerate(settings.items(), start=11):
        out = tmp_path_factory.mktemp(name)
        plan = _plan(out, data, seed=seed, reproducible=reproducible)
        run_in_process(plan, grid=consortium_grid(plan, run_id=run_id))
        outs[name] = out
    return outs


def test_same_seed_with_the_flag_repeats_metrics_and_model(runs: dict[str, Path]) -> None:
    first, again = _outcome(runs["flagged"]), _outcome(runs["flagged-again"])
    assert first["final"] is not None
    assert first == again


def test_without_the_flag_the_same_seed_gives_another_model(runs: dict[str, Path]) -> None:
    first, unflagged = _outcome(runs["flagged"]), _outcome(runs["unflagged"])
    assert first["events"] == unflagged["events"]  # the same releases, charged alike ...
    assert first["model"] != unflagged["model"]  # ... with other noise
    assert first["final"] != unflagged["final"]


def test_another_seed_gives_another_model(runs: dict[str, Path]) -> None:
    assert _outcome(runs["flagged"])["model"] != _outcome(runs["other-seed"])["model"]


def test_the_plan_records_how_the_noise_was_keyed(runs: dict[str, Path]) -> None:
    recorded = {
        name: json.loads((out / SIMULATION_FILE).read_text(encoding="utf-8"))["noise"]
        for name, out in runs.items()
    }
    assert recorded == {
        "flagged": REPRODUCIBLE,
        "flagged-again": REPRODUCIBLE,
        "unflagged": UNPREDICTABLE,
        "other-seed": REPRODUCIBLE,
    }
    assert REPRODUCIBLE == "reproducible from seed (research only)"


def test_the_accounting_is_unchanged_and_verifies(runs: dict[str, Path]) -> None:
    checks = verify_run(runs["flagged"])
    assert [check.problems for check in checks] == [()] * len(checks)
    assert all(check.ok for check in checks)


def test_a_reproducible_runs_metrics_and_report_say_research_only(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """:func:`record_noise` (what the engine calls after a flagged run) on a run's files."""
    out = Path(shutil.copytree(runs["flagged"], tmp_path / "run"))
    report = out / "report.html"
    assert "reproducible" not in report.read_text(encoding="utf-8")
    record_noise(out / "metrics.json", out / "model", report)
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["noise"] == REPRODUCIBLE
    assert f"noise: {REPRODUCIBLE}" in report.read_text(encoding="utf-8")


@pytest.mark.slow
def test_on_the_simulation_engine_a_flagged_run_repeats_and_says_so(
    tmp_path: Path, data: Path
) -> None:
    """Two flagged Ray runs at one seed: same metrics (exact ones too) and model."""
    from simulations.engine import run_simulated_consortium

    outcomes = []
    for name in ("first", "second"):
        out = tmp_path / name
        run_simulated_consortium(_plan(out, data, seed=0, reproducible=True), cpus=2)
        simulation = json.loads((out / SIMULATION_FILE).read_text(encoding="utf-8"))
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        assert simulation["noise"] == metrics["noise"] == REPRODUCIBLE
        assert f"noise: {REPRODUCIBLE}" in (out / "report.html").read_text(encoding="utf-8")
        assert all(check.ok for check in verify_run(out))
        outcomes.append((_outcome(out), simulation["exact_final"]))
    assert outcomes[0] == outcomes[1]

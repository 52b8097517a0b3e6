"""Strategies in whole in-process consortia: a server optimiser and FedProx, end to end.

The real ServerApp body, RunDriver, ClientApp handlers, secure aggregation and DP-SGD
over :class:`tests.support.fake_grid.FakeGrid` (:mod:`tests.support.consortium`).

* Server optimisers (FedAdam here): the coordinator steps from the aggregated mean, so
  after one round the FedAdam run's model is the server step applied to the FedAvg
  run's model (same banks, same seed: the same updates); under secure aggregation a run
  resumed from its checkpoint equals the uninterrupted one to the last bit, which needs
  the moments in the checkpoint.
* FedProx: mu reaches every bank through the train messages and changes the model;
  under DP-SGD and secure aggregation every bank's ledger is the FedAvg run's (the
  term changes no charged mechanism) and verifies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord

from coordinator.app.checkpoint import CHECKPOINT_DIR, load_checkpoint
from coordinator.app.server_optimizer import ServerOptimizer
from credit.models import build_model
from credit.run_config import RunConfig
from credit.strategy import Strategy
from privacy.budget import PrivacyBudget
from privacy.verify import verify_run
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation
from tests.support.checks import (
    check_checkpoint_completed_round,
    check_resumed_run_equals_the_uninterrupted_run,
)
from tests.support.consortium import consortium_grid, run_in_process


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


def _config(out: Path, **settings: Any) -> RunConfig:
    settings.setdefault("validation_fraction", 0.0)
    return RunConfig(out_dir=str(out), seed=1, **settings)


def _run(out: Path, *, budgets: BudgetPolicy | None = None, **settings: Any) -> dict[str, Any]:
    plan = plan_simulation(_config(out, **settings), n_banks=3, budgets=budgets)
    run_id = 2 if plan.config.resume else 1  # a resumed run is a new Flower run
    run_in_process(plan, grid=consortium_grid(plan, run_id=run_id))
    return _metrics(out)


def _checkpoint_arrays(out: Path, config: RunConfig) -> ArrayRecord:
    state, _ = load_checkpoint(out, config)
    return state.arrays


def _assert_same_arrays(got: ArrayRecord, want: ArrayRecord) -> None:
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_array_equal(got[name].numpy(), want[name].numpy())


ONE_PLAIN_ROUND = {"rounds": 1, "secure_aggregation": False}
"""The runs compared model to model: in the clear, without DP, every bank's update is
the same in each (same seed, same starting model)."""
STRATEGIES = {
    "fedavg": {},
    "fedadam": {"strategy": Strategy.FEDADAM},
    "fedprox": {"strategy": Strategy.FEDPROX, "proximal_mu": 1.0},
}


@pytest.fixture(scope="module")
def one_round(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, RunConfig]]:
    """One plain round of FedAvg, FedAdam and FedProx: each run's folder and config."""
    runs = {}
    for name, settings in STRATEGIES.items():
        out = tmp_path_factory.mktemp(name)
        _run(out, **ONE_PLAIN_ROUND, **settings)
        runs[name] = (out, _config(out, **ONE_PLAIN_ROUND, **settings))
    return runs


def _model_of(run: tuple[Path, RunConfig]) -> ArrayRecord:
    return _checkpoint_arrays(*run)


def _initial(run: tuple[Path, RunConfig]) -> ArrayRecord:
    state, _ = load_checkpoint(*run)
    return ArrayRecord(build_model(state.spec, seed=run[1].seed).state_dict())


def _distance(a: ArrayRecord, b: ArrayRecord) -> float:
    return float(np.sqrt(sum(((a[n].numpy() - b[n].numpy()) ** 2).sum() for n in a)))


def test_a_fedadam_round_is_the_server_step_from_the_fedavg_rounds_model(
    one_round: dict[str, tuple[Path, RunConfig]],
) -> None:
    out, config = one_round["fedadam"]
    optimizer = ServerOptimizer.of_run(config)
    assert optimizer is not None

    step = optimizer.step(1, _initial(one_round["fedadam"]), _model_of(one_round["fedavg"]), None)

    # The replies may come back in another order in the two runs, and the plain mean
    # sums them in float32 in that order: equal up to rounding, not to the last bit.
    got = _model_of(one_round["fedadam"])
    assert list(got) == list(step.arrays)
    for name in got:
        np.testing.assert_allclose(
            got[name].numpy(), step.arrays[name].numpy(), rtol=1e-5, atol=1e-7
        )
    fedavg = _model_of(one_round["fedavg"])
    assert _distance(got, fedavg) > 100 * 1e-5 * _distance(fedavg, _initial(one_round["fedavg"]))
    document = _metrics(out)
    assert document["config"]["strategy"] == "fedadam" and document["status"] == "completed"
    assert (out / CHECKPOINT_DIR / "optimizer-1.npz").is_file()


def test_fedprox_keeps_the_round_closer_to_the_model_it_started_from(
    one_round: dict[str, tuple[Path, RunConfig]],
) -> None:
    """mu reached every bank: each update, so their mean, is pulled toward the start."""
    start = _initial(one_round["fedprox"])
    fedavg = _distance(_model_of(one_round["fedavg"]), start)
    fedprox = _distance(_model_of(one_round["fedprox"]), start)
    assert 0 < fedprox < 0.9 * fedavg


def test_a_resumed_fedadam_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    """Secure aggregation, 3 banks: the moments travel in the checkpoint."""
    whole = _run(tmp_path / "whole", rounds=3, strategy=Strategy.FEDADAM)
    first = _run(tmp_path / "cut", rounds=2, strategy=Strategy.FEDADAM)
    check_checkpoint_completed_round(tmp_path / "cut", 2)
    resumed = _run(tmp_path / "cut", rounds=3, resume=True, strategy=Strategy.FEDADAM)

    check_resumed_run_equals_the_uninterrupted_run(
        tmp_path / "cut",
        first=first,
        resumed=resumed,
        whole=whole,
        auc_tolerance=0.0,
        train_loss_tolerance=0.0,
    )
    config = _config(tmp_path / "whole", rounds=3, strategy=Strategy.FEDADAM)
    _assert_same_arrays(
        _checkpoint_arrays(tmp_path / "cut", config), _checkpoint_arrays(tmp_path / "whole", config)
    )


def _charged(document: dict[str, Any]) -> dict[str, Any]:
    """Each bank's charged mechanisms and epsilon, from ``metrics.json``'s ledgers."""
    return {
        bank: {
            "epsilon": ledger["epsilon"],
            "events": [
                {
                    key: event[key]
                    for key in (
                        "round",
                        "kind",
                        "noise_multiplier",
                        "sample_rate",
                        "steps",
                        "max_grad_norm",
                    )
                }
                for event in ledger["events"]
            ],
        }
        for bank, ledger in document["privacy"].items()
    }


def test_fedprox_under_dp_and_secure_aggregation_charges_what_fedavg_charges(
    tmp_path: Path,
) -> None:
    """FedAvg and FedProx (mu 0.5), DP-SGD at epsilon 1 per bank, secure aggregation."""
    policy = BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    private = {"budgets": policy, "rounds": 2, "batch_size": 256}
    fedavg = _run(tmp_path / "fedavg", **private)
    fedprox = _run(tmp_path / "fedprox", strategy=Strategy.FEDPROX, proximal_mu=0.5, **private)
    assert fedprox["status"] == "completed"
    assert [r["banks"] for r in fedprox["rounds"]] == [r["banks"] for r in fedavg["rounds"]]
    assert len(fedprox["privacy"]) == 3
    assert _charged(fedprox) == _charged(fedavg)
    checks = verify_run(tmp_path / "fedprox")
    assert checks and all(check.agrees and check.within_budget for check in checks)

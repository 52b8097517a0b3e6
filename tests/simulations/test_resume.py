"""A run resumed from its checkpoint continues exactly where it stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from credit.errors import ConfigError
from credit.run_config import RunConfig
from simulations.engine import plan_simulation, run_simulated_consortium
from tests.support.audit import assert_audit_log_of_resumed_run

pytestmark = pytest.mark.slow


def _run(out: Path, **settings: Any) -> dict[str, Any]:
    config = RunConfig(out_dir=str(out), seed=1, **settings)
    run_simulated_consortium(plan_simulation(config, n_banks=3))
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


def test_resuming_after_round_two_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    whole = _run(tmp_path / "whole", rounds=3)
    first = _run(tmp_path / "cut", rounds=2)
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["completed_round"] == 2
    resumed = _run(tmp_path / "cut", rounds=3, resume=True)
    assert [r["round"] for r in resumed["rounds"]] == [1, 2, 3]
    assert resumed["rounds"][:2] == first["rounds"]
    # Same seeds, same banks, same starting model: the same run up to floating-point
    # reduction order in local training (seen to move a round's AUC by 3e-4).
    for got, want in zip(resumed["rounds"], whole["rounds"], strict=True):
        assert got["auc"] == pytest.approx(want["auc"], abs=2e-3)
        assert got["banks"] == want["banks"]
    assert resumed["final"]["auc"] == pytest.approx(whole["final"]["auc"], abs=2e-3)
    assert_audit_log_of_resumed_run(tmp_path / "cut")


def test_resuming_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=2, resume=True)
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        run_simulated_consortium(plan_simulation(config, n_banks=2))

"""A run resumed from its checkpoint continues exactly where it stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from credit.errors import ConfigError
from credit.run_config import RunConfig
from simulations.engine import plan_simulation, run_simulated_consortium
from tests.support.checks import (
    check_checkpoint_completed_round,
    check_resumed_run_equals_the_uninterrupted_run,
)

pytestmark = pytest.mark.slow


def _run(out: Path, **settings: Any) -> dict[str, Any]:
    config = RunConfig(out_dir=str(out), seed=1, **settings)
    run_simulated_consortium(plan_simulation(config, n_banks=3))
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The uninterrupted 3-round run."""
    return _run(tmp_path_factory.mktemp("whole"), rounds=3)


def test_resuming_after_round_two_equals_the_uninterrupted_run(
    tmp_path: Path, whole: dict[str, Any]
) -> None:
    first = _run(tmp_path / "cut", rounds=2)
    check_checkpoint_completed_round(tmp_path / "cut", 2)
    resumed = _run(tmp_path / "cut", rounds=3, resume=True)
    # Same seeds, same banks, same starting model: the same run up to floating-point
    # reduction order in local training (seen to move a round's AUC by 3e-4), so the
    # AUCs are compared to 2e-3 and the train loss is not compared. (In process, with
    # one torch thread, test_run_driver's twin asks for equality to the last bit.)
    check_resumed_run_equals_the_uninterrupted_run(
        tmp_path / "cut",
        first=first,
        resumed=resumed,
        whole=whole,
        auc_tolerance=2e-3,
        train_loss_tolerance=None,
    )


def _as_if_stopped_before_round_two_was_evaluated(out: Path) -> None:
    """Turn a 2-round run's checkpoint into the one written right after round 2's
    aggregation: round 2 trained, its evaluation pending (it would have come with
    round 3's train replies)."""
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    pending = state["rounds"].pop()
    del pending["metrics"]
    del pending["exchanges"]["evaluate"]
    state["pending"] = {**pending, "epsilon": {}}
    path.write_text(json.dumps(state))


def test_resuming_with_round_two_pending_scores_it_in_round_three_train_message(
    tmp_path: Path, whole: dict[str, Any]
) -> None:
    """Round 2's metrics come from the resumed run's round 3 train replies."""
    first = _run(tmp_path, rounds=2)
    _as_if_stopped_before_round_two_was_evaluated(tmp_path)
    resumed = _run(tmp_path, rounds=3, resume=True)
    assert [r["round"] for r in resumed["rounds"]] == [1, 2, 3]
    assert resumed["rounds"][0] == first["rounds"][0]
    # Round 2's model is the checkpoint's and the banks' hold-outs are fixed: scored
    # again, it gives the first run's AUC exactly; its training record is the first run's.
    again, before = resumed["rounds"][1], first["rounds"][1]
    assert (again["auc"], again["banks"], again["train_loss"]) == (
        before["auc"],
        before["banks"],
        before["train_loss"],
    )
    # no evaluate exchange of its own
    assert list(again["exchanges"]) == ["train", "consistency", "unmask"]
    for got, want in zip(resumed["rounds"], whole["rounds"], strict=True):
        assert got["banks"] == want["banks"]
        assert got["auc"] == pytest.approx(want["auc"], abs=2e-3)  # see the test above
    assert resumed["final"]["auc"] == pytest.approx(whole["final"]["auc"], abs=2e-3)


def test_resuming_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=2, resume=True)
    with pytest.raises(ConfigError, match="no checkpoint to resume from"):
        run_simulated_consortium(plan_simulation(config, n_banks=3))

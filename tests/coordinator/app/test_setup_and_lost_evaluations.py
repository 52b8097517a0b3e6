"""How a run starts without a release, and what happens to an evaluation a secure sum loses.

* ``--feature-stats public``: the banks only join (name, n_train, keys); nothing about
  their rows is released or charged at set-up, and the run reports no WoE/IV tables.
* Under secure aggregation round r's evaluation travels inside round r + 1's masked
  sum; when that sum is aborted, round r is recorded as not evaluated (no exchange of
  its own mid-run).
"""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable

from credit.encoding import StatsSource
from credit.messages import QueryInstructions, Task
from credit.run_config import RunConfig
from privacy.budget import PrivacyBudget
from simulations.budgets import BudgetPolicy
from simulations.engine import plan_simulation
from tests.support.consortium import consortium_grid, exchanges, run_in_process


def test_public_bounds_release_nothing_at_set_up(tmp_path: Path) -> None:
    config = RunConfig(
        out_dir=str(tmp_path), rounds=2, batch_size=256, feature_stats=StatsSource.PUBLIC
    )
    plan = plan_simulation(
        config, n_banks=3, budgets=BudgetPolicy(default=PrivacyBudget(max_epsilon=1.0))
    )
    grid = consortium_grid(plan)
    run_in_process(plan, grid=grid)

    assert exchanges(grid)[:2] == ["query:join", "query:secagg-advertise"]
    assert "query:feature-stats" not in exchanges(grid)
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["status"] == "completed"
    assert "woe_iv" not in document and "scorecard" not in document  # no counts, no tables
    for ledger in document["privacy"].values():
        kinds = [event["kind"] for event in ledger["events"]]
        assert "gaussian-release" not in kinds
        assert kinds.count("dp-sgd") == 2


def _unmask_of_round(server_round: int) -> ClientAppCallable:
    """A mod (for one bank) whose unmask reply of ``server_round`` is an error."""

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if context.node_config.get("partition-id") == 1 and message.metadata.message_type == (
            MessageType.QUERY
        ):
            query = QueryInstructions.take(message.content)
            if query.task == Task.SECAGG_UNMASK and query.server_round == server_round:
                raise RuntimeError("lost before revealing its shares")
        return call_next(message, context)

    return mod  # type: ignore[return-value]


def test_an_evaluation_lost_with_the_next_rounds_secure_sum_leaves_its_round_unscored(
    tmp_path: Path,
) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=3, seed=0, min_banks=2, validation_fraction=0)
    plan = plan_simulation(config, n_banks=3)
    events: list[str] = []
    grid = consortium_grid(plan, mods=[_unmask_of_round(2)])
    run_in_process(plan, grid=grid, on_event=events.append)

    document = json.loads((tmp_path / "metrics.json").read_text())
    rounds = {r["round"]: r for r in document["rounds"]}
    # Round 2's sum is aborted at unmask (2 of 3 banks revealed, the threshold is 3):
    # round 1's evaluation, masked inside it, is lost; round 2 leaves the model as it was.
    assert rounds[1]["auc"] is None
    assert rounds[2]["aborted"]
    assert any("round 1's evaluation was lost with round 2's secure sum" in e for e in events)
    # The bank lost at round 2's unmask did not send round 3's keys with it: round 3
    # aborts too, and its train replies' evaluation of round 2 goes with it.
    assert rounds[2]["auc"] is None and rounds[3]["aborted"]
    # The last model is scored in its own secure round; no evaluate exchange mid-run.
    assert rounds[3]["auc"] is not None
    assert exchanges(grid)[-4:] == [
        "query:secagg-advertise",
        "evaluate",
        "query:secagg-consistency",
        "query:secagg-unmask",
    ]
    assert exchanges(grid).count("evaluate") == 1

"""A malformed reply from the network drops that bank from the stage, never the run.

One bank's replies are corrupted on their way out (a Flower mod around its real
ClientApp, as a compromised or buggy bank would send them); the coordinator's real
run driver must leave that bank out, say so, and finish the run with the others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable

from coordinator.errors import RoundFailed
from credit import message_keys as keys
from credit.run_config import RunConfig
from participant.app.client_app import make_client_app
from simulations.engine import PartitionPlan, plan_simulation
from tests.support.consortium import run_in_process
from tests.support.fake_grid import FakeGrid

Corruption = Callable[[Message], None]


def _break_metrics(reply: Message) -> None:
    """Training metrics with a weight that is not a number of rows."""
    reply.content[keys.METRICS]["num-examples"] = -5


def _break_arrays(reply: Message) -> None:
    """Weights of another shape than the model's (plain) or another ring (secure)."""
    arrays = reply.content[keys.ARRAYS]
    name = next(iter(arrays))
    reply.content[keys.ARRAYS] = ArrayRecord({name: Array(np.zeros(3, dtype=np.float64))})


def _break_histograms(reply: Message) -> None:
    """Score histograms with negative counts."""
    reply.content[keys.SCORES][keys.POSITIVES] = Array(-np.ones(10_000, dtype=np.int64))


def _corrupting(bank: int, kind: str, corrupt: Corruption) -> Callable[..., Message]:
    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(message, context)
        is_bank = context.node_config.get("partition-id") == bank
        if is_bank and message.metadata.message_type == kind and not reply.has_error():
            corrupt(reply)
        return reply

    return mod


@pytest.mark.parametrize(
    ("secure", "kind", "corrupt"),
    [
        (False, MessageType.TRAIN, _break_metrics),  # secure: the weight travels masked
        (False, MessageType.TRAIN, _break_arrays),
        (True, MessageType.TRAIN, _break_arrays),
        (False, MessageType.EVALUATE, _break_histograms),
        (True, MessageType.EVALUATE, _break_histograms),
    ],
    ids=[
        "plain-train-metrics",
        "plain-train-arrays",
        "secure-masked-update",
        "plain-evaluate-histograms",
        "secure-evaluate-histograms",
    ],
)
def test_a_bank_sending_malformed_replies_is_left_out_and_the_run_completes(
    tmp_path: Path, secure: bool, kind: str, corrupt: Corruption
) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=2, seed=4, secure_aggregation=secure)
    plan = plan_simulation(config, n_banks=4)
    app = make_client_app(PartitionPlan(plan.banks), mods=[_corrupting(3, kind, corrupt)])
    grid = FakeGrid(app, num_nodes=4, run_config=config.to_flower(), seed=4)
    events: list[str] = []

    run_in_process(plan, grid=grid, on_event=events.append)

    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["status"] == "completed"
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    node = grid.node_id(3)
    if kind == MessageType.TRAIN:
        assert all("bank-4" not in r["banks"] for r in document["rounds"])
        assert all(len(r["banks"]) == 3 for r in document["rounds"])
    else:
        assert document["final"]["n_rows"] < sum(
            bank["n_test"] for bank in document["participants"].values()
        )
    assert any(f"node {node} sent a malformed reply" in line for line in events), events


def test_a_round_whose_evaluation_replies_are_all_malformed_fails_naming_the_stage(
    tmp_path: Path,
) -> None:
    config = RunConfig(out_dir=str(tmp_path), rounds=2, seed=4, secure_aggregation=False)
    plan = plan_simulation(config, n_banks=2)
    corrupt_all = [_corrupting(bank, MessageType.EVALUATE, _break_histograms) for bank in (0, 1)]
    app = make_client_app(PartitionPlan(plan.banks), mods=corrupt_all)
    grid = FakeGrid(app, num_nodes=2, run_config=config.to_flower(), seed=4)
    with pytest.raises(RoundFailed, match=r"round 1 \(evaluate\): 0 usable replies"):
        run_in_process(plan, grid=grid)

"""A malformed reply from the network drops that bank from the stage, never the run.

One bank's replies are corrupted on their way out (a Flower mod around its real
ClientApp, as a compromised or buggy bank would send them); the coordinator's real
run driver must leave that bank out, say so, and finish the run with the others.
Every stage is covered: set-up, training (a malformed update or refusal), secure
aggregation's unmasking, and evaluation (the evaluation a train reply carries of the
previous round's model, and the final evaluate exchange's). In the clear, a train
reply's evaluation and its update are judged apart: either one malformed loses only
itself; under secure aggregation both travel in one masked vector. Noisy counts
(negative, fractional) are valid; NaN, infinities and wrong shapes are not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from coordinator.app.audit_trail import coordinator_log_path
from coordinator.errors import RoundFailed
from credit import message_keys as keys
from credit.messages import QueryInstructions, RoundInstructions, Task, secagg
from credit.run_config import RunConfig
from privacy.secagg.wire import decode_keys, encode_keys
from simulations.engine import PartitionPlan, SimulationPlan, plan_simulation, relay_app
from tests.support.consortium import exchanges, held_out_rows, run_in_process
from tests.support.fake_grid import FakeGrid, MessageFilter, always

Corruption = Callable[[Message], None]


def _metrics(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return document


# -- which messages' replies are corrupted ------------------------------------------


def _of_type(kind: str) -> MessageFilter:
    """Every message of Flower type ``kind`` (train, evaluate, query)."""
    return lambda message: message.metadata.message_type == kind


def _query_for(task: Task) -> MessageFilter:
    """Queries asking for ``task`` (set-up, secure aggregation's advertise or unmask)."""

    def matches(message: Message) -> bool:
        if message.metadata.message_type != MessageType.QUERY:
            return False
        return QueryInstructions.take(message.content).task == task

    return matches


def _train_of_round(server_round: int) -> MessageFilter:
    """The train message of ``server_round`` only."""

    def matches(message: Message) -> bool:
        if message.metadata.message_type != MessageType.TRAIN:
            return False
        return RoundInstructions.take(message.content).server_round == server_round

    return matches


# -- how a reply is corrupted -------------------------------------------------------


def _break_metrics(reply: Message) -> None:
    """Training metrics with a weight that is not a number of rows."""
    reply.content[keys.METRICS]["num-examples"] = -5


def _break_arrays(reply: Message) -> None:
    """Weights of another shape than the model's (plain) or another ring (secure)."""
    arrays = reply.content[keys.ARRAYS]
    name = next(iter(arrays))
    reply.content[keys.ARRAYS] = ArrayRecord({name: Array(np.zeros(3, dtype=np.float64))})


def _not_numbers(scores: ArrayRecord) -> None:
    """A score histogram of the right shape whose counts are NaN (noisy reals would pass)."""
    histogram = scores[keys.POSITIVES].numpy()
    scores[keys.POSITIVES] = Array(np.full(histogram.shape, np.nan))


def _break_histograms(reply: Message) -> None:
    """Score histograms whose counts are not numbers."""
    _not_numbers(reply.content[keys.SCORES])


def _break_evaluation(reply: Message) -> None:
    """The evaluation beside a train reply's update (if any) with counts that are not numbers."""
    if keys.EVALUATION_SCORES in reply.content:
        _not_numbers(reply.content[keys.EVALUATION_SCORES])


def _masked_as_floats(reply: Message) -> None:
    """A masked vector of the right length, sent as float64 instead of the ring's integers."""
    masked = reply.content[keys.ARRAYS][keys.SECAGG_MASKED].numpy()
    reply.content[keys.ARRAYS] = ArrayRecord({keys.SECAGG_MASKED: Array(masked.astype(np.float64))})


def _break_any_evaluation(reply: Message) -> None:
    """Whatever evaluation the reply carries: an evaluate reply's or a train reply's."""
    if keys.SCORES in reply.content:
        _break_histograms(reply)
    _break_evaluation(reply)


def _negative_n_train(reply: Message) -> None:
    """A set-up reply whose bank claims fewer than zero training rows."""
    reply.content.config_records[keys.BANK]["n-train"] = -1


def _stats_of_another_grid(reply: Message) -> None:
    """Set-up statistics whose per-class counts have one cell more than the run's grid."""
    record = reply.content.array_records[keys.FEATURE_STATS]
    suffixes = (keys.EVENTS_SUFFIX, keys.NON_EVENTS_SUFFIX)
    for name in [name for name in record if name.endswith(suffixes)]:
        histogram = record[name].numpy()
        record[name] = Array(np.append(histogram, 0).astype(histogram.dtype))


def _refusal_spending_lots(reply: Message) -> None:
    """Instead of its update, a refusal whose epsilon spent is a word."""
    refusal = ConfigRecord(
        {
            "bank": "bank-3",
            "reason": "PrivacyBudgetExceeded",
            "spent": "lots",
            "requested": 2.0,
            "maximum": 1.0,
            "server-round": 2,
        }
    )
    reply.content = RecordDict({keys.REFUSAL: refusal})  # the whole update replaced


def _reveal_of_non_shares(reply: Message) -> None:
    """An unmask reveal naming the right banks, each share replaced by ``b"x"``."""
    shares = decode_keys(secagg.Reveal.take(reply.content).reveal, "reveal")
    assert shares  # a reveal that named no bank would corrupt nothing
    secagg.Reveal(reveal=encode_keys(dict.fromkeys(shares, b"x"))).put(reply.content)


def _corrupting(
    bank: int, when: MessageFilter, corrupt: Corruption, *, seen: list[int] | None = None
) -> Callable[..., Message]:
    """A mod corrupting the replies of partition ``bank`` to messages ``when`` matches.

    ``seen`` (if given) gets one entry per corrupted reply, so a test can check that
    the corruption happened.
    """

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        reply = call_next(message, context)
        is_bank = context.node_config.get("partition-id") == bank
        if is_bank and when(message) and not reply.has_error():
            corrupt(reply)
            if seen is not None:
                seen.append(bank)
        return reply

    return mod


def _planned_run(
    out: Path, *, n_banks: int, mods: list[Callable[..., Message]], **settings: Any
) -> tuple[SimulationPlan, FakeGrid]:
    """The plan of a run of ``n_banks`` banks, and a grid whose banks run ``mods``."""
    settings.setdefault("validation_fraction", 0.0)  # the rounds' exchanges as they were
    config = RunConfig(out_dir=str(out), seed=4, **settings)
    plan = plan_simulation(config, n_banks=n_banks)
    app = relay_app(PartitionPlan(plan.banks), mods=mods)
    return plan, FakeGrid(app, num_nodes=n_banks, run_config=config.to_flower(), seed=4)


@pytest.mark.parametrize(
    ("secure", "kind", "corrupt"),
    [
        (False, MessageType.TRAIN, _break_metrics),  # secure: the weight travels masked
        (False, MessageType.TRAIN, _break_arrays),
        (True, MessageType.TRAIN, _break_arrays),
        (True, MessageType.TRAIN, _masked_as_floats),  # its evaluation inside: lost too
        (False, MessageType.EVALUATE, _break_histograms),
        (True, MessageType.EVALUATE, _masked_as_floats),  # the last model's secure sum
        (False, MessageType.TRAIN, _break_evaluation),
    ],
    ids=[
        "plain-train-metrics",
        "plain-train-arrays",
        "secure-masked-update",
        "secure-masked-update-as-floats",
        "plain-evaluate-histograms",
        "secure-evaluate-masked-as-floats",
        "plain-train-evaluation",
    ],
)
def test_a_bank_sending_malformed_replies_is_left_out_and_the_run_completes(
    tmp_path: Path, secure: bool, kind: str, corrupt: Corruption
) -> None:
    config = RunConfig(
        out_dir=str(tmp_path), rounds=2, seed=4, secure_aggregation=secure, validation_fraction=0
    )
    plan = plan_simulation(config, n_banks=4)
    app = relay_app(PartitionPlan(plan.banks), mods=[_corrupting(3, _of_type(kind), corrupt)])
    grid = FakeGrid(app, num_nodes=4, run_config=config.to_flower(), seed=4)
    events: list[str] = []

    run_in_process(plan, grid=grid, on_event=events.append)

    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["status"] == "completed"
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    node = grid.node_id(3)
    every_row = held_out_rows(plan)
    if corrupt is _break_evaluation:
        # Round 2's train reply scores round 1's model: only that evaluation is lost,
        # bank-4's update is in both rounds and it scores the last model in full.
        assert all(len(r["banks"]) == 4 for r in document["rounds"])
        assert document["final"]["n_rows"] == every_row
        assert any(f"round 1: node {node} sent a malformed evaluation" in x for x in events)
        assert not any("malformed reply" in line for line in events), events
        return
    if kind == MessageType.TRAIN:
        assert all("bank-4" not in r["banks"] for r in document["rounds"])
        assert all(len(r["banks"]) == 3 for r in document["rounds"])
    else:
        assert document["final"]["n_rows"] < every_row
    assert any(f"node {node} sent a malformed reply" in line for line in events), events


def test_a_round_whose_evaluation_replies_are_all_malformed_fails_naming_the_stage(
    tmp_path: Path,
) -> None:
    """Round 2's train replies bring no usable evaluation of round 1's model: an evaluate
    exchange asks for it, and when that brings none either, round 1 fails."""
    config = RunConfig(out_dir=str(tmp_path), rounds=2, seed=4, secure_aggregation=False)
    plan = plan_simulation(config, n_banks=2)
    corrupt_all = [_corrupting(bank, always, _break_any_evaluation) for bank in (0, 1)]
    app = relay_app(PartitionPlan(plan.banks), mods=corrupt_all)
    grid = FakeGrid(app, num_nodes=2, run_config=config.to_flower(), seed=4)
    with pytest.raises(RoundFailed, match=r"round 1 \(evaluate\): 0 usable replies"):
        run_in_process(plan, grid=grid)
    assert exchanges(grid) == ["query:feature-stats", "train", "train", "evaluate"]


def test_an_evaluation_missing_from_the_train_replies_is_asked_for_on_its_own(
    tmp_path: Path,
) -> None:
    """No bank's round 2 train reply scores round 1's model: one evaluate exchange does,
    and round 1's metrics are those of the run whose train replies did."""
    mods = [_corrupting(bank, _of_type(MessageType.TRAIN), _break_evaluation) for bank in (0, 1)]
    plan, grid = _planned_run(
        tmp_path / "corrupted", n_banks=2, mods=mods, rounds=2, secure_aggregation=False
    )
    run_in_process(plan, grid=grid)
    reference_plan, reference_grid = _planned_run(
        tmp_path / "reference", n_banks=2, mods=[], rounds=2, secure_aggregation=False
    )
    run_in_process(reference_plan, grid=reference_grid)

    assert exchanges(grid) == ["query:feature-stats", "train", "train", "evaluate", "evaluate"]
    got, want = _metrics(tmp_path / "corrupted"), _metrics(tmp_path / "reference")
    assert got["status"] == "completed"
    assert [r["auc"] for r in got["rounds"]] == [r["auc"] for r in want["rounds"]]
    # The evaluate exchange of round 1 is round 1's (the train exchange is round 2's).
    assert [list(r["exchanges"]) for r in got["rounds"]] == [
        ["train", "evaluate"],
        ["train", "evaluate"],
    ]


@pytest.mark.parametrize(
    ("secure", "corrupt"),
    [(True, _negative_n_train), (False, _stats_of_another_grid)],
    ids=["secure-negative-n-train", "plain-feature-stats-of-another-grid"],
)
def test_a_bank_sending_a_malformed_set_up_reply_is_left_out_of_the_run(
    tmp_path: Path, secure: bool, corrupt: Corruption
) -> None:
    """bank-3's set-up reply breaks the contract: the run is the other banks'.

    In the clear that is its feature-stats reply; under secure aggregation its join
    reply (which introduces it; its statistics follow in secure round 0)."""
    corrupting = _corrupting(2, _query_for(Task.JOIN if secure else Task.FEATURE_STATS), corrupt)
    plan, grid = _planned_run(  # 4 banks: a secure roster of the 3 others is still >= 3
        tmp_path, n_banks=4, mods=[corrupting], rounds=1, secure_aggregation=secure
    )
    events: list[str] = []

    run_in_process(plan, grid=grid, on_event=events.append)

    document = _metrics(tmp_path)
    assert document["status"] == "completed"
    assert set(document["participants"]) == {"bank-1", "bank-2", "bank-4"}
    assert [r["banks"] for r in document["rounds"]] == [["bank-1", "bank-2", "bank-4"]]
    # Not one of the run's banks: never asked to train, so not dropped either.
    assert [r["dropped"] for r in document["rounds"]] == [[]]
    assert document["final"]["n_rows"] == held_out_rows(plan, document["participants"])
    assert grid.failures == []
    node = grid.node_id(2)
    assert any(
        line.startswith("round 0: ") and f"node {node} sent a malformed reply" in line
        for line in events
    ), events


def test_a_malformed_unmask_reveal_is_ignored_and_the_others_shares_unmask_the_sum(
    tmp_path: Path,
) -> None:
    """bank-3 reveals non-shares in every round: the sum is the uncorrupted run's, exactly.

    Its masked update is in the sum; the other three banks' shares reach the threshold
    (3 of 4) and remove every mask, so each round aggregates the same four updates.
    Each time, the coordinator's signed audit log records bank-3 as dropped from that
    secure round's unmask, with the reason.
    """
    corrupted: list[int] = []
    unmasking = _query_for(Task.SECAGG_UNMASK)
    mods = [_corrupting(2, unmasking, _reveal_of_non_shares, seen=corrupted)]
    plan, grid = _planned_run(
        tmp_path / "corrupted", n_banks=4, mods=mods, rounds=2, secure_aggregation=True
    )
    run_in_process(plan, grid=grid)
    reference_plan, reference_grid = _planned_run(
        tmp_path / "reference", n_banks=4, mods=[], rounds=2, secure_aggregation=True
    )
    run_in_process(reference_plan, grid=reference_grid)

    # one reveal per secure round: the set-up statistics', each round's, the last evaluation's
    assert corrupted == [2, 2, 2, 2]
    got, want = _metrics(tmp_path / "corrupted"), _metrics(tmp_path / "reference")
    assert got["status"] == want["status"] == "completed"
    assert [r["banks"] for r in got["rounds"]] == [["bank-1", "bank-2", "bank-3", "bank-4"]] * 2
    for mine, theirs in zip(got["rounds"], want["rounds"], strict=True):
        assert (mine["banks"], mine["auc"], mine["train_loss"]) == (
            theirs["banks"],
            theirs["auc"],
            theirs["train_loss"],
        )
    assert got["final"]["auc"] == want["final"]["auc"]
    assert grid.failures == []
    log = coordinator_log_path(tmp_path / "corrupted")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    dropped = [e["data"] for e in entries if e["event"] == "refusal"]
    assert [(d["bank"], d["server_round"]) for d in dropped] == [
        ("bank-3", 0),
        ("bank-3", 1),
        ("bank-3", 2),
        ("bank-3", 3),
    ]
    assert all(
        d["reason"].startswith("dropped from secure aggregation: reveal refused") for d in dropped
    ), dropped


def test_a_bank_sending_a_malformed_refusal_is_left_out_of_that_round(tmp_path: Path) -> None:
    """bank-3 answers round 2's train message with a refusal spending "lots"."""
    mods = [_corrupting(2, _train_of_round(2), _refusal_spending_lots)]
    plan, grid = _planned_run(tmp_path, n_banks=3, mods=mods, rounds=2, secure_aggregation=False)
    events: list[str] = []

    run_in_process(plan, grid=grid, on_event=events.append)

    document = _metrics(tmp_path)
    assert document["status"] == "completed"
    assert [r["banks"] for r in document["rounds"]] == [
        ["bank-1", "bank-2", "bank-3"],
        ["bank-1", "bank-2"],
    ]
    # A malformed refusal counts as none: bank-3 neither trained nor refused, so dropped.
    assert [r["refused"] for r in document["rounds"]] == [[], []]
    assert [r["dropped"] for r in document["rounds"]] == [[], ["bank-3"]]
    assert document["refusals"] == []
    node = grid.node_id(2)
    assert any(
        line.startswith("round 2: ") and f"node {node} sent a malformed reply" in line
        for line in events
    ), events

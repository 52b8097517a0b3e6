"""A malicious coordinator uses FedProx's mu to pin a bank to a model of its choosing.

mu arrives in every train message. It reveals nothing about the rows (the update
still goes through DP-SGD and secure aggregation), but a huge mu makes the bank's
local steps return to the global model the coordinator sent: the bank trains, its
budget is charged, and its data has no effect on the consortium's model (or, beyond
``learning_rate * mu`` of about 2, the steps diverge). A bank therefore bounds mu by
its own policy (``TrainingPolicy.max_proximal_mu``, default 1) and refuses a round
asking for more, before anything is charged or trained.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord, MessageType, RecordDict

from credit import message_keys as keys
from credit.messages import RoundInstructions
from credit.schema import DatasetSchema
from participant.guard.bank_guard import BankGuard
from participant.guard.settings import TrainingPolicy
from participant.relay.client_app import GuardRefused
from tests.participant.guard.bank_messages import (
    JoinedBank,
    acme_settings,
    context,
    feature_stats_query,
    guarded_app,
    joined_bank,
    round_content,
)

ROWS = 400
LEARNING_RATE = 0.05  # round_content's
PINNING_MU = 1 / LEARNING_RATE  # each step's proximal pull takes the whole way back


def _with_mu(content: RecordDict, mu: float) -> RecordDict:
    instructions = RoundInstructions.take(content)
    instructions.model_copy(update={"proximal_mu": mu}).put(content)
    return content


def _events(ledger: Path) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    return [line for line in lines if line.get("type") == "event"]


def _plain_bank(data_path: Path, policy: TrainingPolicy) -> JoinedBank:
    """A bank without a budget and with the training ``policy``, joined to a run."""
    settings = acme_settings(data_path, max_epsilon=None)
    guard = BankGuard(settings.model_copy(update={"training": policy}))
    bank = JoinedBank(app=guarded_app(guard), context=context(), guard=guard)
    bank.send(MessageType.QUERY, feature_stats_query(guard.bank.schema))
    return bank


def _distance(update: ArrayRecord, model: ArrayRecord) -> float:
    return float(np.sqrt(sum(((update[n].numpy() - model[n].numpy()) ** 2).sum() for n in model)))


def _update_distance(bank: JoinedBank, schema: DatasetSchema, mu: float) -> float:
    """How far the bank's update of round 1 moves from the model it was sent."""
    content, model = round_content(schema, 1)
    reply = bank.send(MessageType.TRAIN, _with_mu(content, mu)).content
    update = reply[keys.ARRAYS]
    assert isinstance(update, ArrayRecord)
    return _distance(update, model)


@pytest.mark.parametrize("mu", [PINNING_MU, 1e6])
def test_a_coordinator_pinning_the_bank_with_a_huge_mu_is_refused_uncharged(
    tmp_path: Path, schema: DatasetSchema, write_bank_csv: Callable[..., Path], mu: float
) -> None:
    ledger, log = tmp_path / "acme.ledger.jsonl", tmp_path / "acme.audit.jsonl"
    bank = joined_bank(
        schema, write_bank_csv(ROWS), max_epsilon=4.0, ledger_path=ledger, audit_log=log
    )
    before = _events(ledger)
    content, _ = round_content(schema, 1)

    with pytest.raises(GuardRefused, match="accepts FedProx's proximal-mu up to 1;"):
        bank.send(MessageType.TRAIN, _with_mu(content, mu))

    assert _events(ledger) == before  # nothing charged, nothing trained
    audit = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["data"]["kind"] for e in audit if e["event"] == "refusal"] == ["training-policy"]
    assert not any(e["event"] == "train" for e in audit)


def test_without_the_bound_the_huge_mu_pins_the_banks_update_to_the_coordinators_model(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    """The attack the bound stops: a bank that accepted any mu would send back (almost)
    the coordinator's model, its own data without effect."""
    unbounded = _plain_bank(write_bank_csv(ROWS), TrainingPolicy(max_proximal_mu=1e9))
    moved = _update_distance(unbounded, schema, 0.0)
    pinned = _update_distance(unbounded, schema, PINNING_MU)
    assert pinned < 0.2 * moved


def test_a_mu_within_the_banks_bound_trains(
    write_bank_csv: Callable[..., Path], schema: DatasetSchema
) -> None:
    bank = _plain_bank(write_bank_csv(ROWS), TrainingPolicy())
    assert _update_distance(bank, schema, 1.0) > 0.0
    strict = _plain_bank(write_bank_csv(ROWS), TrainingPolicy(max_proximal_mu=0.0))
    with pytest.raises(GuardRefused, match=r"up to 0; the round asks for 0\.01"):
        _update_distance(strict, schema, 0.01)

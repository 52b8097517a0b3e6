"""The simulated dropout mod: a bank drops out of one round at one stage, and no more.

Round r's unmask query also asks for round r + 1's keys; the mod must keep a bank
that drops out of round r at ``unmask`` in round r + 1 (it still sends the keys), and
take a bank that drops out of round r + 1 at ``advertise`` out of it (its keys are
stripped from the unmask reply that carries them).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flwr.app import Context, Message, MessageType, RecordDict

from credit import message_keys as keys
from credit.messages import (
    Dropped,
    EvaluateRequest,
    ProtocolStage,
    QueryInstructions,
    Task,
    secagg,
)
from credit.schema import DatasetSchema
from simulations.dropouts import dropout_mod, dropout_stage
from tests.participant.guard.bank_messages import context, message, round_content, run_instructions

SEED, RATE, BANK = 0, 0.5, "bank-1"


def _round_where(
    want: Callable[[ProtocolStage | None, ProtocolStage | None], bool], *, start: int = 1
) -> int:
    """The first round r >= ``start`` whose stages (r, r + 1) ``want`` accepts."""
    for r in range(start, 200):
        if want(dropout_stage(SEED, BANK, r, RATE), dropout_stage(SEED, BANK, r + 1, RATE)):
            return r
    raise AssertionError("no such round")


class _Bank:
    """The app behind the mod: answers unmask and advertise queries, records what it got."""

    def __init__(self) -> None:
        self.received: list[RecordDict] = []

    def __call__(self, message: Message, context: Context) -> Message:
        self.received.append(message.content)
        content = RecordDict()
        if QueryInstructions.take(message.content).task == Task.SECAGG_UNMASK:
            secagg.Reveal(reveal=b"{}").put(content)
        if secagg.AdvertiseRequest.present(message.content):
            secagg.Advertisement(advertisement=b"keys").put(content)
        return Message(content, reply_to=message)


def _unmask_query(schema: DatasetSchema, server_round: int) -> Message:
    """Round ``server_round``'s unmask query, asking for round + 1's keys too."""
    content = RecordDict()
    run_instructions(schema).query(Task.SECAGG_UNMASK, server_round=server_round).put(content)
    secagg.UnmaskRequest(server_round=server_round, unmask=b"{}").put(content)
    secagg.AdvertiseRequest(roster=b"{}", threshold=2, advertise_round=server_round + 1).put(
        content
    )
    return message(MessageType.QUERY, content)


def _mod_answer(request: Message) -> tuple[Message, _Bank]:
    bank = _Bank()
    mod = dropout_mod(seed=SEED, rate=RATE, bank_of=lambda ctx: BANK)
    return mod(request, context(), bank), bank


def test_a_bank_dropping_out_at_unmask_still_sends_the_next_rounds_keys(
    schema: DatasetSchema,
) -> None:
    r = _round_where(lambda now, then: now == ProtocolStage.UNMASK and then is None)
    reply, bank = _mod_answer(_unmask_query(schema, r))
    assert Dropped.take(reply.content).stage == ProtocolStage.UNMASK
    assert not secagg.Reveal.present(reply.content)  # no shares: it left round r
    assert secagg.Advertisement.take(reply.content).advertisement == b"keys"
    # The bank was asked only for the keys: an advertise query, no unmask request.
    (asked,) = bank.received
    assert QueryInstructions.take(asked).task == Task.SECAGG_ADVERTISE
    assert keys.SECAGG not in asked


def test_a_bank_dropping_out_at_unmask_and_at_the_next_advertise_sends_nothing(
    schema: DatasetSchema,
) -> None:
    r = _round_where(
        lambda now, then: now == ProtocolStage.UNMASK and then == ProtocolStage.ADVERTISE
    )
    reply, bank = _mod_answer(_unmask_query(schema, r))
    assert Dropped.take(reply.content).stage == ProtocolStage.UNMASK
    assert not secagg.Advertisement.present(reply.content) and bank.received == []


def test_the_next_rounds_keys_are_stripped_from_the_unmask_reply_of_a_bank_dropping_then(
    schema: DatasetSchema,
) -> None:
    r = _round_where(lambda now, then: now is None and then == ProtocolStage.ADVERTISE)
    reply, _ = _mod_answer(_unmask_query(schema, r))
    assert secagg.Reveal.present(reply.content)  # in round r it answers in full ...
    assert not secagg.Advertisement.present(reply.content)  # ... but keeps out of r + 1
    assert not Dropped.present(reply.content)


@pytest.mark.parametrize("then", [None, ProtocolStage.ADVERTISE], ids=["stays", "drops"])
def test_an_advertise_query_for_the_next_round_follows_that_rounds_stage(
    schema: DatasetSchema, then: ProtocolStage | None
) -> None:
    """A bank not asked to unmask round r gets round r + 1's advertise query instead."""
    r = _round_where(lambda now, nxt: nxt == then)
    content = RecordDict()
    run_instructions(schema).query(Task.SECAGG_ADVERTISE).put(content)
    secagg.AdvertiseRequest(roster=b"{}", threshold=2, advertise_round=r + 1).put(content)
    reply, _ = _mod_answer(message(MessageType.QUERY, content))
    assert secagg.Advertisement.present(reply.content) is (then is None)
    assert Dropped.present(reply.content) is (then is not None)


def test_a_bank_dropping_out_at_train_does_not_score_the_previous_model(
    schema: DatasetSchema,
) -> None:
    r = _round_where(lambda now, then: now == ProtocolStage.TRAIN, start=2)
    content, _ = round_content(schema, r)
    EvaluateRequest(server_round=r - 1).put(content)
    reply, bank = _mod_answer(message(MessageType.TRAIN, content))
    assert Dropped.take(reply.content).stage == ProtocolStage.TRAIN
    assert list(reply.content) == [keys.DROPPED] and bank.received == []


def test_no_bank_drops_out_of_the_set_up_secure_round() -> None:
    """Round 0 (the set-up's secure sum) is never a dropout round, at any rate."""
    for bank in ("bank-1", "bank-2", "EDUCATION=other"):
        assert dropout_stage(SEED, bank, 0, 0.99) is None
    assert any(dropout_stage(SEED, BANK, r, 0.99) is not None for r in range(1, 5))

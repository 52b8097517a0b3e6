"""Simulated dropouts: a Flower mod that takes simulated banks out of rounds.

Research runs study how secure aggregation copes with banks that vanish mid-round
(``fedcredit simulate --dropout-rate P``). The behaviour is a Flower mod that the
simulation wraps around each simulated bank's ClientApp; a deployed bank never
runs it, and nothing the coordinator sends switches it on.

With rate ``p``, a bank drops out of round ``r`` with probability ``p``, at one of the
stages ``advertise``, ``train`` or ``unmask`` chosen at random. The choice is a
SHA-256 hash of (seed, bank, round), so runs with and without secure aggregation
drop the same banks in the same rounds. A bank that drops out at a stage answers
that stage's message with a :class:`~credit.messages.Dropped` reply (and nothing
later in the round); dropping at ``advertise`` of round ``r`` means it advertises no
keys for ``r`` (in the set-up query, or in its reply to round ``r - 1``'s unmask
exchange: an unmask reply, or an advertise reply for a bank not asked to unmask).

A bank drops out of one round only. Round ``r``'s unmask query also asks for round
``r + 1``'s keys, so a bank that drops out of ``r`` at ``unmask`` still sends them (it
answers as to an advertise query, with its ``Dropped`` reply), unless it drops out of
``r + 1`` at ``advertise``. The evaluation a train message asks for goes with the
bank's train reply: a bank that drops out of round ``r`` at ``train`` does not score
round ``r - 1``'s model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flwr.app import Context, Message, MessageType, RecordDict
from flwr.clientapp.typing import ClientAppCallable, Mod

from credit import message_keys
from credit.messages import (
    Dropped,
    ProtocolStage,
    QueryInstructions,
    RoundInstructions,
    Task,
    secagg,
)

__all__ = ["dropout_mod", "dropout_stage"]

_STAGES = (ProtocolStage.ADVERTISE, ProtocolStage.TRAIN, ProtocolStage.UNMASK)

StageIn = Callable[[int], ProtocolStage | None]
"""The stage at which the bank drops out of a round (None: it does not)."""


def dropout_stage(seed: int, bank: str, server_round: int, rate: float) -> ProtocolStage | None:
    """The stage at which a simulated bank drops out of ``server_round``, or None.

    Banks drop out of training rounds (>= 1) only, not of the set-up's secure round 0:
    runs with and without secure aggregation then start from the same encoder.
    """
    if rate <= 0 or server_round < 1:
        return None
    digest = hashlib.sha256(f"dropout:{seed}:{bank}:{server_round}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    return _STAGES[digest[8] % len(_STAGES)] if draw < rate else None


def dropout_mod(*, seed: int, rate: float, bank_of: Callable[[Context], str]) -> Mod:
    """A mod that drops the bank ``bank_of(context)`` out of rounds with probability ``rate``.

    Parameters
    ----------
    seed : int
        The simulation's seed.
    rate : float
        Chance that a bank drops out of a round, in [0, 1).
    bank_of : callable
        The simulated bank's name for a node's context.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1); got {rate}")

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        bank = bank_of(context)

        def stage_in(server_round: int) -> ProtocolStage | None:
            return dropout_stage(seed, bank, server_round, rate)

        stage, server_round = _stage_of(message)
        if stage is not None and stage_in(server_round) == stage:
            return _dropped_out(message, context, call_next, stage, stage_in)
        reply = call_next(message, context)
        if _withholds_next_keys(message, reply, stage_in):
            del reply.content[message_keys.SECAGG_ADVERTISE]
        return reply

    return mod


def _dropped_out(
    message: Message,
    context: Context,
    call_next: ClientAppCallable,
    stage: ProtocolStage,
    stage_in: StageIn,
) -> Message:
    """The reply of a bank that drops out at ``stage``: ``Dropped``, and nothing of the round.

    An unmask query that also asks for the next round's keys is answered as the
    advertise query it also is (unless the bank drops out of that round at
    ``advertise``): dropping out of one round does not take the bank out of the next.
    """
    asked = secagg.AdvertiseRequest.take_optional(message.content)
    if (
        stage is not ProtocolStage.UNMASK
        or asked is None
        or stage_in(asked.advertise_round) == ProtocolStage.ADVERTISE
    ):
        content = RecordDict()
        Dropped(stage=stage).put(content)
        return Message(content=content, reply_to=message)
    _only_advertise(message)
    reply = call_next(message, context)
    if not reply.has_error():
        Dropped(stage=stage).put(reply.content)
    return reply


def _only_advertise(message: Message) -> None:
    """Make an unmask query that asks for the next round's keys an advertise query."""
    query = QueryInstructions.take(message.content)
    query.run_settings().query(Task.SECAGG_ADVERTISE).put(message.content)
    del message.content[message_keys.SECAGG]  # the unmask request


def _withholds_next_keys(message: Message, reply: Message, stage_in: StageIn) -> bool:
    """Whether an unmask reply must lose the keys it advertises for the next round."""
    if reply.has_error() or not secagg.Advertisement.present(reply.content):
        return False
    if _stage_of(message)[0] != ProtocolStage.UNMASK:
        return False
    asked = secagg.AdvertiseRequest.take_optional(message.content)
    return asked is not None and stage_in(asked.advertise_round) == ProtocolStage.ADVERTISE


def _stage_of(message: Message) -> tuple[ProtocolStage | None, int]:
    """Which droppable stage a message is, and of which round."""
    kind = message.metadata.message_type
    if kind == MessageType.TRAIN:
        return ProtocolStage.TRAIN, RoundInstructions.take(message.content).server_round
    if kind != MessageType.QUERY:
        return None, 0
    query = QueryInstructions.take(message.content)
    if query.task == Task.SECAGG_UNMASK:
        return ProtocolStage.UNMASK, query.server_round
    if query.task == Task.SECAGG_ADVERTISE:
        asked = secagg.AdvertiseRequest.take(message.content)
        return ProtocolStage.ADVERTISE, asked.advertise_round
    return None, 0

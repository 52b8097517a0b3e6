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
keys for ``r`` (in the set-up query, or in the evaluate reply of round ``r - 1``).
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


def dropout_stage(seed: int, bank: str, server_round: int, rate: float) -> ProtocolStage | None:
    """The stage at which a simulated bank drops out of ``server_round``, or None."""
    if rate <= 0:
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
        stage, server_round = _stage_of(message)
        if stage is not None and dropout_stage(seed, bank, server_round, rate) == stage:
            content = RecordDict()
            Dropped(stage=stage).put(content)
            return Message(content=content, reply_to=message)
        reply = call_next(message, context)
        if _withholds_next_keys(message, reply, lambda r: dropout_stage(seed, bank, r, rate)):
            del reply.content[message_keys.SECAGG]
        return reply

    return mod


def _withholds_next_keys(
    message: Message, reply: Message, stage_in: Callable[[int], ProtocolStage | None]
) -> bool:
    """Whether an evaluate reply must lose the keys it advertises for the next round."""
    if message.metadata.message_type != MessageType.EVALUATE or reply.has_error():
        return False
    asked = secagg.AdvertiseRequest.take_optional(message.content)
    if asked is None or message_keys.SECAGG not in reply.content:
        return False
    return stage_in(asked.advertise_round) == ProtocolStage.ADVERTISE


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

"""The participant's side of secure aggregation inside Flower messages.

The protocol state (per-run encryption key, this and next round's masking key and
self-mask seed, the shares other banks sealed for this one) lives in the node's
``context.state``, which Flower keeps at the bank's SuperNode between messages; it is
never sent to the coordinator.

Simulated dropouts: with ``dropout-rate`` p in the message config, a bank drops out of
round r with probability p, at one of the stages ``advertise``, ``train`` or
``unmask`` chosen at random; the choice is a hash of (seed, bank, round), so runs with
and without secure aggregation drop the same banks in the same rounds.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from numpy.typing import NDArray

from credit import message_keys as keys
from credit.records import config_int, config_record
from privacy.secagg.protocol import Participant
from privacy.secagg.records import (
    decode_fixed_point,
    decode_forward,
    decode_keys,
    decode_unmask,
    encode_advertisement,
    encode_keys,
)

__all__ = [
    "DropStage",
    "advertise",
    "answer_unmask",
    "dropout_stage",
    "dropped_reply",
    "enrollment",
    "mask_update",
    "wants_secure",
]

DropStage = Literal["advertise", "train", "unmask"]
_STAGES: tuple[DropStage, ...] = ("advertise", "train", "unmask")


def wants_secure(message: Message) -> bool:
    """Whether the coordinator runs this message's round with secure aggregation."""
    return keys.SECAGG in message.content.config_records


def dropout_stage(seed: int, bank: str, server_round: int, rate: float) -> DropStage | None:
    """The stage at which a simulated bank drops out of ``server_round``, or None."""
    if rate <= 0:
        return None
    digest = hashlib.sha256(f"dropout:{seed}:{bank}:{server_round}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    return _STAGES[digest[8] % len(_STAGES)] if draw < rate else None


def dropped_reply(message: Message, stage: DropStage) -> Message:
    """What a simulated bank that dropped out sends instead of its answer."""
    content = RecordDict({keys.DROPPED: ConfigRecord({"stage": stage})})
    return Message(content=content, reply_to=message)


def _session(context: Context, run: int) -> Participant:
    stored = context.state.config_records.get(keys.SECAGG)
    if stored is not None:
        value = stored[keys.PARTICIPANT_STATE]
        assert isinstance(value, bytes)
        participant = Participant.from_bytes(value)
        if participant.run == run and participant.me == context.node_id:
            return participant
    return Participant(context.node_id, run)


def _save(context: Context, participant: Participant) -> None:
    context.state[keys.SECAGG] = ConfigRecord({keys.PARTICIPANT_STATE: participant.to_bytes()})


def enrollment(context: Context, run: int) -> ConfigRecord:
    """The per-run public encryption key, sent once with the set-up reply."""
    participant = _session(context, run)
    _save(context, participant)
    return ConfigRecord({keys.ENCRYPTION_KEY: participant.encryption_public})


def advertise(context: Context, run: int, secagg: ConfigRecord) -> ConfigRecord | None:
    """Fresh keys for the requested round, shares sealed for the roster (None: not in it)."""
    participant = _session(context, run)
    roster = decode_keys(_bytes(secagg, keys.ROSTER), "roster")
    if participant.me not in roster:
        return None
    advertisement = participant.advertise(
        config_int(secagg, keys.ADVERTISE_ROUND), roster, config_int(secagg, keys.THRESHOLD)
    )
    _save(context, participant)
    return ConfigRecord({keys.ADVERTISEMENT: encode_advertisement(advertisement)})


def mask_update(
    context: Context,
    message: Message,
    server_round: int,
    values: NDArray[np.float64],
    weight: float,
) -> ArrayRecord:
    """Open the relayed shares, then mask ``weight * values`` for the coordinator."""
    secagg = config_record(message.content, keys.SECAGG)
    participant = _session(context, message.metadata.run_id)
    roster = decode_keys(_bytes(secagg, keys.ROSTER), "roster")
    participant.receive(server_round, decode_forward(_bytes(secagg, keys.FORWARD)), roster)
    code = decode_fixed_point(str(secagg[keys.FIXED_POINT]))
    masked = participant.mask(server_round, values, weight, code)
    _save(context, participant)
    return ArrayRecord({keys.SECAGG_MASKED: Array(masked)})


def answer_unmask(context: Context, message: Message) -> ConfigRecord:
    """The shares the coordinator asked for (refused if the request would expose an input)."""
    secagg = config_record(message.content, keys.SECAGG)
    participant = _session(context, message.metadata.run_id)
    revealed = participant.unmask(
        config_int(secagg, keys.SERVER_ROUND), decode_unmask(_bytes(secagg, keys.UNMASK))
    )
    _save(context, participant)
    return ConfigRecord({keys.REVEAL: encode_keys(revealed)})


def _bytes(record: ConfigRecord, key: str) -> bytes:
    value = record[key]
    if not isinstance(value, bytes):
        raise ValueError(f"secure-aggregation entry '{key}' must be bytes")
    return value

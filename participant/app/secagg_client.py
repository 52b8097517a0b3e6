"""The bank's side of secure aggregation inside Flower messages.

The protocol state (per-run encryption key, this and next round's masking key and
self-mask seed, the shares other banks sealed for this one) lives in the node's
``context.state``, which Flower keeps at the bank's SuperNode between messages; it is
never sent to the coordinator. The cryptography is :mod:`privacy.secagg.protocol`;
this module only moves its bytes in and out of the typed records of
:mod:`credit.messages.secagg`.
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context
from numpy.typing import NDArray

from credit import message_keys
from credit.messages import secagg
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.protocol import Participant
from privacy.secagg.wire import (
    decode_fixed_point,
    decode_forward,
    decode_keys,
    decode_unmask,
    encode_advertisement,
    encode_keys,
)

__all__ = ["advertise", "enrollment", "mask_update", "receive_keys", "reveal"]

_STATE = "participant-state"


def _session(context: Context, run: int) -> Participant:
    """This node's protocol state for Flower run ``run`` (a new one for a new run)."""
    stored = context.state.config_records.get(message_keys.SECAGG)
    if stored is not None and _STATE in stored:
        value = stored[_STATE]
        if not isinstance(value, bytes):
            raise TypeError(f"the node's secure-aggregation state is {type(value).__name__}")
        participant = Participant.from_bytes(value)
        if participant.run == run and participant.me == context.node_id:
            return participant
    return Participant(context.node_id, run)


def _save(context: Context, participant: Participant) -> None:
    context.state[message_keys.SECAGG] = ConfigRecord({_STATE: participant.to_bytes()})


def enrollment(context: Context, run: int) -> secagg.Enrollment:
    """The per-run public encryption key, sent once with the set-up reply."""
    participant = _session(context, run)
    _save(context, participant)
    return secagg.Enrollment(encryption_key=participant.encryption_public)


def advertise(
    context: Context, run: int, request: secagg.AdvertiseRequest
) -> secagg.Advertisement | None:
    """Fresh keys for the requested round, shares sealed for the roster (None: not in it)."""
    participant = _session(context, run)
    roster = decode_keys(request.roster, "roster")
    if participant.me not in roster:
        return None
    advertisement = participant.advertise(request.advertise_round, roster, request.threshold)
    _save(context, participant)
    return secagg.Advertisement(advertisement=encode_advertisement(advertisement))


def receive_keys(context: Context, run: int, inputs: secagg.TrainInputs) -> FixedPoint:
    """Open the peers' keys and the shares relayed for this bank; the round's fixed-point code.

    Called before the bank trains (and charges its privacy budget), so that inputs
    that do not decode are refused while nothing has been spent.
    """
    participant = _session(context, run)
    roster = decode_keys(inputs.roster, "roster")
    forward = decode_forward(inputs.forward)
    code = decode_fixed_point(inputs.fixed_point)
    participant.receive(inputs.server_round, forward, roster)
    _save(context, participant)
    return code


def mask_update(
    context: Context,
    run: int,
    *,
    server_round: int,
    values: NDArray[np.float64],
    weight: float,
    code: FixedPoint,
) -> ArrayRecord:
    """Mask ``weight * values`` in ``code`` for the coordinator (after :func:`receive_keys`)."""
    participant = _session(context, run)
    masked = participant.mask(server_round, values, weight, code)
    _save(context, participant)
    return ArrayRecord({message_keys.SECAGG_MASKED: Array(masked)})


def reveal(context: Context, run: int, request: secagg.UnmaskRequest) -> secagg.Reveal:
    """The shares the coordinator asked for (refused if the request would expose an input)."""
    participant = _session(context, run)
    unmask = decode_unmask(request.unmask)
    revealed = participant.unmask(request.server_round, unmask)
    _save(context, participant)
    return secagg.Reveal(reveal=encode_keys(revealed))

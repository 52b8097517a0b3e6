"""The bank's side of secure aggregation: the protocol's bytes in and out of typed records.

The protocol state (per-run encryption key, this and next round's masking key and
self-mask seed, the shares other banks sealed for this one) lives in the bank's
:class:`~participant.guard.sessions.SessionStore` and never leaves the bank. The
cryptography is :mod:`privacy.secagg.protocol`; this module only moves its bytes in
and out of the typed records of :mod:`credit.messages.secagg`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, Context
from numpy.typing import NDArray

from credit import message_keys
from credit.messages import secagg
from participant.guard.sessions import ContextSessions, SessionStore
from privacy.secagg.fixed_point import FixedPoint
from privacy.secagg.wire import (
    decode_fixed_point,
    decode_forward,
    decode_keys,
    decode_unmask,
    encode_advertisement,
    encode_keys,
)

__all__ = ["SecAggSession", "advertise", "enrollment", "mask_update", "receive_keys", "reveal"]


@dataclass(frozen=True)
class SecAggSession:
    """One node's secure-aggregation session in one Flower run, and where it is kept."""

    sessions: SessionStore
    node_id: int
    run: int

    @classmethod
    def in_context(cls, context: Context, run: int) -> SecAggSession:
        """The session of ``context``'s node, kept in its ``context.state`` (a simulated bank)."""
        return cls(ContextSessions(context), context.node_id, run)


def enrollment(where: SecAggSession) -> secagg.Enrollment:
    """The per-run public encryption key, sent once with the set-up reply."""
    participant = where.sessions.session(where.node_id, where.run)
    where.sessions.save(participant)
    return secagg.Enrollment(encryption_key=participant.encryption_public)


def advertise(
    where: SecAggSession, request: secagg.AdvertiseRequest
) -> secagg.Advertisement | None:
    """Fresh keys for the requested round, shares sealed for the roster (None: not in it)."""
    participant = where.sessions.session(where.node_id, where.run)
    roster = decode_keys(request.roster, "roster")
    if participant.me not in roster:
        return None
    advertisement = participant.advertise(request.advertise_round, roster, request.threshold)
    where.sessions.save(participant)
    return secagg.Advertisement(advertisement=encode_advertisement(advertisement))


def receive_keys(where: SecAggSession, inputs: secagg.TrainInputs) -> FixedPoint:
    """Open the peers' keys and the shares relayed for this bank; the round's fixed-point code.

    Called before the bank trains (and charges its privacy budget), so that inputs
    that do not decode are refused while nothing has been spent.
    """
    participant = where.sessions.session(where.node_id, where.run)
    roster = decode_keys(inputs.roster, "roster")
    forward = decode_forward(inputs.forward)
    code = decode_fixed_point(inputs.fixed_point)
    participant.receive(inputs.server_round, forward, roster)
    where.sessions.save(participant)
    return code


def mask_update(
    where: SecAggSession,
    *,
    server_round: int,
    values: NDArray[np.float64],
    weight: float,
    code: FixedPoint,
    totals: NDArray[np.float64] | None = None,
) -> ArrayRecord:
    """Mask ``weight * values`` in ``code``, then ``totals`` unweighted, for the coordinator.

    ``totals`` (the bank's evaluation) are encoded with
    :meth:`~privacy.secagg.fixed_point.FixedPoint.for_totals` for the roster's size.
    Called after :func:`receive_keys`.
    """
    participant = where.sessions.session(where.node_id, where.run)
    extra = None
    if totals is not None:
        roster = participant.roster_size(server_round)
        counts = FixedPoint.for_totals(participants=roster, ring_bits=code.ring_bits)
        extra = counts.encode(totals, 1.0)
    masked = participant.mask(server_round, values, weight, code, extra=extra)
    where.sessions.save(participant)
    return ArrayRecord({message_keys.SECAGG_MASKED: Array(masked)})


def reveal(where: SecAggSession, request: secagg.UnmaskRequest) -> secagg.Reveal:
    """The shares the coordinator asked for (refused if the request would expose an input)."""
    participant = where.sessions.session(where.node_id, where.run)
    unmask = decode_unmask(request.unmask)
    revealed = participant.unmask(request.server_round, unmask)
    where.sessions.save(participant)
    return secagg.Reveal(reveal=encode_keys(revealed))

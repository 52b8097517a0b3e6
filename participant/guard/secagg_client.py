"""The bank's side of secure aggregation: the protocol's bytes in and out of typed records.

The protocol state (per-run encryption key, this and next round's masking key and
self-mask seed, the shares other banks sealed for this one, the survivor set it
signed and what it revealed) lives in the bank's
:class:`~participant.guard.sessions.SessionStore` and never leaves the bank. The
bank's :class:`~privacy.secagg.signed.Identity` (its pinned member list, its signing
key, its threshold policy) comes from its own settings (:func:`identity_of`). The
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
from participant.guard.settings import GuardSettings
from privacy.secagg.fixed_point import FINE_FRACTION_BITS, FixedPoint
from privacy.secagg.members import member_name
from privacy.secagg.protocol import Participant
from privacy.secagg.signed import Identity
from privacy.secagg.wire import (
    decode_fixed_point,
    decode_forward,
    decode_roster,
    decode_survivors,
    decode_unmask,
    encode_advertisement,
    encode_keys,
)

__all__ = [
    "SecAggSession",
    "UnpinnedMembers",
    "advertise",
    "enrollment",
    "identity_of",
    "mask_totals",
    "mask_update",
    "receive_keys",
    "reveal",
    "round_members",
    "sign_survivors",
]


class UnpinnedMembers(ValueError):
    """Secure aggregation asked of a bank that has no member list pinned (or no signing key)."""


def identity_of(settings: GuardSettings) -> Identity:
    """The bank's secure-aggregation identity: pinned list, own name, audit key, policy.

    Raises
    ------
    UnpinnedMembers
        No member list is pinned, the bank keeps no audit key, or the list does not
        name this bank (:func:`~privacy.secagg.members.member_name` of its name) with
        this key: secure aggregation fails closed.
    credit.errors.ConfigError
        The pinned list's file changed since it was pinned.
    """
    from credit.audit import load_or_create_signing_key

    members = settings.pinned_members()
    audit = settings.audit_settings()
    if members is None:
        raise UnpinnedMembers(
            f"bank '{settings.bank_name}' has no consortium member list pinned, so it cannot "
            "check who it aggregates with: pin a member list with "
            "`fedcredit participant start --members FILE`"
        )
    if audit is None:
        raise UnpinnedMembers(
            f"bank '{settings.bank_name}' keeps no audit key to sign its secure-aggregation "
            "keys with: start it with an audit log and key"
        )
    try:
        return Identity(
            members=members,
            member=member_name(settings.bank_name),
            signing_key=load_or_create_signing_key(audit.key_path),
            policy=settings.secure_aggregation,
        )
    except ValueError as exc:  # not on the list, or listed with another key
        raise UnpinnedMembers(f"bank '{settings.bank_name}': {exc}") from exc


@dataclass(frozen=True)
class SecAggSession:
    """One node's secure-aggregation session in one Flower run, and where it is kept."""

    sessions: SessionStore
    node_id: int
    run: int
    identity: Identity

    @classmethod
    def in_context(cls, context: Context, run: int, identity: Identity) -> SecAggSession:
        """The session of ``context``'s node, kept in its ``context.state`` (a simulated bank)."""
        return cls(ContextSessions(context), context.node_id, run, identity)

    def participant(self) -> Participant:
        """The node's protocol state for the run."""
        return self.sessions.session(self.node_id, self.run, self.identity)


def enrollment(where: SecAggSession) -> secagg.Enrollment:
    """The signed per-run public encryption key, sent once with the set-up reply."""
    participant = where.participant()
    where.sessions.save(participant)
    entry = participant.enroll()
    return secagg.Enrollment(
        member=entry.member, encryption_key=entry.encryption_key, signature=entry.signature
    )


def advertise(
    where: SecAggSession, request: secagg.AdvertiseRequest
) -> secagg.Advertisement | None:
    """Fresh signed keys for the requested round, shares sealed for the roster (None: not in it).

    Raises
    ------
    privacy.secagg.signed.RosterRefused
        The roster, its graph or its threshold breaks the bank's policy (no key
        generated).
    """
    participant = where.participant()
    roster = decode_roster(request.roster)
    if participant.me not in roster:
        return None
    advertisement = participant.advertise(
        request.advertise_round, roster, request.threshold, degree=request.degree
    )
    where.sessions.save(participant)
    return secagg.Advertisement(advertisement=encode_advertisement(advertisement))


def receive_keys(where: SecAggSession, inputs: secagg.TrainInputs) -> FixedPoint:
    """Check the peers' signed keys, open the shares relayed for this bank; the round's code.

    Called before the bank trains (and charges its privacy budget), so that inputs
    that do not decode or verify are refused while nothing has been spent.

    Raises
    ------
    privacy.secagg.signed.SignatureRefused
        A peer's masking key is not signed by that member.
    ValueError
        The message's threshold is not the one the bank advertised with.
    """
    participant = where.participant()
    forward = decode_forward(inputs.forward)
    code = decode_fixed_point(inputs.fixed_point)
    expected = participant.threshold(inputs.server_round)
    if inputs.threshold != expected:
        raise ValueError(
            f"round {inputs.server_round}: threshold {inputs.threshold} is not the "
            f"{expected} this bank advertised its keys with"
        )
    participant.receive(inputs.server_round, forward)
    where.sessions.save(participant)
    return code


def round_members(where: SecAggSession, server_round: int) -> frozenset[str]:
    """U1 of ``server_round`` by member name (after :func:`receive_keys`)."""
    return where.participant().members(server_round)


def mask_update(
    where: SecAggSession,
    *,
    server_round: int,
    values: NDArray[np.float64],
    weight: float,
    code: FixedPoint,
    totals: NDArray[np.float64] | None = None,
    fine_totals: NDArray[np.float64] | None = None,
) -> ArrayRecord:
    """Mask ``weight * values`` in ``code``, then ``totals`` and ``fine_totals`` unweighted.

    ``totals`` (the bank's evaluation) are encoded with
    :meth:`~privacy.secagg.fixed_point.FixedPoint.for_totals` for the roster's size;
    ``fine_totals`` (the governance release's sums) after them with
    :data:`~privacy.secagg.fixed_point.FINE_FRACTION_BITS` fraction bits, which only a
    64-bit ring holds. Called after :func:`receive_keys`.

    Raises
    ------
    ValueError
        ``fine_totals`` in a ring of fewer than 64 bits.
    """
    participant = where.participant()
    parts = []
    roster = participant.roster_size(server_round)
    if totals is not None:
        counts = FixedPoint.for_totals(participants=roster, ring_bits=code.ring_bits)
        parts.append(counts.encode(totals, 1.0))
    if fine_totals is not None:
        if code.ring_bits < 64:
            raise ValueError(
                f"round {server_round}: fine totals are masked in the 64-bit ring only; the "
                f"round's code is {code.ring_bits}-bit"
            )
        fine = FixedPoint.for_totals(
            participants=roster, ring_bits=code.ring_bits, fraction_bits=FINE_FRACTION_BITS
        )
        parts.append(fine.encode(fine_totals, 1.0))
    extra = np.concatenate(parts) if parts else None
    masked = participant.mask(server_round, values, weight, code, extra=extra)
    where.sessions.save(participant)
    return ArrayRecord({message_keys.SECAGG_MASKED: Array(masked)})


def mask_totals(
    where: SecAggSession,
    *,
    server_round: int,
    code: FixedPoint,
    totals: NDArray[np.float64],
    fine_totals: NDArray[np.float64] | None = None,
) -> ArrayRecord:
    """Mask ``totals`` (and ``fine_totals``) alone (weight 0, no update): a set-up or
    last-evaluation round."""
    return mask_update(
        where,
        server_round=server_round,
        values=np.zeros(0),
        weight=0.0,
        code=code,
        totals=totals,
        fine_totals=fine_totals,
    )


def sign_survivors(
    where: SecAggSession, request: secagg.ConsistencyRequest
) -> secagg.SurvivorSignature:
    """The bank's signature of the round's survivor set (refused if it could expose anyone)."""
    participant = where.participant()
    survivors = decode_survivors(request.survivors)
    signature = participant.sign_survivors(request.server_round, survivors)
    where.sessions.save(participant)
    return secagg.SurvivorSignature(signature=signature)


def reveal(where: SecAggSession, request: secagg.UnmaskRequest) -> secagg.Reveal:
    """The shares the coordinator asked for (refused if the request would expose an input)."""
    participant = where.participant()
    unmask = decode_unmask(request.unmask)
    revealed = participant.unmask(request.server_round, unmask)
    where.sessions.save(participant)
    return secagg.Reveal(reveal=encode_keys(revealed))

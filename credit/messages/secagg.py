"""Secure aggregation's records: the ``secagg`` record of each message that carries one.

The protocol (:mod:`privacy.secagg.protocol`) speaks bytes-in, bytes-out
(:mod:`privacy.secagg.wire`); these parts carry those bytes and the round's
numbers inside Flower messages. Which part a ``secagg`` record holds follows from the
message: the coordinator asks with the first five, a bank answers with the last four.
The two advertise parts have a record of their own, ``secagg-advertise``: round r+1's
keys are asked for, and sent, beside round r's unmask request and reveal.

==========================  ===============================  ==========================
part                        message                          direction
==========================  ===============================  ==========================
:class:`KeyRequest`         feature-stats / enroll query     coordinator → bank
:class:`AdvertiseRequest`   advertise query, unmask query    coordinator → bank
:class:`TrainInputs`        train message                    coordinator → bank
:class:`ConsistencyRequest` consistency query                coordinator → bank
:class:`UnmaskRequest`      unmask query                     coordinator → bank
:class:`Enrollment`         feature-stats / enroll reply     bank → coordinator
:class:`Advertisement`      advertise reply, unmask reply    bank → coordinator
:class:`SurvivorSignature`  consistency reply                bank → coordinator
:class:`Reveal`             unmask reply                     bank → coordinator
==========================  ===============================  ==========================
"""

from __future__ import annotations

from pydantic import Field

from credit import message_keys
from credit.messages._parts import ConfigPart

__all__ = [
    "AdvertiseRequest",
    "Advertisement",
    "ConsistencyRequest",
    "Enrollment",
    "KeyRequest",
    "Reveal",
    "SurvivorSignature",
    "TrainInputs",
    "UnmaskRequest",
]

SIGNATURE_BYTES = 64
"""An Ed25519 signature."""


class _SecAggPart(ConfigPart):
    RECORD = message_keys.SECAGG


class KeyRequest(_SecAggPart):
    """Asks a joining bank for its per-run encryption key (an empty record)."""


class _AdvertisePart(ConfigPart):
    RECORD = message_keys.SECAGG_ADVERTISE


class AdvertiseRequest(_AdvertisePart):
    """Asks a bank for its masking key and sealed shares of ``advertise_round``.

    Parameters
    ----------
    roster : bytes
        Node id -> member name, per-run encryption key and enrollment signature of
        every member (``encode_roster``).
    threshold : int
        Shares needed to reconstruct a secret, >= 1 (a bank refuses any other than
        its own policy's for the roster's size).
    advertise_round : int
        The round the keys are for, >= 0 (round 0: the set-up release).
    degree : int, optional
        The sparse graph's degree, >= 2 (None: the complete graph). A bank computes
        the graph itself from the roster and refuses any degree but its policy's.
    """

    roster: bytes
    threshold: int = Field(ge=1)
    advertise_round: int = Field(ge=0)
    degree: int | None = Field(default=None, ge=2)


class TrainInputs(_SecAggPart):
    """What a bank needs to mask its update of ``server_round``.

    The roster is the one the bank checked when it advertised its keys for the round.

    Parameters
    ----------
    threshold : int
        Shares needed to reconstruct a secret, >= 1.
    server_round : int
        The round, >= 0 (round 0: the set-up release).
    forward : bytes
        The advertised masking keys, their signatures and the shares sealed for this
        bank (``encode_forward``).
    fixed_point : str
        The fixed-point code of the sum (``encode_fixed_point``).
    """

    threshold: int = Field(ge=1)
    server_round: int = Field(ge=0)
    forward: bytes
    fixed_point: str = Field(min_length=1)


class ConsistencyRequest(_SecAggPart):
    """Asks a survivor of ``server_round`` to sign its survivor set U2 (``encode_survivors``).

    The consistency check of Bonawitz et al. (CCS 2017, §6): a bank reveals shares
    only for a survivor set that ``t`` members of U1 signed.
    """

    server_round: int = Field(ge=0)
    survivors: bytes


class UnmaskRequest(_SecAggPart):
    """Asks a bank for the shares that unmask the sum of ``server_round`` (``encode_unmask``:
    survivors, dropouts and the survivors' signatures of the survivor set)."""

    server_round: int = Field(ge=0)
    unmask: bytes


class Enrollment(_SecAggPart):
    """A bank's per-run public encryption key (X25519, raw bytes), signed.

    Parameters
    ----------
    member : str
        The bank's name on the consortium's member list.
    encryption_key : bytes
        The per-run X25519 public key (32 bytes).
    signature : bytes
        The bank's Ed25519 signature of its enrollment (64 bytes;
        :func:`privacy.secagg.signed.enrollment_statement`).
    """

    member: str = Field(min_length=1, max_length=63)
    encryption_key: bytes = Field(min_length=32, max_length=32)
    signature: bytes = Field(min_length=SIGNATURE_BYTES, max_length=SIGNATURE_BYTES)


class Advertisement(_AdvertisePart):
    """A bank's masking key and sealed shares for a round (``encode_advertisement``)."""

    advertisement: bytes


class SurvivorSignature(_SecAggPart):
    """A bank's Ed25519 signature of the survivor set it was asked to sign (64 bytes)."""

    signature: bytes = Field(min_length=SIGNATURE_BYTES, max_length=SIGNATURE_BYTES)


class Reveal(_SecAggPart):
    """The shares a bank reveals for an unmask request (``encode_keys``)."""

    reveal: bytes

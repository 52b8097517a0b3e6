"""What both sides of the protocol share: its messages, stages, errors and pair masks.

:mod:`privacy.secagg.protocol` (the participant) and :mod:`privacy.secagg.aggregator`
(the coordinator) build on these; :mod:`privacy.secagg.protocol` re-exports them.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privacy.secagg.fixed_point import RingArray
from privacy.secagg.graph import CommunicationGraph, GraphPlan, graph_seed
from privacy.secagg.primitives import derive_key, expand_mask
from privacy.secagg.signed import RosterEntry

_SHARE_BYTES = 70  # Share.to_bytes(): 4-byte x, 66-byte y
SIGNATURE_BYTES = 64  # Ed25519


class StageError(RuntimeError):
    """A protocol step was called out of order."""

    def __init__(self, role: str, server_round: int, expected: str, actual: str) -> None:
        super().__init__(
            f"{role}, round {server_round}: illegal transition: expected stage "
            f"'{expected}', got '{actual}'"
        )


class UnmaskRefused(ValueError):
    """A participant refused a consistency or unmask request that could expose an input."""

    def __init__(self, server_round: int, node: int, reason: str) -> None:
        self.server_round = server_round
        self.node = node
        super().__init__(f"round {server_round}, node {node}: refused: {reason}")


class SecAggAborted(RuntimeError):
    """Too few participants remain to finish the round; nothing was revealed or summed."""

    def __init__(self, server_round: int, stage: str, have: int, threshold: int) -> None:
        self.server_round = server_round
        self.stage = stage
        self.have = have
        self.threshold = threshold
        super().__init__(
            f"round {server_round}: secure aggregation aborted at '{stage}': "
            f"{have} participant(s) left, threshold {threshold}; the global model is unchanged"
        )


class ParticipantStage(StrEnum):
    """Where a participant is within one round."""

    NONE = "none"
    ADVERTISED = "advertised"
    RECEIVED = "shares received"
    MASKED = "masked input sent"
    CHECKED = "survivor set signed"
    UNMASKED = "unmask answered"


class CoordinatorStage(StrEnum):
    """Where the coordinator is within one round."""

    ADVERTISEMENTS = "collecting advertisements"
    MASKED = "collecting masked inputs"
    CONSISTENCY = "collecting survivor signatures"
    REVEALS = "collecting reveals"
    DONE = "done"


@dataclass(frozen=True)
class Advertisement:
    """A participant's masking key for a round, its sealed shares by holder, its signature."""

    mask_public: bytes
    sealed: dict[int, bytes]
    signature: bytes


@dataclass(frozen=True)
class Forward:
    """What the coordinator relays to one participant before it masks.

    ``signatures`` are the advertisements' signatures, by sender.
    """

    mask_publics: dict[int, bytes]
    sealed: dict[int, bytes]
    signatures: dict[int, bytes]


@dataclass(frozen=True)
class UnmaskRequest:
    """Whose self-mask seeds (``survivors``) and masking keys (``dropped``) to reveal.

    ``signatures`` are the survivor-set signatures collected in the consistency check,
    by signer.
    """

    survivors: frozenset[int]
    dropped: frozenset[int]
    signatures: dict[int, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class SecAggCost:
    """The work one side of the protocol did in one round.

    The coordinator's are in a run's ``metrics.json`` (``secure_aggregation.costs``),
    a simulation's banks' in ``simulation.json`` (``secagg_costs``); no message
    carries a bank's. ``bench/secagg_graph.py`` measures both sides at 10 to 1,000
    banks.

    A bank's counts grow with its holders (k + 1: log N on the sparse graph, N on
    the complete one); the coordinator's ``reconstructions`` and ``mask_expansions``
    are its unmask work.

    Attributes
    ----------
    key_agreements : int
        X25519 exchanges (share keys to seal and open, pairwise mask keys, and at the
        coordinator a dropped bank's mask keys).
    shares : int
        Shamir shares dealt (two per holder: seed and masking key) and opened.
    mask_expansions : int
        AES-CTR mask expansions (self mask and pairwise masks).
    signature_verifications : int
        Ed25519 verifications of peers' keys and survivor-set signatures.
    reconstructions : int
        Shamir secrets reconstructed (coordinator: one per survivor and per dropout).
    """

    key_agreements: int = 0
    shares: int = 0
    mask_expansions: int = 0
    signature_verifications: int = 0
    reconstructions: int = 0

    def __add__(self, other: SecAggCost) -> SecAggCost:
        return SecAggCost(
            key_agreements=self.key_agreements + other.key_agreements,
            shares=self.shares + other.shares,
            mask_expansions=self.mask_expansions + other.mask_expansions,
            signature_verifications=self.signature_verifications + other.signature_verifications,
            reconstructions=self.reconstructions + other.reconstructions,
        )


def _graph_of(run: int, roster: Mapping[int, RosterEntry], plan: GraphPlan) -> CommunicationGraph:
    """The round's graph as every party computes it: ``plan`` over the signed roster."""
    return _remembered_graph(run, tuple(sorted(roster.items())), plan)


@functools.lru_cache(maxsize=16)
def _remembered_graph(
    run: int, roster: tuple[tuple[int, RosterEntry], ...], plan: GraphPlan
) -> CommunicationGraph:
    """:func:`_graph_of`, remembered per process: a pure function of the run, the exact
    roster and the plan, which every simulated bank of a worker computes for a round."""
    enrollments = {
        node: b"".join(
            struct.pack(">I", len(part)) + part
            for part in (entry.member.encode(), entry.encryption_key, entry.signature)
        )
        for node, entry in roster
    }
    return CommunicationGraph.build(
        plan, [node for node, _ in roster], graph_seed(run=run, enrollments=enrollments)
    )


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _x_of(roster: list[int], participant: int) -> int:
    """A participant's Shamir x-coordinate: its 1-based position in the sorted roster."""
    return roster.index(participant) + 1


def _pairwise_mask(
    private: X25519PrivateKey,
    publics: Mapping[int, bytes],
    *,
    run: int,
    server_round: int,
    pair: tuple[int, int],
    peer: int,
    length: int,
    ring_bits: int,
) -> RingArray:
    """The mask of ``pair``, from one side's private key and both masking public keys."""
    key = derive_key(
        private,
        publics[peer],
        purpose="mask",
        run=run,
        server_round=server_round,
        pair=pair,
        publics=(publics[pair[0]], publics[pair[1]]),
    )
    return expand_mask(key, length, ring_bits=ring_bits)


MIN_ROSTER = 3
"""The fewest banks a secure-aggregation roster may name (a bank's policy may ask more)."""
DEFAULT_THRESHOLD_FRACTION = 2 / 3
"""The default threshold rule's fraction: ``t = floor(2n/3) + 1``, so ``t > 2n/3``."""


def default_threshold(n_participants: int, fraction: float = DEFAULT_THRESHOLD_FRACTION) -> int:
    """The threshold banks compute by default: ``min(n, floor(fraction * n) + 1)``.

    The same rule as a bank's ``SecAggPolicy.threshold`` (default ``t > 2n/3``): a
    coordinator that proposes another threshold is refused by the banks.
    """
    if n_participants < 1:
        raise ValueError(f"n_participants must be >= 1; got {n_participants}")
    return min(n_participants, int(fraction * n_participants) + 1)

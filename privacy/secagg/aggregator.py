"""The coordinator's side of one secure-aggregation round (see :mod:`privacy.secagg.protocol`).

It relays what the participants send, fixes U1 (who advertised), U2 (who sent a masked
input) and U3 (who signed U2), and unmasks only the sum. It checks shapes and lengths,
never signatures: the participants check those against their pinned member lists.
On the sparse graph it computes the same graph as the banks (from the roster), to
route each bank only its neighbours' keys and shares; the banks never take its word
for the graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from privacy.secagg._rounds import (
    SIGNATURE_BYTES,
    Advertisement,
    CoordinatorStage,
    Forward,
    SecAggAborted,
    SecAggCost,
    StageError,
    UnmaskRequest,
    _graph_of,
    _pair,
    _pairwise_mask,
)
from privacy.secagg.fixed_point import FixedPoint, RingArray
from privacy.secagg.graph import CommunicationGraph, GraphPlan
from privacy.secagg.primitives import KEY_BYTES, expand_mask
from privacy.secagg.shamir import Share, combine_shares
from privacy.secagg.signed import RosterEntry

__all__ = ["RoundAggregator"]


class RoundAggregator:
    """The coordinator's side of one round: relay, collect, and unmask only the sum.

    Parameters
    ----------
    run, server_round : int
        Bound into every key; must match the participants'.
    roster : mapping of int to RosterEntry
        Participant id to its enrollment (only the ids are used here).
    threshold : int
        Fewest participants needed at every stage (of a bank's holders, on the sparse
        graph).
    code : FixedPoint
        The fixed-point code the participants encode with (the ring size matters here).
    length : int
        Length of each masked vector (values plus one weight element).
    plan : GraphPlan, optional
        The graph (the banks' own policy's for the roster); the complete graph with
        ``threshold`` if omitted.
    """

    def __init__(
        self,
        *,
        run: int,
        server_round: int,
        roster: Mapping[int, RosterEntry],
        threshold: int,
        code: FixedPoint,
        length: int,
        plan: GraphPlan | None = None,
    ) -> None:
        if not 1 <= threshold <= len(roster):
            raise ValueError(f"threshold must be in [1, {len(roster)}]; got {threshold}")
        plan = plan or GraphPlan.complete(len(roster), threshold)
        if plan.threshold != threshold or plan.banks != len(roster):
            raise ValueError(
                f"the plan ({plan.banks} banks, threshold {plan.threshold}) is not of this "
                f"roster ({len(roster)}) and threshold ({threshold})"
            )
        self.graph: CommunicationGraph = _graph_of(run, roster, plan)
        self.cost = SecAggCost()
        self.run = run
        self.server_round = server_round
        self.roster = sorted(roster)
        self.threshold = threshold
        self.code = code
        self.length = length
        self.stage = CoordinatorStage.ADVERTISEMENTS
        self._advertisements: dict[int, Advertisement] = {}
        self._masked: dict[int, RingArray] = {}
        self._survivors: frozenset[int] | None = None
        self._signatures: dict[int, bytes] = {}
        self._reveals: dict[int, dict[int, bytes]] = {}
        self._request: UnmaskRequest | None = None

    def _expect(self, expected: CoordinatorStage) -> None:
        if self.stage is not expected:
            raise StageError("coordinator", self.server_round, expected.value, self.stage.value)

    def _abort_below(self, have: int, stage: str) -> None:
        if have < self.threshold:
            raise SecAggAborted(self.server_round, stage, have, self.threshold)

    def expect_length(self, length: int, *, code: FixedPoint | None = None) -> None:
        """Change the input length, and the code if given (keys collected ahead for a
        round put to another use; the code's ring is only used once inputs are masked)."""
        self._expect(CoordinatorStage.ADVERTISEMENTS)
        if length < 1:
            raise ValueError(f"length must be >= 1; got {length}")
        self.length = length
        if code is not None:
            self.code = code

    def add_advertisement(self, participant: int, advertisement: Advertisement) -> bool:
        """Accept a well-formed advertisement from a roster member; False if discarded."""
        self._expect(CoordinatorStage.ADVERTISEMENTS)
        if participant not in self.roster:
            return False
        if set(advertisement.sealed) != self.graph.holders(participant):
            return False
        if len(advertisement.mask_public) != KEY_BYTES:
            return False
        if len(advertisement.signature) != SIGNATURE_BYTES:
            return False
        self._advertisements[participant] = advertisement
        return True

    def close_advertisements(self) -> dict[int, Forward]:
        """Fix U1; what to relay to each of its members."""
        self._expect(CoordinatorStage.ADVERTISEMENTS)
        self._abort_below(len(self._advertisements), "advertise")
        members = sorted(self._advertisements)
        self.stage = CoordinatorStage.MASKED
        forwards = {}
        for receiver in members:
            senders = sorted(self.graph.holders(receiver) & self._advertisements.keys())
            forwards[receiver] = Forward(
                mask_publics={pid: self._advertisements[pid].mask_public for pid in senders},
                sealed={pid: self._advertisements[pid].sealed[receiver] for pid in senders},
                signatures={pid: self._advertisements[pid].signature for pid in senders},
            )
        return forwards

    @property
    def members(self) -> list[int]:
        """U1: the participants whose keys were relayed this round."""
        return sorted(self._advertisements)

    def add_masked(self, participant: int, masked: RingArray) -> None:
        """Accept a masked input from a member of U1."""
        self._expect(CoordinatorStage.MASKED)
        if participant not in self._advertisements:
            raise ValueError(f"round {self.server_round}: {participant} is not in this round")
        if masked.shape != (self.length,) or masked.dtype != self.code.dtype:
            raise ValueError(
                f"round {self.server_round}: masked input of {participant} has shape "
                f"{masked.shape} {masked.dtype}; expected ({self.length},) {self.code.dtype}"
            )
        self._masked[participant] = masked

    def close_masked(self) -> frozenset[int]:
        """Fix U2: the survivor set every survivor is asked to sign (the consistency check).

        Raises
        ------
        SecAggAborted
            Fewer survivors than the graph allows, or some member of U1 (dropped or
            not) has fewer than ``t`` surviving holders: its mask could not be
            removed, and the round fails closed.
        """
        self._expect(CoordinatorStage.MASKED)
        self._abort_below(len(self._masked), "masked input")
        survivors = frozenset(self._masked)
        if len(survivors) < self.graph.plan.min_survivors:
            raise SecAggAborted(
                self.server_round, "masked input", len(survivors), self.graph.plan.min_survivors
            )
        for owner in sorted(self._advertisements):
            have = len(survivors & self.graph.holders(owner))
            if have < self.threshold:
                raise SecAggAborted(self.server_round, "masked input", have, self.threshold)
        self._survivors = survivors
        self.stage = CoordinatorStage.CONSISTENCY
        return self._survivors

    def add_survivor_signature(self, participant: int, signature: bytes) -> None:
        """Accept a survivor's signature of U2 (checked by the participants, not here).

        Raises
        ------
        ValueError
            ``participant`` is not a survivor, or the signature is not 64 bytes.
        """
        self._expect(CoordinatorStage.CONSISTENCY)
        if self._survivors is None or participant not in self._survivors:
            raise ValueError(f"round {self.server_round}: {participant} is not a survivor")
        if len(signature) != SIGNATURE_BYTES:
            raise ValueError(
                f"round {self.server_round}: the survivor-set signature of {participant} has "
                f"{len(signature)} bytes, expected {SIGNATURE_BYTES}"
            )
        self._signatures[participant] = signature

    def close_consistency(self) -> UnmaskRequest:
        """Fix U3 (who signed U2); the unmask request every survivor gets.

        Raises
        ------
        SecAggAborted
            Fewer than ``t`` holders of some member of U1 signed: its holders would
            refuse to reveal its shares, so the round fails closed here.
        """
        self._expect(CoordinatorStage.CONSISTENCY)
        self._abort_below(len(self._signatures), "consistency check")
        for owner in sorted(self._advertisements):
            have = len(self._signatures.keys() & self.graph.holders(owner))
            if have < self.threshold:
                raise SecAggAborted(self.server_round, "consistency check", have, self.threshold)
        survivors = self._survivors or frozenset()
        self._request = UnmaskRequest(
            survivors=survivors,
            dropped=frozenset(self._advertisements) - survivors,
            signatures=dict(self._signatures),
        )
        self.stage = CoordinatorStage.REVEALS
        return self._request

    def request_for(self, participant: int) -> UnmaskRequest:
        """The unmask request of one survivor: the round's survivor set, the dropouts it
        holds shares of, and the signatures of its holders' holders (all it checks).

        On the complete graph this is the whole request.
        """
        if self._request is None:
            raise StageError("coordinator", self.server_round, "consistency closed", "none")
        holders = self.graph.holders(participant)
        nearby = set().union(*(self.graph.holders(owner) for owner in holders))
        return UnmaskRequest(
            survivors=self._request.survivors,
            dropped=self._request.dropped & holders,
            signatures={
                node: signature
                for node, signature in self._request.signatures.items()
                if node in nearby
            },
        )

    def add_reveal(self, participant: int, shares: Mapping[int, bytes]) -> None:
        """Accept one survivor's revealed shares."""
        self._expect(CoordinatorStage.REVEALS)
        if participant not in self._masked:
            raise ValueError(f"round {self.server_round}: {participant} is not a survivor")
        self._reveals[participant] = dict(shares)

    def finish(self) -> tuple[RingArray, Set[int]]:
        """Unmask and return the ring sum of the survivors' encoded inputs, and who they are."""
        self._expect(CoordinatorStage.REVEALS)
        self._abort_below(len(self._reveals), "unmask")
        if self._request is None:
            raise StageError("coordinator", self.server_round, "masked input closed", "none")
        bits = self.code.ring_bits
        total = np.zeros(self.length, dtype=self.code.dtype)
        for masked in self._masked.values():
            total += masked
        for owner in self._request.survivors:
            seed = self._reconstruct(owner)
            total -= expand_mask(seed, self.length, ring_bits=bits)
            self.cost = self.cost + SecAggCost(mask_expansions=1)
        publics = {pid: ad.mask_public for pid, ad in self._advertisements.items()}
        for owner in self._request.dropped:
            private = X25519PrivateKey.from_private_bytes(self._reconstruct(owner))
            peers = sorted(self._request.survivors & self.graph.neighbours[owner])
            for pid in peers:
                mask = _pairwise_mask(
                    private,
                    publics,
                    run=self.run,
                    server_round=self.server_round,
                    pair=_pair(owner, pid),
                    peer=pid,
                    length=self.length,
                    ring_bits=bits,
                )
                # pid added +mask if pid < owner, else -mask: take that back.
                combine = np.subtract if pid < owner else np.add
                combine(total, mask, out=total)
            work = SecAggCost(key_agreements=len(peers), mask_expansions=len(peers))
            self.cost = self.cost + work
        self.stage = CoordinatorStage.DONE
        return total, self._request.survivors

    def _reconstruct(self, owner: int) -> bytes:
        revealed = (self._reveals.get(holder, {}) for holder in sorted(self.graph.holders(owner)))
        shares = [Share.from_bytes(reveal[owner]) for reveal in revealed if owner in reveal]
        if len(shares) < self.threshold:
            raise SecAggAborted(self.server_round, "unmask", len(shares), self.threshold)
        self.cost = self.cost + SecAggCost(reconstructions=1)
        return combine_shares(shares[: self.threshold], length=KEY_BYTES)

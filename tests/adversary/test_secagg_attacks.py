"""A malicious coordinator (and malicious banks) against secure aggregation (issue 13).

Each test scripts one attack with the protocol's own classes (``Participant``,
``RoundAggregator``; the bank's guard where the attack goes through it), asserts that
the honest bank refuses, and computes what the attacker can reconstruct of the
victim's update from what it obtained: never the update. Before issue 13 every one of
these attacks but three succeeded, each replayed with the protocol classes of the code
before (commit 03fa669): swapping the peers' masking keys in one bank's Forward, then a
normal unmask, gave back that bank's exact encoded update; threshold 1 and a roster
with unknown members were accepted; with 5 banks (threshold 3 then) two survivor sets
and one colluding bank gave t shares of both the victim's seed and masking key, and
its exact update; NaN encoded as -2^31; a forged share unmasked to a "sum" of weight
365,857.8 instead of 5, without any error; a replayed round was re-sent whatever its
members. Three held already: a second unmask request was refused by the one-shot stage
machine, a vector of the wrong shape was refused by ``add_masked``, and a bank that
required secure aggregation refused a plain round (no bank required it by default:
``participant start`` turns it on now). Against that
code every test here fails (the signed API it uses does not exist there).

The bank-side attacks (NaN, a truncated vector, a forged share) assert that the
honest banks' sum is not poisoned: the bad input is dropped, or the round aborted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from numpy.typing import NDArray

from privacy.secagg.fixed_point import FixedPoint, RingArray
from privacy.secagg.graph import GraphKind
from privacy.secagg.primitives import KEY_BYTES, expand_mask, public_bytes
from privacy.secagg.protocol import (
    Advertisement,
    Forward,
    Participant,
    ParticipantStage,
    RoundAggregator,
    UnmaskRefused,
    UnmaskRequest,
    default_threshold,
)
from privacy.secagg.shamir import Share, combine_shares
from privacy.secagg.signed import (
    RosterEntry,
    RosterRefused,
    SignatureRefused,
    enrollment_statement,
    survivors_statement,
)
from tests.support.secagg import CONSORTIUM, GRAPHS, Consortium, consortium

RUN = 7
ROUND = 1
CODE = FixedPoint(clip=16.0, fraction_bits=12, ring_bits=32)
LENGTH = 6
_SHARE_BYTES = 70


def _update(index: int) -> NDArray[np.float64]:
    """Bank ``index``'s (secret) update."""
    return np.linspace(-3.0, 3.0, LENGTH) * (index + 1)


def _encoded(index: int) -> RingArray:
    """What bank ``index`` masks: its weighted update and its weight (weight 1)."""
    return np.append(CODE.encode(_update(index), 1.0), CODE.encode_weight(1.0))


def _differs(estimate: RingArray | None, index: int) -> bool:
    """Whether the attacker's estimate is not bank ``index``'s encoded update."""
    return estimate is None or not np.array_equal(estimate, _encoded(index))


BANKS = {"complete": 4, "sparse": 10}
"""Banks of a graph-agnostic attack: 4 on the complete graph, 10 on the sparse (degree 6)."""
BOTH = pytest.mark.parametrize("graph", ["complete", "sparse"])


class _Round:
    """One round of ``n`` banks driven by a coordinator script, with every bank's output."""

    def __init__(self, n: int, graph: str = "complete") -> None:
        policy = GRAPHS[graph]
        self.members: Consortium = consortium(n, run=RUN, policy=policy)
        self.banks: dict[int, Participant] = self.members.participants
        self.ids = sorted(self.banks)
        self.roster = self.members.roster()
        self.plan = policy.plan(n)
        self.threshold = self.plan.threshold
        self.degree = None if self.plan.kind is GraphKind.COMPLETE else self.plan.degree
        self.aggregator = RoundAggregator(
            run=RUN,
            server_round=ROUND,
            roster=self.roster,
            threshold=self.threshold,
            code=CODE,
            length=LENGTH + 1,
            plan=self.plan,
        )
        self.advertisements: dict[int, Advertisement] = {}
        self.masked: dict[int, RingArray] = {}

    def index(self, node: int) -> int:
        return self.ids.index(node)

    def advertise(self) -> dict[int, Forward]:
        for node, bank in self.banks.items():
            self.advertisements[node] = bank.advertise(
                ROUND, self.roster, self.threshold, degree=self.degree
            )
            assert self.aggregator.add_advertisement(node, self.advertisements[node])
        return self.aggregator.close_advertisements()

    def mask_all(self, forwards: dict[int, Forward]) -> None:
        for node, forward in forwards.items():
            self.banks[node].receive(ROUND, forward)
            self.masked[node] = self.banks[node].mask(ROUND, _update(self.index(node)), 1.0, CODE)

    def signatures(self, survivors: frozenset[int], signers: list[int]) -> dict[int, bytes]:
        return {node: self.banks[node].sign_survivors(ROUND, survivors) for node in signers}


def _attacker_keys(n: int) -> list[X25519PrivateKey]:
    return [X25519PrivateKey.generate() for _ in range(n)]


# -- key substitution -------------------------------------------------------------------


@BOTH
def test_coordinator_substituting_peer_masking_keys_is_refused(graph: str) -> None:
    """The attack of the issue: swap every peer's masking key in the victim's Forward for
    one the coordinator holds, take the victim's self-mask seed from a normal unmask,
    and strip every pairwise mask itself. The victim checks each key's signature first."""
    attack = _Round(BANKS[graph], graph)
    forwards = attack.advertise()
    victim = attack.ids[0]
    own = _attacker_keys(len(attack.ids))
    swapped = {
        node: (public if node == victim else public_bytes(own[i]))
        for i, (node, public) in enumerate(forwards[victim].mask_publics.items())
    }

    with pytest.raises(SignatureRefused, match=r"round 1, node \d+: refused: the masking key"):
        attack.banks[victim].receive(ROUND, replace(forwards[victim], mask_publics=swapped))

    assert attack.banks[victim].stage(ROUND) is ParticipantStage.ADVERTISED  # nothing masked
    assert _differs(attack.masked.get(victim), 0)


@BOTH
def test_coordinator_substituting_peer_encryption_keys_is_refused(graph: str) -> None:
    """Swap t peers' encryption keys in the roster sent to the victim, to open the shares
    of its seed and masking key it seals for them. The enrollments no longer verify: the
    victim generates no key and seals no share."""
    attack = _Round(BANKS[graph], graph)
    victim = attack.ids[0]
    forged = dict(attack.roster)
    for node in attack.ids[1 : 1 + attack.threshold]:
        fake = public_bytes(X25519PrivateKey.generate())
        forged[node] = replace(forged[node], encryption_key=fake)

    with pytest.raises(RosterRefused, match=r"is not signed by that member; no key was generated"):
        attack.banks[victim].advertise(ROUND, forged, attack.threshold, degree=attack.degree)

    assert attack.banks[victim].stage(ROUND) is ParticipantStage.NONE
    assert _differs(attack.masked.get(victim), 0)


# -- the coordinator's threshold and roster ------------------------------------------------


@BOTH
def test_coordinator_proposing_threshold_one_is_refused(graph: str) -> None:
    """With t = 1 every single share opens a secret: one share of the victim's seed and
    masking key, both from the coordinator's colluding member, unmask it."""
    attack = _Round(BANKS[graph], graph)
    victim = attack.ids[0]

    expected = rf"threshold 1 is not the bank's threshold {attack.threshold}"
    with pytest.raises(RosterRefused, match=expected):
        attack.banks[victim].advertise(ROUND, attack.roster, 1, degree=attack.degree)

    assert attack.banks[victim].stage(ROUND) is ParticipantStage.NONE
    assert _differs(attack.masked.get(victim), 0)


def _fake_enrollment(name: str, signer: Ed25519PrivateKey, node: int) -> RosterEntry:
    key = public_bytes(X25519PrivateKey.generate())
    statement = enrollment_statement(
        consortium=CONSORTIUM, run=RUN, node=node, member=name, encryption_key=key
    )
    return RosterEntry(member=name, encryption_key=key, signature=signer.sign(statement))


@pytest.mark.parametrize("listed", [False, True], ids=["unlisted-names", "listed-names"])
def test_coordinator_adding_t_fake_roster_members_is_refused(listed: bool) -> None:
    """Three real banks and t = 7 members whose encryption keys the coordinator holds (a
    roster of 10): those 7 would receive 7 shares of the victim's secrets, enough to open
    them. Unlisted names are refused; names on the list (members that take no part)
    cannot be enrolled without their signing keys."""
    fakes = 7
    members = consortium(3, run=RUN, extra_members=fakes)
    victim = min(members.participants)
    bank = members.participants[victim]
    padded = members.roster()
    coordinator = Ed25519PrivateKey.generate()
    names = [f"bank-{i}" if listed else f"sybil-{i}" for i in range(4, 4 + fakes)]
    for offset, name in enumerate(names):
        padded[10_000 + offset] = _fake_enrollment(name, coordinator, 10_000 + offset)
    assert default_threshold(len(padded)) == fakes

    problem = "is not signed by that member" if listed else "are not on the pinned member list"
    with pytest.raises(RosterRefused, match=problem):
        bank.advertise(ROUND, padded, default_threshold(len(padded)))

    assert bank.stage(ROUND) is ParticipantStage.NONE  # no key, no share sealed for anyone
    assert _combine([], fakes) is None


# -- dropout lies --------------------------------------------------------------------------


def _attacker_estimate(
    masked: RingArray, seed: bytes | None, pairwise_removed: RingArray | None
) -> RingArray | None:
    """The victim's input as the attacker computes it from what it holds (None: nothing)."""
    if seed is None:
        return None
    estimate = masked - expand_mask(seed, masked.size, ring_bits=CODE.ring_bits)
    if pairwise_removed is not None:
        estimate = estimate - pairwise_removed
    return estimate


def _combine(shares: list[bytes], threshold: int) -> bytes | None:
    """The secret from ``shares`` if at least ``threshold`` of them (None: too few)."""
    if len(shares) < threshold:
        return None
    return combine_shares([Share.from_bytes(s) for s in shares[:threshold]], length=KEY_BYTES)


def test_inconsistent_survivor_sets_with_one_colluding_bank_are_refused() -> None:
    """Five banks, t = 4. The coordinator tells two honest banks that the victim dropped
    out (to get shares of its masking key) and the rest that it survived (to get shares of
    its self-mask seed); one colluding bank signs both sets and reveals everything. Each
    honest bank sees fewer than t signatures over the set it signed, and refuses."""
    attack = _Round(5)
    attack.mask_all(attack.advertise())
    victim, colluder, *honest = attack.ids
    everyone = frozenset(attack.ids)
    without_victim = everyone - {victim}
    told_dropped, told_survived = honest[:2], [honest[2], victim]
    signed_dropped = attack.signatures(without_victim, told_dropped)
    signed_survived = attack.signatures(everyone, told_survived)
    colluding = attack.members.identity("bank-2")
    for survivors, signatures in ((without_victim, signed_dropped), (everyone, signed_survived)):
        statement = survivors_statement(
            consortium=CONSORTIUM, run=RUN, server_round=ROUND, survivors=survivors
        )
        signatures[colluder] = colluding.sign(statement)

    seed_shares, key_shares = [], []
    for node in told_dropped:
        request = UnmaskRequest(
            survivors=without_victim, dropped=frozenset({victim}), signatures=signed_dropped
        )
        with pytest.raises(UnmaskRefused, match=r"3 member\(s\) of U1 signed .* needs 4"):
            attack.banks[node].unmask(ROUND, request)
    for node in told_survived:
        request = UnmaskRequest(survivors=everyone, dropped=frozenset(), signatures=signed_survived)
        with pytest.raises(UnmaskRefused, match=r"3 member\(s\) of U1 signed .* needs 4"):
            attack.banks[node].unmask(ROUND, request)
    # The colluding bank hands over its whole state: both its shares of the victim's secrets.
    opened = attack.banks[colluder]._rounds[ROUND].shares[victim]
    seed_shares.append(opened[:_SHARE_BYTES])
    key_shares.append(opened[_SHARE_BYTES:])

    seed = _combine(seed_shares, attack.threshold)
    assert seed is None and _combine(key_shares, attack.threshold) is None
    assert _differs(_attacker_estimate(attack.masked[victim], seed, None), 0)


@BOTH
def test_requesting_both_shares_of_one_bank_in_two_requests_is_refused(graph: str) -> None:
    """A first, honest request reveals every survivor's self-mask seed share; a second one
    asks the same banks (the victim's holders) for the victim's masking-key share.
    Refused: the bank reveals only for the survivor set it signed, and never the other
    kind of share of an owner."""
    attack = _Round(BANKS[graph], graph)
    attack.mask_all(attack.advertise())
    victim = attack.ids[0]
    everyone = frozenset(attack.ids)
    signatures = attack.signatures(everyone, attack.ids)
    first = UnmaskRequest(survivors=everyone, dropped=frozenset(), signatures=signatures)
    holders = sorted(attack.aggregator.graph.holders(victim) - {victim})
    seed_shares = [attack.banks[n].unmask(ROUND, first)[victim] for n in holders]

    for second in (
        UnmaskRequest(survivors=everyone, dropped=frozenset({victim}), signatures=signatures),
        UnmaskRequest(
            survivors=everyone - {victim}, dropped=frozenset({victim}), signatures=signatures
        ),
    ):
        for node in holders:
            with pytest.raises(UnmaskRefused, match=r"both the self-mask|not the one this"):
                attack.banks[node].unmask(ROUND, second)

    seed = _combine(seed_shares, attack.threshold)
    assert seed is not None  # the seed is out, as in any round; the masking key is not
    estimate = _attacker_estimate(attack.masked[victim], seed, None)
    assert _differs(estimate, 0)  # the pairwise masks still hide the update


@BOTH
def test_a_second_survivor_set_is_never_signed(graph: str) -> None:
    """The consistency check's other half: a bank signs one survivor set per round."""
    attack = _Round(BANKS[graph], graph)
    attack.mask_all(attack.advertise())
    node = attack.ids[1]
    everyone = frozenset(attack.ids)
    attack.banks[node].sign_survivors(ROUND, everyone)
    with pytest.raises(UnmaskRefused, match=r"signed survivor set .* already; refuses another"):
        attack.banks[node].sign_survivors(ROUND, everyone - {attack.ids[0]})


# -- bad input from banks --------------------------------------------------------------------


def _honest_mean(attack: _Round, nodes: list[int]) -> NDArray[np.float64]:
    return np.mean([np.clip(_update(attack.index(n)), -16, 16) for n in nodes], axis=0)


def _finish(attack: _Round, masked: dict[int, RingArray]) -> NDArray[np.float64]:
    for node, vector in masked.items():
        attack.aggregator.add_masked(node, vector)
    survivors = attack.aggregator.close_masked()
    for node in sorted(survivors):
        signature = attack.banks[node].sign_survivors(ROUND, survivors)
        attack.aggregator.add_survivor_signature(node, signature)
    attack.aggregator.close_consistency()
    for node in sorted(survivors):
        request = attack.aggregator.request_for(node)
        attack.aggregator.add_reveal(node, attack.banks[node].unmask(ROUND, request))
    total, _ = attack.aggregator.finish()
    return CODE.decode_mean(total[:-1], total[-1])


@BOTH
def test_a_bank_sending_nan_is_refused_before_encoding(graph: str) -> None:
    """NaN used to encode as -2^31 and wrap the sum. It is refused before any encoding:
    the bank sends nothing, the others' sum is exact."""
    attack = _Round(BANKS[graph], graph)
    forwards = attack.advertise()
    poisoner, *others = attack.ids
    attack.banks[poisoner].receive(ROUND, forwards[poisoner])
    poisoned = _update(0)
    poisoned[2] = np.nan

    with pytest.raises(ValueError, match=r"values must be finite: 1 of 6 are NaN or infinite"):
        attack.banks[poisoner].mask(ROUND, poisoned, 1.0, CODE)

    assert attack.banks[poisoner].stage(ROUND) is ParticipantStage.RECEIVED
    for node in others:
        attack.banks[node].receive(ROUND, forwards[node])
    masked = {n: attack.banks[n].mask(ROUND, _update(attack.index(n)), 1.0, CODE) for n in others}
    mean = _finish(attack, masked)
    np.testing.assert_allclose(mean, _honest_mean(attack, others), atol=1e-3)


@BOTH
def test_a_bank_sending_a_truncated_vector_is_dropped(graph: str) -> None:
    """A masked vector one entry short is refused by the coordinator (shape named); the
    bank counts as dropped after masking and its masks are removed from the others' sum."""
    attack = _Round(BANKS[graph], graph)
    attack.mask_all(attack.advertise())
    cheat, *others = attack.ids

    with pytest.raises(ValueError, match=r"masked input of \d+ has shape \(6,\)"):
        attack.aggregator.add_masked(cheat, attack.masked[cheat][:-1])

    mean = _finish(attack, {n: attack.masked[n] for n in others})
    np.testing.assert_allclose(mean, _honest_mean(attack, others), atol=1e-3)

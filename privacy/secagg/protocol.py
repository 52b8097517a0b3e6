"""The secure aggregation protocol as two explicit state machines.

This is SecAgg in its malicious-server variant (Bonawitz et al., CCS 2017, §6), with
the round-ahead key advertisement of SecAgg+ (Bell et al., CCS 2020): a training
round costs two message round trips over plain FedAvg (the consistency check and the
unmask request). It runs on the complete graph or on SecAgg+'s sparse Harary graph
(:mod:`privacy.secagg.graph`); below, "the roster" is a participant's *holders* on
the sparse graph (itself and its k neighbours: whom it shares with and pairs masks
with), and each rule holds per neighbourhood: a participant checks its holders'
keys, needs ``t`` of its holders at every stage, refuses a survivor set missing more
than the graph's dropout bound, and reveals an owner's share only when ``t`` of that
owner's holders signed the survivor set.

One round ``r``, for participants ``U`` (the run's roster, ids sorted)::

    participant i                          coordinator
    ─────────────                          ───────────
    advertise(r): check the roster (pinned members, own threshold); fresh X25519
      masking key s_i and self-mask seed b_i; Shamir-share both among the roster
      (threshold t); seal each share for its holder j with ChaCha20-Poly1305 under
      HKDF(X25519(c_i, c_j)); sign (c_i, s_i's public key)  ─▶ keeps what arrives: U1
    receive(r) ◀─ U1's masking public keys, their signatures, the shares sealed for i
      every signature checked against the pinned member list first
    mask(r): y_i = encode(w_i x_i) + PRG(b_i) + Σ_{j∈U1, j≠i} ±PRG(HKDF(X25519(s_i, s_j)))
                                        ─▶ keeps what arrives: U2 ⊆ U1
    sign_survivors(r) ◀─ U2; i signs it (U2 ⊆ U1, i ∈ U2, |U2| ≥ t) ─▶ U3 ⊆ U2, |U3| ≥ t
    unmask(r) ◀─ U2, U3's signatures: "self-mask shares of U2, masking-key shares of
      U1 \\ U2"; refused unless ≥ t members of U1 signed exactly the U2 i signed, and
      never both kinds for one participant across the round's requests ─▶ U4, |U4| ≥ t
                               sum_{U2} y_i - sum_{U2} PRG(b_i)
                                 - sum_{i in U1\\U2, j in U2} ±PRG(s_ij)
                               = sum_{U2} encode(w_i x_i)

``c_i`` is the participant's per-run encryption key, enrolled (signed) once at
set-up. The pairwise mask between ``i < j`` is added by ``i`` and subtracted by
``j``. Every PRG is the AES-256-CTR keystream under a key used for one mask only;
HKDF's ``info`` binds both parties' public keys.

Security model: the coordinator routes every message and may deviate from the
protocol (drop, reorder, substitute, lie about who dropped out). It cannot sign as a
member: every key and survivor set a participant acts on is signed by a member of
the participant's pinned list (:mod:`privacy.secagg.signed`), and the threshold is
the participant's own. A coordinator colluding with fewer than ``2t - N`` members
cannot obtain both the self-mask seed and the masking key of an honest participant
(two different signed survivor sets need ``2t - N`` members to sign both); with
``t > 2N/3`` that is fewer than ``N/3`` colluding members. Fewer than ``t``
colluding participants learn nothing about another's secrets.

Notes
-----
Each participant persists which kind of share it revealed for each owner in a
round, so a second unmask request may repeat or extend a reveal but never cross
kinds. The consistency check adds one round trip per round (Bonawitz et al.'s
ConsistencyCheck round), and one Ed25519 signature and up to ``N`` verifications per
participant and round.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from numpy.typing import NDArray

from privacy.secagg._rounds import (
    _SHARE_BYTES,
    DEFAULT_THRESHOLD_FRACTION,
    MIN_ROSTER,
    SIGNATURE_BYTES,
    Advertisement,
    CoordinatorStage,
    Forward,
    ParticipantStage,
    SecAggAborted,
    SecAggCost,
    StageError,
    UnmaskRefused,
    UnmaskRequest,
    _graph_of,
    _pair,
    _pairwise_mask,
    _x_of,
    default_threshold,
)
from privacy.secagg.aggregator import RoundAggregator
from privacy.secagg.fixed_point import FixedPoint, RingArray
from privacy.secagg.graph import CommunicationGraph, GraphKind, GraphPlan
from privacy.secagg.primitives import (
    KEY_BYTES,
    derive_key,
    expand_mask,
    open_share,
    public_bytes,
    seal_share,
)
from privacy.secagg.shamir import split_secret
from privacy.secagg.signed import (
    Identity,
    RosterEntry,
    SignatureRefused,
    advertisement_statement,
    check_roster,
    enrollment_statement,
    survivors_statement,
)

__all__ = [
    "DEFAULT_THRESHOLD_FRACTION",
    "MIN_ROSTER",
    "SIGNATURE_BYTES",
    "Advertisement",
    "CoordinatorStage",
    "Forward",
    "Participant",
    "ParticipantStage",
    "RoundAggregator",
    "SecAggAborted",
    "SecAggCost",
    "StageError",
    "UnmaskRefused",
    "UnmaskRequest",
    "default_threshold",
]

_SEED, _KEY = "self-mask seed", "masking key"

# A roster of N entries is most of a participant's state, and every simulated bank of a
# worker process holds the same one: its digest, encoding and decoding are remembered
# per process, as pure functions of the exact entries (any changed byte is another key).
_ROSTER_MEMORY = 16


@dataclass
class _RoundSecrets:
    stage: ParticipantStage
    mask_private: bytes
    self_seed: bytes
    roster: Mapping[int, RosterEntry]  # read-only: shared by a process's banks
    plan: GraphPlan
    run: int
    me: int
    mask_publics: dict[int, bytes] = field(default_factory=dict)
    shares: dict[int, bytes] = field(default_factory=dict)  # owner -> opened share bytes
    survivors: frozenset[int] | None = None  # the U2 this participant signed
    revealed: dict[int, str] = field(default_factory=dict)  # owner -> kind of share revealed
    whole_roster: bool = False  # the input may be unmasked only in a sum over the roster
    cost: SecAggCost = field(default_factory=SecAggCost)
    _graph: CommunicationGraph | None = field(default=None, repr=False, compare=False)

    @property
    def ids(self) -> list[int]:
        return sorted(self.roster)

    @property
    def threshold(self) -> int:
        return self.plan.threshold

    @property
    def graph(self) -> CommunicationGraph:
        """The round's graph, computed by this participant from its checked roster."""
        if self._graph is None:
            self._graph = _graph_of(self.run, self.roster, self.plan)
        return self._graph

    def charge(self, **work: int) -> None:
        self.cost = self.cost + SecAggCost(**work)


class Participant:
    """One participant's side of the protocol for one run.

    Parameters
    ----------
    me : int
        This participant's id (its Flower node id).
    run : int
        The run id; it is bound into every derived key, share and signature.
    identity : Identity
        The participant's member name, signing key, pinned member list and policy.
    encryption_key : bytes, optional
        The per-run X25519 private key (raw); a fresh one from the OS CSPRNG if omitted.
    """

    def __init__(
        self, me: int, run: int, identity: Identity, encryption_key: bytes | None = None
    ) -> None:
        self.me = me
        self.run = run
        self.identity = identity
        self._encryption_key = (
            X25519PrivateKey.from_private_bytes(encryption_key)
            if encryption_key is not None
            else X25519PrivateKey.generate()
        )
        self._rounds: dict[int, _RoundSecrets] = {}
        self._verified_roster: str | None = None  # digest of the roster last verified

    @property
    def encryption_public(self) -> bytes:
        """The per-run public encryption key, published once at set-up."""
        return public_bytes(self._encryption_key)

    def enroll(self) -> RosterEntry:
        """The signed enrollment: member name and per-run encryption key, for this run and node."""
        statement = enrollment_statement(
            consortium=self.identity.consortium,
            run=self.run,
            node=self.me,
            member=self.identity.member,
            encryption_key=self.encryption_public,
        )
        return RosterEntry(
            member=self.identity.member,
            encryption_key=self.encryption_public,
            signature=self.identity.sign(statement),
        )

    def stage(self, server_round: int) -> ParticipantStage:
        """This participant's stage in ``server_round``."""
        secrets = self._rounds.get(server_round)
        return secrets.stage if secrets is not None else ParticipantStage.NONE

    def roster(self, server_round: int) -> Mapping[int, RosterEntry]:
        """``server_round``'s checked roster, read-only (the round must be advertised)."""
        secrets = self._rounds.get(server_round)
        if secrets is None:
            raise StageError(f"participant {self.me}", server_round, "advertised", "none")
        return secrets.roster

    def roster_size(self, server_round: int) -> int:
        """Members of ``server_round``'s roster (the round must be advertised)."""
        return len(self.roster(server_round))

    def threshold(self, server_round: int) -> int:
        """The threshold this participant advertised ``server_round``'s keys with."""
        secrets = self._rounds.get(server_round)
        if secrets is None:
            raise StageError(f"participant {self.me}", server_round, "advertised", "none")
        return secrets.threshold

    def members(self, server_round: int) -> frozenset[str]:
        """U1 of ``server_round`` by member name: whose masking keys this participant received."""
        secrets = self._rounds.get(server_round)
        if secrets is None or not secrets.mask_publics:
            actual = self.stage(server_round).value
            raise StageError(f"participant {self.me}", server_round, "shares received", actual)
        return frozenset(secrets.roster[node].member for node in secrets.mask_publics)

    def _expect(self, server_round: int, *expected: ParticipantStage) -> _RoundSecrets:
        actual = self.stage(server_round)
        if actual not in expected:
            wanted = "' or '".join(stage.value for stage in expected)
            raise StageError(f"participant {self.me}", server_round, wanted, actual.value)
        return self._rounds[server_round]

    def advertise(
        self,
        server_round: int,
        roster: Mapping[int, RosterEntry],
        threshold: int,
        *,
        degree: int | None = None,
    ) -> Advertisement:
        """Fresh round keys, their shares sealed for this participant's holders, all signed.

        ``degree`` is the coordinator's claim of the graph (None: the complete graph);
        the participant computes the graph itself from ``roster`` and shares only
        with its neighbours in it.

        Raises
        ------
        RosterRefused
            The roster, graph or threshold fails
            :func:`~privacy.secagg.signed.check_roster` (checked before any key is
            generated).
        """
        if self.stage(server_round) is not ParticipantStage.NONE:
            actual = self.stage(server_round).value
            raise StageError(f"participant {self.me}", server_round, "none", actual)
        digest = _roster_digest(roster)
        plan = check_roster(
            self.identity,
            run=self.run,
            server_round=server_round,
            me=self.me,
            roster=roster,
            threshold=threshold,
            degree=degree,
            enrollments_verified=digest == self._verified_roster,
        )
        self._verified_roster = digest
        mask_private = X25519PrivateKey.generate()
        secrets = _RoundSecrets(
            stage=ParticipantStage.ADVERTISED,
            mask_private=mask_private.private_bytes_raw(),
            self_seed=os.urandom(KEY_BYTES),
            roster=MappingProxyType(dict(roster)),
            plan=plan,
            run=self.run,
            me=self.me,
        )
        sealed = self._sealed_shares(server_round, secrets)
        mask_public = public_bytes(mask_private)
        statement = self._advertisement_statement(server_round, self.me, secrets, mask_public)
        self._rounds[server_round] = secrets
        self._forget_before(server_round - 1)
        return Advertisement(
            mask_public=mask_public, sealed=sealed, signature=self.identity.sign(statement)
        )

    def cost(self, server_round: int) -> SecAggCost:
        """The work this participant did in ``server_round`` (zero if it took no part)."""
        secrets = self._rounds.get(server_round)
        return secrets.cost if secrets is not None else SecAggCost()

    def costs(self) -> dict[int, SecAggCost]:
        """The work of each round this participant still keeps (this and the one before).

        Protocol metadata for the bank's own records (a simulation's harness reads
        it, :mod:`simulations.secagg_costs`); no message carries it.
        """
        return {server_round: s.cost for server_round, s in sorted(self._rounds.items())}

    def _sealed_shares(self, server_round: int, secrets: _RoundSecrets) -> dict[int, bytes]:
        """Shares of the round's seed and masking key, sealed for each of its holders.

        A share's x-coordinate is its holder's position in the sorted roster, on any
        graph, so the coordinator combines shares from any ``t`` holders.
        """
        ids = secrets.ids
        holders = sorted(secrets.graph.holders(self.me))
        xs = [_x_of(ids, pid) for pid in holders]
        seed_shares = split_secret(secrets.self_seed, xs=xs, threshold=secrets.threshold)
        key_shares = split_secret(secrets.mask_private, xs=xs, threshold=secrets.threshold)
        sealed = {}
        for pid in holders:
            x = _x_of(ids, pid)
            key = self._share_key(server_round, secrets, pid)
            sealed[pid] = seal_share(
                key,
                seed_shares[x].to_bytes() + key_shares[x].to_bytes(),
                sender=self.me,
                receiver=pid,
                run=self.run,
                server_round=server_round,
            )
        secrets.charge(key_agreements=len(holders), shares=2 * len(holders))
        return sealed

    def _share_key(self, server_round: int, secrets: _RoundSecrets, peer: int) -> bytes:
        """The key sealing shares between this participant and ``peer`` (both keys bound)."""
        pair = _pair(self.me, peer)
        return derive_key(
            self._encryption_key,
            secrets.roster[peer].encryption_key,
            purpose="share",
            run=self.run,
            server_round=server_round,
            pair=pair,
            publics=(
                secrets.roster[pair[0]].encryption_key,
                secrets.roster[pair[1]].encryption_key,
            ),
        )

    def _advertisement_statement(
        self, server_round: int, node: int, secrets: _RoundSecrets, mask_public: bytes
    ) -> bytes:
        entry = secrets.roster[node]
        return advertisement_statement(
            consortium=self.identity.consortium,
            run=self.run,
            server_round=server_round,
            node=node,
            member=entry.member,
            encryption_key=entry.encryption_key,
            mask_key=mask_public,
            graph=secrets.graph.digest,
        )

    def receive(self, server_round: int, forward: Forward) -> None:
        """Check the holders' signed masking keys, then open the shares sealed for this one.

        The forwarded keys must be of this participant's holders in the graph it
        computed (itself and its neighbours; on the complete graph, the roster).

        Raises
        ------
        SignatureRefused
            An advertisement's signature does not verify against the pinned member
            list (checked for every key before any share is opened), or was made
            for another graph.
        ShareRejected
            Any share fails authentication (tampered, misaddressed, replayed).
        SecAggAborted
            Fewer than the threshold of its holders advertised.
        ValueError
            The forwarded sets do not match (keys, shares, signatures), name a bank
            that is not a neighbour, or leave this participant's own key out.
        """
        secrets = self._expect(server_round, ParticipantStage.ADVERTISED)
        members = set(forward.mask_publics)
        holders = secrets.graph.holders(self.me)
        strangers = members - holders
        if strangers:
            raise ValueError(
                f"round {server_round}, node {self.me}: the forwarded keys of "
                f"{sorted(strangers)} are not of this bank's neighbours in the graph it "
                "computed: refused"
            )
        if self.me not in members:
            raise ValueError(
                f"round {server_round}, node {self.me}: the forwarded key set "
                f"{sorted(members)} leaves this participant out"
            )
        if len(members) < secrets.threshold:
            raise SecAggAborted(server_round, "receive", len(members), secrets.threshold)
        if set(forward.sealed) != members or not members <= set(forward.signatures):
            raise ValueError(
                f"round {server_round}, node {self.me}: shares or signatures missing from "
                "the forwarded set"
            )
        for sender in sorted(members):
            self._check_advertisement(server_round, secrets, sender, forward)
        opened = {
            sender: open_share(
                self._share_key(server_round, secrets, sender),
                sealed,
                sender=sender,
                receiver=self.me,
                run=self.run,
                server_round=server_round,
            )
            for sender, sealed in forward.sealed.items()
        }
        secrets.charge(
            key_agreements=len(members),
            shares=2 * len(members),
            signature_verifications=len(members),
        )
        secrets.mask_publics = dict(forward.mask_publics)
        secrets.shares = opened
        secrets.stage = ParticipantStage.RECEIVED

    def _check_advertisement(
        self, server_round: int, secrets: _RoundSecrets, sender: int, forward: Forward
    ) -> None:
        mask_public = forward.mask_publics[sender]
        statement = self._advertisement_statement(server_round, sender, secrets, mask_public)
        member = secrets.roster[sender].member
        if len(mask_public) != KEY_BYTES or not self.identity.verifies(
            member, forward.signatures[sender], statement
        ):
            raise SignatureRefused(
                server_round,
                self.me,
                f"the masking key of node {sender} ('{member}') is not signed by that member "
                "(key substitution?): nothing was derived or opened",
            )

    def mask(
        self,
        server_round: int,
        values: NDArray[np.floating],
        weight: float,
        code: FixedPoint,
        *,
        extra: RingArray | None = None,
        whole_roster: bool = False,
    ) -> RingArray:
        """The masked encoding of ``weight * values``, the encoded weight, then ``extra``.

        ``extra`` is a further input already encoded in the ring (an unweighted sum,
        such as the bank's evaluation; see :meth:`FixedPoint.for_totals`): masked
        with the rest, it is summed with the rest. With ``whole_roster`` this
        participant will sign (and unmask for) no survivor set but the whole roster:
        its input is released only in a sum over every member, never over a subset
        whose difference from another sum would isolate one member's input (a
        boosting level, whose histograms are related to the levels before).

        Raises
        ------
        ValueError
            A value or the weight is not finite (:meth:`FixedPoint.encode`); the
            stage is unchanged.
        """
        secrets = self._expect(server_round, ParticipantStage.RECEIVED)
        encoded = np.append(code.encode(values, weight), code.encode_weight(weight))
        if extra is not None:
            encoded = np.append(encoded, np.asarray(extra, dtype=code.dtype))
        length = encoded.size
        masked = encoded + expand_mask(secrets.self_seed, length, ring_bits=code.ring_bits)
        private = X25519PrivateKey.from_private_bytes(secrets.mask_private)
        for pid in secrets.mask_publics:
            if pid == self.me:
                continue
            mask = _pairwise_mask(
                private,
                secrets.mask_publics,
                run=self.run,
                server_round=server_round,
                pair=_pair(self.me, pid),
                peer=pid,
                length=length,
                ring_bits=code.ring_bits,
            )
            combine = np.add if self.me < pid else np.subtract
            combine(masked, mask, out=masked)
        pairs = len(secrets.mask_publics) - 1
        secrets.charge(key_agreements=pairs, mask_expansions=1 + pairs)
        secrets.whole_roster = whole_roster
        secrets.stage = ParticipantStage.MASKED
        result: RingArray = masked
        return result

    def sign_survivors(self, server_round: int, survivors: Set[int]) -> bytes:
        """Sign the round's survivor set U2 (the consistency check); the same set only, once.

        Raises
        ------
        UnmaskRefused
            U2 names banks outside the roster, holders of this participant's shares
            whose keys it did not mask with, leaves it out, is not the whole roster
            when the input was masked ``whole_roster``, has fewer members than
            the graph allows (the threshold on the complete graph; ``N`` minus the
            dropout bound on the sparse one) or fewer than ``t`` of this
            participant's holders, or differs from a set it signed already.
        """
        secrets = self._expect(server_round, ParticipantStage.MASKED, ParticipantStage.CHECKED)
        asked = frozenset(survivors)
        problem = _survivors_problem(secrets, self.me, asked)
        if problem is not None:
            raise UnmaskRefused(server_round, self.me, problem)
        secrets.survivors = asked
        secrets.stage = ParticipantStage.CHECKED
        statement = survivors_statement(
            consortium=self.identity.consortium,
            run=self.run,
            server_round=server_round,
            survivors=asked,
        )
        return self.identity.sign(statement)

    def unmask(self, server_round: int, request: UnmaskRequest) -> dict[int, bytes]:
        """The requested shares: self-mask seed shares of survivors, key shares of dropouts.

        Raises
        ------
        UnmaskRefused
            The request names a participant in both sets, its survivors are not the
            set this participant signed, its dropouts are not members of U1 outside
            it, fewer than ``t`` holders of the shares of an owner it would reveal for
            signed that set (on the complete graph: ``t`` members of U1), or it asks
            for the other kind of share of an owner than an earlier request did.
        """
        secrets = self._expect(server_round, ParticipantStage.CHECKED, ParticipantStage.UNMASKED)
        problem = _unmask_problem(secrets, request) or self._signature_problem(
            server_round, secrets, request
        )
        if problem is not None:
            raise UnmaskRefused(server_round, self.me, problem)
        revealed = {}
        for owner in sorted(request.survivors | request.dropped):
            share = secrets.shares.get(owner)
            if share is None:
                continue
            survivor = owner in request.survivors
            revealed[owner] = share[:_SHARE_BYTES] if survivor else share[_SHARE_BYTES:]
            secrets.revealed[owner] = _SEED if survivor else _KEY
        secrets.stage = ParticipantStage.UNMASKED
        return revealed

    def _signature_problem(
        self, server_round: int, secrets: _RoundSecrets, request: UnmaskRequest
    ) -> str | None:
        """Whether, for each owner it would reveal for, ``t`` of that owner's holders
        signed the request's survivor set (each signature verified once)."""
        statement = survivors_statement(
            consortium=self.identity.consortium,
            run=self.run,
            server_round=server_round,
            survivors=request.survivors,
        )
        graph = secrets.graph
        owners = [o for o in sorted(request.survivors | request.dropped) if o in secrets.shares]
        nearby: set[int] = set().union(*(graph.holders(owner) for owner in owners))
        candidates = sorted(nearby & request.survivors & set(request.signatures))
        signers = {
            node
            for node in candidates
            if self.identity.verifies(
                secrets.roster[node].member, request.signatures[node], statement
            )
        }
        secrets.charge(signature_verifications=len(candidates))
        for owner in owners:
            have = len(signers & graph.holders(owner))
            if have < secrets.threshold:
                who = (
                    "member(s) of U1"
                    if graph.plan.kind is GraphKind.COMPLETE
                    else f"holder(s) of participant {owner}'s shares"
                )
                return (
                    f"{have} {who} signed the survivor set; the consistency check needs "
                    f"{secrets.threshold}"
                )
        return None

    def _forget_before(self, server_round: int) -> None:
        for old in [r for r in self._rounds if r < server_round]:
            del self._rounds[old]

    # -- persistence (a deployed ClientApp is a fresh process for every message) ------

    def to_bytes(self) -> bytes:
        """Serialize the state, private round keys included (not the signing key): keep it
        at the participant."""
        state = {
            "me": self.me,
            "run": self.run,
            "encryption_key": _b64(self._encryption_key.private_bytes_raw()),
            "verified_roster": self._verified_roster,
            "rounds": {str(r): _secrets_to_json(s) for r, s in self._rounds.items()},
        }
        return json.dumps(state).encode()

    @classmethod
    def from_bytes(cls, data: bytes, identity: Identity) -> Participant:
        """Inverse of :meth:`to_bytes`, with the participant's ``identity``."""
        state = json.loads(data)
        participant = cls(
            int(state["me"]),
            int(state["run"]),
            identity,
            base64.b64decode(state["encryption_key"]),
        )
        for r, s in state["rounds"].items():
            participant._rounds[int(r)] = _secrets_from_json(s)
        verified = state.get("verified_roster")
        participant._verified_roster = None if verified is None else str(verified)
        return participant


def _roster_digest(roster: Mapping[int, RosterEntry]) -> str:
    """SHA-256 (hex) of a roster's exact entries: a roster verified once is known again."""
    return _entries_digest(tuple(sorted(roster.items())))


@functools.lru_cache(maxsize=_ROSTER_MEMORY)
def _entries_digest(entries: tuple[tuple[int, RosterEntry], ...]) -> str:
    """:func:`_roster_digest` of sorted entries, remembered per process (a pure function)."""
    digest = hashlib.sha256()
    for node, entry in entries:
        for part in (
            str(node).encode(),
            entry.member.encode(),
            entry.encryption_key,
            entry.signature,
        ):
            digest.update(len(part).to_bytes(4, "big") + part)
    return digest.hexdigest()


def _survivors_problem(secrets: _RoundSecrets, me: int, asked: frozenset[int]) -> str | None:
    """What is wrong with signing ``asked`` as the round's survivor set (None: nothing)."""
    if secrets.survivors is not None and asked != secrets.survivors:
        return (
            f"this participant signed survivor set {sorted(secrets.survivors)} already; "
            f"refuses another ({sorted(asked)})"
        )
    holders = secrets.graph.holders(me)
    unknown = (asked - set(secrets.roster)) | ((asked & holders) - set(secrets.mask_publics))
    if unknown:
        return f"survivors {sorted(unknown)} are not in U1"
    if me not in asked:
        return "the survivor set leaves this participant out"
    if secrets.whole_roster and asked != set(secrets.roster):
        missing = sorted(set(secrets.roster) - asked)
        return (
            f"this participant's input is released only in a sum over the whole roster; "
            f"the survivor set leaves out {missing}"
        )
    plan = secrets.plan
    if len(asked) < plan.min_survivors:
        if plan.kind is GraphKind.COMPLETE:
            return f"{len(asked)} survivor(s) is below the threshold {plan.threshold}"
        return (
            f"{len(asked)} survivor(s) of {plan.banks} is below the {plan.min_survivors} the "
            "sparse graph was built for (more dropouts than its dropout rate)"
        )
    near = len(asked & holders)
    if near < plan.threshold:
        return (
            f"{near} holder(s) of this participant's shares survive, below the threshold "
            f"{plan.threshold}"
        )
    return None


def _unmask_problem(secrets: _RoundSecrets, request: UnmaskRequest) -> str | None:
    """What is wrong with ``request`` apart from its signatures (None: nothing)."""
    both = request.survivors & request.dropped
    if both:
        return (
            "the request asks for both the self-mask share and the masking-key share of "
            f"participant(s) {sorted(both)}"
        )
    if request.survivors != secrets.survivors:
        return "the request's survivor set is not the one this participant signed"
    strangers = request.dropped - secrets.graph.holders(secrets.me)
    if strangers:
        return (
            f"dropouts {sorted(strangers)} are not neighbours of this participant: it holds "
            "no share of theirs and answers no request naming them"
        )
    outside = request.dropped - (set(secrets.mask_publics) - request.survivors)
    if outside:
        return f"dropouts {sorted(outside)} are not members of U1 outside the survivor set"
    for owner in sorted(request.survivors | request.dropped):
        kind = _SEED if owner in request.survivors else _KEY
        earlier = secrets.revealed.get(owner)
        if earlier is not None and earlier != kind:
            return (
                f"participant {owner}'s {earlier} share was revealed already this round; "
                f"its {kind} share would expose its input"
            )
    return None


def _secrets_to_json(s: _RoundSecrets) -> dict[str, object]:
    return {
        "stage": s.stage.value,
        "mask_private": _b64(s.mask_private),
        "self_seed": _b64(s.self_seed),
        "roster": _roster_json(tuple(s.roster.items())),
        "run": s.run,
        "me": s.me,
        "plan": [
            s.plan.kind.value,
            s.plan.banks,
            s.plan.degree,
            s.plan.threshold,
            s.plan.min_survivors,
        ],
        "cost": [
            s.cost.key_agreements,
            s.cost.shares,
            s.cost.mask_expansions,
            s.cost.signature_verifications,
            s.cost.reconstructions,
        ],
        "mask_publics": {str(k): _b64(v) for k, v in s.mask_publics.items()},
        "shares": {str(k): _b64(v) for k, v in s.shares.items()},
        "survivors": None if s.survivors is None else sorted(s.survivors),
        "revealed": {str(k): v for k, v in s.revealed.items()},
        "whole_roster": s.whole_roster,
    }


def _secrets_from_json(s: dict[str, object]) -> _RoundSecrets:
    raw: dict[str, object] = s
    roster = _roster_from_json(tuple((k, *_list(v)) for k, v in _mapping(raw["roster"]).items()))
    survivors = raw["survivors"]
    plan = _list(raw["plan"])
    return _RoundSecrets(
        stage=ParticipantStage(str(raw["stage"])),
        mask_private=_unb64(raw["mask_private"]),
        self_seed=_unb64(raw["self_seed"]),
        roster=roster,
        plan=GraphPlan(GraphKind(str(plan[0])), *(int(x) for x in plan[1:])),
        run=int(str(raw["run"])),
        me=int(str(raw["me"])),
        cost=SecAggCost(*(int(x) for x in _list(raw["cost"]))),
        mask_publics={int(k): _unb64(v) for k, v in _mapping(raw["mask_publics"]).items()},
        shares={int(k): _unb64(v) for k, v in _mapping(raw["shares"]).items()},
        survivors=None if survivors is None else frozenset(int(x) for x in _list(survivors)),
        revealed={int(k): str(v) for k, v in _mapping(raw["revealed"]).items()},
        whole_roster=bool(raw.get("whole_roster", False)),
    )


@functools.lru_cache(maxsize=_ROSTER_MEMORY)
def _roster_json(entries: tuple[tuple[int, RosterEntry], ...]) -> dict[str, list[str]]:
    """The roster as the state's JSON holds it (read-only: shared by every caller)."""
    return {str(node): [e.member, _b64(e.encryption_key), _b64(e.signature)] for node, e in entries}


@functools.lru_cache(maxsize=_ROSTER_MEMORY)
def _roster_from_json(entries: tuple[tuple[object, ...], ...]) -> Mapping[int, RosterEntry]:
    """Inverse of :func:`_roster_json` (a read-only mapping, shared by every caller)."""
    roster = {}
    for node, member, encryption_key, signature in entries:
        roster[int(str(node))] = RosterEntry(
            member=str(member), encryption_key=_unb64(encryption_key), signature=_unb64(signature)
        )
    return MappingProxyType(roster)


def _mapping(value: object) -> dict[str, list[str] | str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping in the participant state; got {type(value).__name__}")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list in the participant state; got {type(value).__name__}")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    return base64.b64decode(str(text))

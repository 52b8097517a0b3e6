"""The secure aggregation protocol as two explicit state machines.

This is SecAgg (Bonawitz et al., CCS 2017) on the complete graph, with the
round-ahead key advertisement of SecAgg+ (Bell et al., CCS 2020) so that a training
round costs one extra message round trip (the unmask request) over plain FedAvg.

One round ``r``, for participants ``U`` (the run's roster, ids sorted)::

    participant i                          coordinator
    ─────────────                          ───────────
    advertise(r): fresh X25519 masking key s_i and self-mask seed b_i; Shamir-share
      both among the roster (threshold t); seal each share for its holder j with
      ChaCha20-Poly1305 under HKDF(X25519(c_i, c_j)) ─▶ keeps what arrives: U1
    receive(r) ◀─ U1's masking public keys and the shares sealed for i
    mask(r): y_i = encode(w_i x_i) + PRG(b_i) + Σ_{j∈U1, j≠i} ±PRG(HKDF(X25519(s_i, s_j)))
                                        ─▶ keeps what arrives: U2 ⊆ U1
    unmask(r) ◀─ "self-mask shares of U2, masking-key shares of U1 \\ U2"
      refuses to reveal both for the same participant ─▶ U3 ⊆ U2, |U3| ≥ t
                               sum_{U2} y_i - sum_{U2} PRG(b_i)
                                 - sum_{i in U1\\U2, j in U2} ±PRG(s_ij)
                               = sum_{U2} encode(w_i x_i)

``c_i`` is the participant's per-run encryption key, exchanged once at set-up. The
pairwise mask between ``i < j`` is added by ``i`` and subtracted by ``j``. Every
PRG is the AES-256-CTR keystream under a key used for one mask only.

Security model: the coordinator is honest-but-curious and routes every message; it
sees only masked vectors and the shares it asks for. Fewer than ``t`` colluding
participants learn nothing about another's self-mask seed or masking key. The
protocol does not authenticate the coordinator's claims about who dropped out
(the consistency check of the paper's malicious-server variant is not built);
participants' refusal to reveal both shares of one participant bounds what a lying
coordinator can unmask.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from numpy.typing import NDArray

from privacy.secagg.fixed_point import FixedPoint, RingArray
from privacy.secagg.primitives import (
    KEY_BYTES,
    derive_key,
    expand_mask,
    open_share,
    public_bytes,
    seal_share,
)
from privacy.secagg.shamir import Share, combine_shares, split_secret

__all__ = [
    "Advertisement",
    "CoordinatorStage",
    "Forward",
    "Participant",
    "ParticipantStage",
    "RoundAggregator",
    "SecAggAborted",
    "StageError",
    "UnmaskRefused",
    "UnmaskRequest",
    "default_threshold",
]

_SHARE_BYTES = 70  # Share.to_bytes(): 4-byte x, 66-byte y


class StageError(RuntimeError):
    """A protocol step was called out of order."""

    def __init__(self, role: str, server_round: int, expected: str, actual: str) -> None:
        super().__init__(
            f"{role}, round {server_round}: illegal transition: expected stage "
            f"'{expected}', got '{actual}'"
        )


class UnmaskRefused(ValueError):
    """A participant refused an unmask request that would expose an input."""


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


def default_threshold(n_participants: int) -> int:
    """A strict majority of the roster: ``floor(n / 2) + 1``."""
    return n_participants // 2 + 1


class ParticipantStage(StrEnum):
    """Where a participant is within one round."""

    NONE = "none"
    ADVERTISED = "advertised"
    RECEIVED = "shares received"
    MASKED = "masked input sent"
    UNMASKED = "unmask answered"


class CoordinatorStage(StrEnum):
    """Where the coordinator is within one round."""

    ADVERTISEMENTS = "collecting advertisements"
    MASKED = "collecting masked inputs"
    REVEALS = "collecting reveals"
    DONE = "done"


@dataclass(frozen=True)
class Advertisement:
    """A participant's public masking key for a round and its sealed shares, by holder."""

    mask_public: bytes
    sealed: dict[int, bytes]


@dataclass(frozen=True)
class Forward:
    """What the coordinator relays to one participant before it masks."""

    mask_publics: dict[int, bytes]
    sealed: dict[int, bytes]


@dataclass(frozen=True)
class UnmaskRequest:
    """Whose self-mask seeds (``survivors``) and masking keys (``dropped``) to reveal."""

    survivors: frozenset[int]
    dropped: frozenset[int]


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _x_of(roster: list[int], participant: int) -> int:
    """A participant's Shamir x-coordinate: its 1-based position in the sorted roster."""
    return roster.index(participant) + 1


def _pairwise_mask(
    private: X25519PrivateKey,
    peer_public: bytes,
    *,
    run: int,
    server_round: int,
    pair: tuple[int, int],
    length: int,
    ring_bits: int,
) -> RingArray:
    key = derive_key(
        private, peer_public, purpose="mask", run=run, server_round=server_round, pair=pair
    )
    return expand_mask(key, length, ring_bits=ring_bits)


@dataclass
class _RoundSecrets:
    stage: ParticipantStage
    mask_private: bytes
    self_seed: bytes
    roster: list[int]
    threshold: int
    mask_publics: dict[int, bytes] = field(default_factory=dict)
    shares: dict[int, bytes] = field(default_factory=dict)  # owner -> opened share bytes


class Participant:
    """One participant's side of the protocol for one run.

    Parameters
    ----------
    me : int
        This participant's id (its Flower node id).
    run : int
        The run id; it is bound into every derived key and share.
    encryption_key : bytes, optional
        The per-run X25519 private key (raw); a fresh one from the OS CSPRNG if omitted.
    """

    def __init__(self, me: int, run: int, encryption_key: bytes | None = None) -> None:
        self.me = me
        self.run = run
        self._encryption_key = (
            X25519PrivateKey.from_private_bytes(encryption_key)
            if encryption_key is not None
            else X25519PrivateKey.generate()
        )
        self._rounds: dict[int, _RoundSecrets] = {}

    @property
    def encryption_public(self) -> bytes:
        """The per-run public encryption key, published once at set-up."""
        return public_bytes(self._encryption_key)

    def stage(self, server_round: int) -> ParticipantStage:
        """This participant's stage in ``server_round``."""
        secrets = self._rounds.get(server_round)
        return secrets.stage if secrets is not None else ParticipantStage.NONE

    def roster_size(self, server_round: int) -> int:
        """Members of ``server_round``'s roster (the round must be advertised)."""
        secrets = self._rounds.get(server_round)
        if secrets is None:
            raise StageError(f"participant {self.me}", server_round, "advertised", "none")
        return len(secrets.roster)

    def _expect(self, server_round: int, expected: ParticipantStage) -> _RoundSecrets:
        actual = self.stage(server_round)
        if actual is not expected:
            raise StageError(f"participant {self.me}", server_round, expected.value, actual.value)
        return self._rounds[server_round]

    def advertise(
        self, server_round: int, roster: Mapping[int, bytes], threshold: int
    ) -> Advertisement:
        """Fresh round keys; their shares sealed for every roster member (self included)."""
        if self.stage(server_round) is not ParticipantStage.NONE:
            actual = self.stage(server_round).value
            raise StageError(f"participant {self.me}", server_round, "none", actual)
        ids = sorted(roster)
        if self.me not in roster:
            raise ValueError(f"participant {self.me} is not in the roster")
        mask_private = X25519PrivateKey.generate()
        mask_private_bytes = mask_private.private_bytes_raw()
        self_seed = os.urandom(KEY_BYTES)
        xs = [_x_of(ids, pid) for pid in ids]
        seed_shares = split_secret(self_seed, xs=xs, threshold=threshold)
        key_shares = split_secret(mask_private_bytes, xs=xs, threshold=threshold)
        sealed = {}
        for pid in ids:
            x = _x_of(ids, pid)
            plaintext = seed_shares[x].to_bytes() + key_shares[x].to_bytes()
            key = derive_key(
                self._encryption_key,
                roster[pid],
                purpose="share",
                run=self.run,
                server_round=server_round,
                pair=_pair(self.me, pid),
            )
            sealed[pid] = seal_share(
                key,
                plaintext,
                sender=self.me,
                receiver=pid,
                run=self.run,
                server_round=server_round,
            )
        self._rounds[server_round] = _RoundSecrets(
            stage=ParticipantStage.ADVERTISED,
            mask_private=mask_private_bytes,
            self_seed=self_seed,
            roster=ids,
            threshold=threshold,
        )
        self._forget_before(server_round - 1)
        return Advertisement(mask_public=public_bytes(mask_private), sealed=sealed)

    def receive(
        self, server_round: int, forward: Forward, encryption_publics: Mapping[int, bytes]
    ) -> None:
        """Store U1's masking keys and open the shares sealed for this participant.

        Raises
        ------
        ShareRejected
            If any share fails authentication (tampered, misaddressed, replayed).
        """
        secrets = self._expect(server_round, ParticipantStage.ADVERTISED)
        members = set(forward.mask_publics)
        if self.me not in members or not members <= set(secrets.roster):
            raise ValueError(f"round {server_round}: the forwarded key set is not of this roster")
        if len(members) < secrets.threshold:
            raise SecAggAborted(server_round, "receive", len(members), secrets.threshold)
        if set(forward.sealed) != members:
            raise ValueError(f"round {server_round}: shares missing from the forwarded set")
        opened = {}
        for sender, sealed in forward.sealed.items():
            key = derive_key(
                self._encryption_key,
                encryption_publics[sender],
                purpose="share",
                run=self.run,
                server_round=server_round,
                pair=_pair(self.me, sender),
            )
            opened[sender] = open_share(
                key,
                sealed,
                sender=sender,
                receiver=self.me,
                run=self.run,
                server_round=server_round,
            )
        secrets.mask_publics = dict(forward.mask_publics)
        secrets.shares = opened
        secrets.stage = ParticipantStage.RECEIVED

    def mask(
        self,
        server_round: int,
        values: NDArray[np.floating],
        weight: float,
        code: FixedPoint,
        *,
        extra: RingArray | None = None,
    ) -> RingArray:
        """The masked encoding of ``weight * values``, the encoded weight, then ``extra``.

        ``extra`` is a further input already encoded in the ring (an unweighted sum,
        such as the bank's evaluation; see :meth:`FixedPoint.for_totals`): masked
        with the rest, it is summed with the rest.
        """
        secrets = self._expect(server_round, ParticipantStage.RECEIVED)
        encoded = np.append(code.encode(values, weight), code.encode_weight(weight))
        if extra is not None:
            encoded = np.append(encoded, np.asarray(extra, dtype=code.dtype))
        length = encoded.size
        masked = encoded + expand_mask(secrets.self_seed, length, ring_bits=code.ring_bits)
        private = X25519PrivateKey.from_private_bytes(secrets.mask_private)
        for pid, public in secrets.mask_publics.items():
            if pid == self.me:
                continue
            mask = _pairwise_mask(
                private,
                public,
                run=self.run,
                server_round=server_round,
                pair=_pair(self.me, pid),
                length=length,
                ring_bits=code.ring_bits,
            )
            combine = np.add if self.me < pid else np.subtract
            combine(masked, mask, out=masked)
        secrets.stage = ParticipantStage.MASKED
        result: RingArray = masked
        return result

    def unmask(self, server_round: int, request: UnmaskRequest) -> dict[int, bytes]:
        """The requested shares: self-mask seed shares of survivors, key shares of dropouts.

        Raises
        ------
        UnmaskRefused
            If the request names a participant in both sets (which would expose its
            input), names someone outside this round's key set, leaves out this
            participant, or has fewer survivors than the threshold.
        """
        secrets = self._expect(server_round, ParticipantStage.MASKED)
        both = request.survivors & request.dropped
        if both:
            raise UnmaskRefused(
                f"round {server_round}: refused: the request asks for both the self-mask share "
                f"and the masking-key share of participant(s) {sorted(both)}"
            )
        members = set(secrets.mask_publics)
        if not (request.survivors | request.dropped) <= members:
            raise UnmaskRefused(f"round {server_round}: refused: request names non-members")
        if self.me not in request.survivors:
            raise UnmaskRefused(
                f"round {server_round}: refused: this participant is not a survivor"
            )
        if len(request.survivors) < secrets.threshold:
            raise UnmaskRefused(
                f"round {server_round}: refused: {len(request.survivors)} survivor(s) is below "
                f"the threshold {secrets.threshold}"
            )
        revealed = {}
        for owner in request.survivors | request.dropped:
            share = secrets.shares.get(owner)
            if share is None:
                continue
            half = share[:_SHARE_BYTES] if owner in request.survivors else share[_SHARE_BYTES:]
            revealed[owner] = half
        secrets.stage = ParticipantStage.UNMASKED
        return revealed

    def _forget_before(self, server_round: int) -> None:
        for old in [r for r in self._rounds if r < server_round]:
            del self._rounds[old]

    # -- persistence (a deployed ClientApp is a fresh process for every message) ------

    def to_bytes(self) -> bytes:
        """Serialize the whole state, private keys included: keep it at the participant."""
        rounds = {
            str(r): {
                "stage": s.stage.value,
                "mask_private": _b64(s.mask_private),
                "self_seed": _b64(s.self_seed),
                "roster": s.roster,
                "threshold": s.threshold,
                "mask_publics": {str(k): _b64(v) for k, v in s.mask_publics.items()},
                "shares": {str(k): _b64(v) for k, v in s.shares.items()},
            }
            for r, s in self._rounds.items()
        }
        state = {
            "me": self.me,
            "run": self.run,
            "encryption_key": _b64(self._encryption_key.private_bytes_raw()),
            "rounds": rounds,
        }
        return json.dumps(state).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Participant:
        """Inverse of :meth:`to_bytes`."""
        state = json.loads(data)
        participant = cls(
            int(state["me"]), int(state["run"]), base64.b64decode(state["encryption_key"])
        )
        for r, s in state["rounds"].items():
            participant._rounds[int(r)] = _RoundSecrets(
                stage=ParticipantStage(s["stage"]),
                mask_private=base64.b64decode(s["mask_private"]),
                self_seed=base64.b64decode(s["self_seed"]),
                roster=[int(x) for x in s["roster"]],
                threshold=int(s["threshold"]),
                mask_publics={int(k): base64.b64decode(v) for k, v in s["mask_publics"].items()},
                shares={int(k): base64.b64decode(v) for k, v in s["shares"].items()},
            )
        return participant


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class RoundAggregator:
    """The coordinator's side of one round: relay, collect, and unmask only the sum.

    Parameters
    ----------
    run, server_round : int
        Bound into every key; must match the participants'.
    roster : mapping of int to bytes
        Participant id to per-run public encryption key (only their ids are used here).
    threshold : int
        Fewest participants needed at every stage.
    code : FixedPoint
        The fixed-point code the participants encode with (the ring size matters here).
    length : int
        Length of each masked vector (values plus one weight element).
    """

    def __init__(
        self,
        *,
        run: int,
        server_round: int,
        roster: Mapping[int, bytes],
        threshold: int,
        code: FixedPoint,
        length: int,
    ) -> None:
        if not 1 <= threshold <= len(roster):
            raise ValueError(f"threshold must be in [1, {len(roster)}]; got {threshold}")
        self.run = run
        self.server_round = server_round
        self.roster = sorted(roster)
        self.threshold = threshold
        self.code = code
        self.length = length
        self.stage = CoordinatorStage.ADVERTISEMENTS
        self._advertisements: dict[int, Advertisement] = {}
        self._masked: dict[int, RingArray] = {}
        self._reveals: dict[int, dict[int, bytes]] = {}
        self._request: UnmaskRequest | None = None

    def _expect(self, expected: CoordinatorStage) -> None:
        if self.stage is not expected:
            raise StageError("coordinator", self.server_round, expected.value, self.stage.value)

    def _abort_below(self, have: int, stage: str) -> None:
        if have < self.threshold:
            raise SecAggAborted(self.server_round, stage, have, self.threshold)

    def expect_length(self, length: int) -> None:
        """Change the input length (keys collected ahead for a round put to another use)."""
        self._expect(CoordinatorStage.ADVERTISEMENTS)
        if length < 1:
            raise ValueError(f"length must be >= 1; got {length}")
        self.length = length

    def add_advertisement(self, participant: int, advertisement: Advertisement) -> bool:
        """Accept a well-formed advertisement from a roster member; False if discarded."""
        self._expect(CoordinatorStage.ADVERTISEMENTS)
        if participant not in self.roster or set(advertisement.sealed) != set(self.roster):
            return False
        if len(advertisement.mask_public) != KEY_BYTES:
            return False
        self._advertisements[participant] = advertisement
        return True

    def close_advertisements(self) -> dict[int, Forward]:
        """Fix U1; what to relay to each of its members."""
        self._expect(CoordinatorStage.ADVERTISEMENTS)
        self._abort_below(len(self._advertisements), "advertise")
        members = sorted(self._advertisements)
        publics = {pid: self._advertisements[pid].mask_public for pid in members}
        self.stage = CoordinatorStage.MASKED
        return {
            receiver: Forward(
                mask_publics=publics,
                sealed={
                    sender: self._advertisements[sender].sealed[receiver] for sender in members
                },
            )
            for receiver in members
        }

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

    def close_masked(self) -> UnmaskRequest:
        """Fix U2; the unmask request every survivor gets."""
        self._expect(CoordinatorStage.MASKED)
        self._abort_below(len(self._masked), "masked input")
        survivors = frozenset(self._masked)
        self._request = UnmaskRequest(
            survivors=survivors, dropped=frozenset(self._advertisements) - survivors
        )
        self.stage = CoordinatorStage.REVEALS
        return self._request

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
        for owner in self._request.dropped:
            private = X25519PrivateKey.from_private_bytes(self._reconstruct(owner))
            for pid in self._request.survivors:
                mask = _pairwise_mask(
                    private,
                    self._advertisements[pid].mask_public,
                    run=self.run,
                    server_round=self.server_round,
                    pair=_pair(owner, pid),
                    length=self.length,
                    ring_bits=bits,
                )
                # pid added +mask if pid < owner, else -mask: take that back.
                combine = np.subtract if pid < owner else np.add
                combine(total, mask, out=total)
        self.stage = CoordinatorStage.DONE
        return total, self._request.survivors

    def _reconstruct(self, owner: int) -> bytes:
        shares = [
            Share.from_bytes(reveal[owner]) for reveal in self._reveals.values() if owner in reveal
        ]
        if len(shares) < self.threshold:
            raise SecAggAborted(self.server_round, "unmask", len(shares), self.threshold)
        return combine_shares(shares[: self.threshold], length=KEY_BYTES)

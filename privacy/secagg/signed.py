"""Signed statements of secure aggregation, and the roster check that comes before any key.

Against an active coordinator (Bonawitz et al., CCS 2017, §6: the malicious-server
model), every public key a bank uses and every survivor set it acts on must come
signed by a bank on the consortium's pinned member list
(:class:`~privacy.secagg.members.MemberList`). Three statements are signed with a
bank's Ed25519 signing key (its audit key):

==================  ==================================================================
statement           signed fields (after the label)
==================  ==================================================================
enrollment          consortium, run, node, member, encryption key
advertisement       consortium, run, round, node, member, encryption key, masking key,
                    the round's graph digest
survivor set        consortium, run, round, the sorted survivor node ids (U2)
==================  ==================================================================

Each statement's bytes start with its own ASCII label and then the fields, each
prefixed with its length (4 bytes, big-endian), integers as 8-byte big-endian: a
signature of one kind never verifies as another kind, and no two field lists encode
alike.

Notes
-----
The roster check (:func:`check_roster`) is what makes the threshold the bank's:
the coordinator proposes a roster and a threshold, and the bank refuses unless every
member is on its pinned list under a distinct name with a valid enrollment, it is in
the roster under its own name and node, the roster has at least ``min_roster``
members, and the graph (complete or sparse, its degree) and threshold are the ones
the bank's own policy gives for the roster's size
(:func:`~privacy.secagg.graph.plan_graph`). The bank then computes the graph itself
from the roster (:class:`~privacy.secagg.graph.CommunicationGraph`); the coordinator
sends no neighbour list. A coordinator that cannot sign as a member cannot add members, so it cannot
reach ``t`` shares of anyone's secret with fake members.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from privacy.secagg.graph import GraphPlan
from privacy.secagg.members import MemberList, UnknownMember

__all__ = [
    "ADVERTISE_LABEL",
    "ENROLL_LABEL",
    "SURVIVORS_LABEL",
    "Identity",
    "RosterEntry",
    "RosterPolicy",
    "RosterRefused",
    "SignatureRefused",
    "advertisement_statement",
    "check_enrollments",
    "check_roster",
    "enrollment_statement",
    "enrollments_problem",
    "survivors_statement",
]

ROSTER_CACHE = 16
"""Rosters whose enrollments a process remembers as checked (see :func:`enrollments_problem`)."""

ENROLL_LABEL = b"fedcredit/secagg/enroll/v1"
ADVERTISE_LABEL = b"fedcredit/secagg/advertise/v2"
SURVIVORS_LABEL = b"fedcredit/secagg/survivors/v1"

Field = bytes | str | int

Enrollment = tuple[int, str, bytes, bytes]
"""A roster entry as the enrollment check reads it: node, member, encryption key, signature."""

Verifier = Callable[[str, bytes, bytes], bool]
"""``verifies(member, signature, statement)``: whether that member signed the statement."""


class RosterRefused(ValueError):
    """A roster (or its threshold) the bank will not generate keys for.

    Attributes
    ----------
    server_round : int
        The round the roster is for.
    node : int
        The refusing bank's node id.
    """

    def __init__(self, server_round: int, node: int, reason: str) -> None:
        self.server_round = server_round
        self.node = node
        super().__init__(
            f"round {server_round}, node {node}: roster refused: {reason}; no key was generated"
        )


class SignatureRefused(ValueError):
    """A signature that does not verify against the pinned member list.

    Attributes
    ----------
    server_round : int
        The round of the signed statement.
    node : int
        The refusing bank's node id.
    """

    def __init__(self, server_round: int, node: int, reason: str) -> None:
        self.server_round = server_round
        self.node = node
        super().__init__(f"round {server_round}, node {node}: refused: {reason}")


class RosterPolicy(Protocol):
    """A bank's threshold rule and smallest roster (``SecAggPolicy`` is one)."""

    @property
    def min_roster(self) -> int:
        """The fewest members a roster may have."""
        ...

    def threshold(self, roster_size: int) -> int:
        """Shares needed to open a secret of a roster of ``roster_size`` members."""
        ...

    def plan(self, roster_size: int) -> GraphPlan:
        """The graph and threshold for a roster of ``roster_size`` members."""
        ...


@dataclass(frozen=True)
class Identity:
    """Who a bank is in secure aggregation, and what it trusts.

    Parameters
    ----------
    members : MemberList
        The consortium's member list the bank pinned.
    member : str
        The bank's own name on that list.
    signing_key : Ed25519PrivateKey
        The bank's signing key (its audit key); its public half must be the list's
        entry for ``member``.
    policy : RosterPolicy
        The bank's threshold rule and smallest roster.
    """

    members: MemberList
    member: str
    signing_key: Ed25519PrivateKey
    policy: RosterPolicy

    def __post_init__(self) -> None:
        listed = self.members.member(self.member).signing_key
        own = self.signing_key.public_key().public_bytes_raw()
        if listed != own:
            raise ValueError(
                f"member '{self.member}': the signing key is not the one the pinned member "
                f"list of '{self.members.consortium}' names for this member"
            )

    @property
    def consortium(self) -> str:
        """The consortium's name (bound into every signed statement)."""
        return self.members.consortium

    def sign(self, statement: bytes) -> bytes:
        """This bank's Ed25519 signature of ``statement``."""
        return self.signing_key.sign(statement)

    def verifies(self, member: str, signature: bytes, statement: bytes) -> bool:
        """Whether ``member`` (on the pinned list) signed ``statement``."""
        return _listed_verifies(self.members, member, signature, statement)

    def unsigned_enrollment(self, run: int, entries: tuple[Enrollment, ...]) -> str | None:
        """The first of ``entries`` whose member did not sign its enrollment in ``run``
        (None: all did), remembered per process (:func:`enrollments_problem`)."""
        return enrollments_problem(self.members, run, entries)


@dataclass(frozen=True)
class RosterEntry:
    """One roster member as the coordinator relays it: name, encryption key, enrollment."""

    member: str
    encryption_key: bytes
    signature: bytes


def _canonical(label: bytes, *fields: Field) -> bytes:
    """``label`` then each field, length-prefixed (integers as unsigned 64-bit)."""
    parts = [struct.pack(">I", len(label)), label]
    for value in fields:
        if isinstance(value, int):
            data = struct.pack(">Q", value)
        elif isinstance(value, str):
            data = value.encode()
        else:
            data = bytes(value)
        parts += [struct.pack(">I", len(data)), data]
    return b"".join(parts)


def enrollment_statement(
    *, consortium: str, run: int, node: int, member: str, encryption_key: bytes
) -> bytes:
    """What a bank signs when it enrolls in a run with its per-run encryption key."""
    return _canonical(ENROLL_LABEL, consortium, run, node, member, encryption_key)


def advertisement_statement(
    *,
    consortium: str,
    run: int,
    server_round: int,
    node: int,
    member: str,
    encryption_key: bytes,
    mask_key: bytes,
    graph: bytes,
) -> bytes:
    """What a bank signs when it advertises its masking key of a round.

    ``graph`` is the digest of the round's graph as the bank computed it
    (:attr:`~privacy.secagg.graph.CommunicationGraph.digest`): a key advertised for
    another roster or graph does not verify for a bank that computed this one.
    """
    return _canonical(
        ADVERTISE_LABEL,
        consortium,
        run,
        server_round,
        node,
        member,
        encryption_key,
        mask_key,
        graph,
    )


def survivors_statement(
    *, consortium: str, run: int, server_round: int, survivors: Set[int]
) -> bytes:
    """What a bank signs in the consistency check: the round's survivor set U2."""
    ids = sorted(survivors)
    return _canonical(SURVIVORS_LABEL, consortium, run, server_round, len(ids), *ids)


def check_roster(
    identity: Identity,
    *,
    run: int,
    server_round: int,
    me: int,
    roster: Mapping[int, RosterEntry],
    threshold: int,
    degree: int | None = None,
    enrollments_verified: bool = False,
) -> GraphPlan:
    """Refuse a roster, graph or threshold the bank must not generate keys for.

    ``degree`` is the coordinator's claim of the graph's degree (None: the complete
    graph, ``N - 1``). Returns the bank's own plan, which the claim matched.
    ``enrollments_verified``: the bank verified this exact roster's enrollment
    signatures before in the run (the N verifications are skipped; every other
    check runs).

    Raises
    ------
    RosterRefused
        A member is not on the pinned list, two nodes share a name, this bank is not
        in the roster under its own name, the roster is smaller than the policy's
        ``min_roster``, an enrollment signature does not verify, or ``threshold`` or
        ``degree`` is not the policy's for the roster's size.
    """
    problem = _roster_problem(
        identity, run=run, me=me, roster=roster, verify=not enrollments_verified
    )
    if problem is not None:
        raise RosterRefused(server_round, me, problem)
    try:
        plan = identity.policy.plan(len(roster))
    except ValueError as exc:  # a forced sparse graph that no roster of this size allows
        raise RosterRefused(server_round, me, str(exc)) from exc
    claimed = len(roster) - 1 if degree is None else degree
    if claimed != plan.degree:
        raise RosterRefused(
            server_round,
            me,
            f"a graph of degree {claimed} is not the bank's own ({plan.kind.value} graph of "
            f"degree {plan.degree}) for a roster of {len(roster)}",
        )
    if threshold != plan.threshold:
        raise RosterRefused(
            server_round,
            me,
            f"threshold {threshold} is not the bank's threshold {plan.threshold} for a "
            f"roster of {len(roster)}",
        )
    return plan


def _roster_problem(
    identity: Identity, *, run: int, me: int, roster: Mapping[int, RosterEntry], verify: bool
) -> str | None:
    """What is wrong with ``roster`` (None: nothing)."""
    policy = identity.policy
    strangers = sorted({entry.member for entry in roster.values()} - identity.members.names)
    if strangers:
        return f"members {strangers} are not on the pinned member list of '{identity.consortium}'"
    names = [entry.member for entry in roster.values()]
    if len(set(names)) != len(names):
        return f"a member name appears under two nodes ({sorted(names)})"
    mine = roster.get(me)
    if mine is None or mine.member != identity.member:
        return f"this bank ('{identity.member}') is not in the roster under node {me}"
    if len(roster) < policy.min_roster:
        return (
            f"the roster has {len(roster)} member(s); the bank's policy needs >= "
            f"{policy.min_roster}"
        )
    if not verify:
        return None
    entries = tuple(
        (node, entry.member, entry.encryption_key, entry.signature)
        for node, entry in sorted(roster.items())
    )
    return identity.unsigned_enrollment(run, entries)


@functools.lru_cache(maxsize=ROSTER_CACHE)
def enrollments_problem(
    members: MemberList, run: int, entries: tuple[Enrollment, ...]
) -> str | None:
    """The first entry whose enrollment ``members`` did not sign for ``run`` (None: all did).

    The answer is a function of the pinned list, the run and the exact entries alone,
    so a process remembers its last :data:`ROSTER_CACHE` answers, as it remembers
    signature checks (:func:`~privacy.secagg.members.ed25519_verifies`): the many
    simulated banks of one worker process check one roster of N once, not N times
    (N² statements). A roster differing in any byte of any entry is checked afresh.
    """
    return check_enrollments(
        members.consortium, run, entries, functools.partial(_listed_verifies, members)
    )


def check_enrollments(
    consortium: str, run: int, entries: tuple[Enrollment, ...], verifies: Verifier
) -> str | None:
    """The first of ``entries`` whose enrollment ``verifies`` refuses (None: none).

    ``verifies(member, signature, statement)`` checks one signature; every entry is
    checked (no memory).
    """
    for node, member, encryption_key, signature in entries:
        statement = enrollment_statement(
            consortium=consortium,
            run=run,
            node=node,
            member=member,
            encryption_key=encryption_key,
        )
        if not verifies(member, signature, statement):
            return f"the enrollment of node {node} ('{member}') is not signed by that member"
    return None


def _listed_verifies(members: MemberList, member: str, signature: bytes, statement: bytes) -> bool:
    """Whether ``member`` is on ``members`` and signed ``statement``."""
    try:
        return members.member(member).verifies(signature, statement)
    except UnknownMember:
        return False

"""Members with signing keys for secure-aggregation tests: a member list and identities."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from participant.guard.settings import GuardSettings, SecAggPolicy
from privacy.secagg.graph import GraphChoice
from privacy.secagg.members import Member, MemberList
from privacy.secagg.protocol import Participant
from privacy.secagg.signed import Identity, RosterEntry

CONSORTIUM = "test-consortium"


@dataclass(frozen=True)
class Consortium:
    """Banks with node ids, signing keys, one pinned member list and their participants."""

    members: MemberList
    keys: dict[str, Ed25519PrivateKey]
    participants: dict[int, Participant]

    def identity(self, name: str, policy: SecAggPolicy | None = None) -> Identity:
        """The identity of member ``name`` under ``policy`` (the default policy if None)."""
        return Identity(
            members=self.members,
            member=name,
            signing_key=self.keys[name],
            policy=policy or SecAggPolicy(),
        )

    def roster(self) -> dict[int, RosterEntry]:
        """Every participant's signed enrollment, by node id."""
        return {pid: p.enroll() for pid, p in self.participants.items()}


def node_ids(n: int) -> list[int]:
    """Node ids as Flower assigns them: large, unordered 64-bit integers."""
    return [(2**63 + 977 * k * k + 13) % 2**64 for k in range(1, n + 1)]


SPARSE_POLICY = SecAggPolicy(
    graph=GraphChoice.SPARSE,
    corruption_rate=0.0,
    dropout_rate=0.25,
    security_bits=4,
    grinding_bits=0,
    correctness_bits=2,
)
"""A sparse graph small enough for fast tests: 9-12 banks, degree 6-8, 2-3 dropouts.

Its bits are far below a deployment's (40 + 40, 20): it exercises the protocol's
rules on a sparse graph, not the parameters' probabilities."""
GRAPHS = {"complete": SecAggPolicy(graph=GraphChoice.COMPLETE), "sparse": SPARSE_POLICY}
"""The policies tests are parametrized over, by graph."""


def consortium(
    n: int, *, run: int = 7, extra_members: int = 0, policy: SecAggPolicy | None = None
) -> Consortium:
    """``n`` participants ``bank-1`` ... (plus ``extra_members`` listed who take no part),
    each under ``policy`` (the default policy if None)."""
    names = [f"bank-{i}" for i in range(1, n + extra_members + 1)]
    keys = {name: Ed25519PrivateKey.generate() for name in names}
    members = MemberList(
        consortium=CONSORTIUM,
        members=tuple(
            Member(name=name, signing_key=key.public_key().public_bytes_raw())
            for name, key in keys.items()
        ),
    )
    partial = Consortium(members=members, keys=keys, participants={})
    participants = {
        pid: Participant(pid, run, partial.identity(name, policy))
        for pid, name in zip(node_ids(n), names, strict=False)
    }
    return Consortium(members=members, keys=keys, participants=participants)


def pin_members(
    settings: GuardSettings, folder: Path, *, others: int = 2
) -> tuple[GuardSettings, dict[str, Ed25519PrivateKey]]:
    """``settings`` with a member list pinned: the bank (by its audit key) and ``others``.

    The bank must keep an audit log (its audit key signs). Returns the pinned settings
    and the other members' signing keys (``peer-1`` ...), by name.
    """
    from credit.audit import load_or_create_signing_key

    audit = settings.audit_settings()
    if audit is None:
        raise ValueError("pin_members needs settings with an audit_log")
    own = load_or_create_signing_key(audit.key_path).public_key().public_bytes_raw()
    keys = {f"peer-{i}": Ed25519PrivateKey.generate() for i in range(1, others + 1)}
    members = MemberList(
        consortium=CONSORTIUM,
        members=(
            Member(name=settings.bank_name, signing_key=own),
            *(
                Member(name=name, signing_key=key.public_key().public_bytes_raw())
                for name, key in keys.items()
            ),
        ),
    )
    path = folder / "members.json"
    members.write(path)
    pin = {"members_path": path, "members_fingerprint": members.fingerprint}
    return settings.model_copy(update=pin), keys

"""The consortium's member list: who may sit in a secure-aggregation roster, by signing key.

A secure-aggregation roster is the coordinator's claim about who takes part in a
round. Against an active coordinator that claim is worth nothing unless every
member's keys are signed by a key the bank already trusts. The member list is that
trust: one entry per bank, its name and the 32 raw bytes of its Ed25519 signing key
(the bank's audit key). A bank pins the list by its fingerprint when it starts (and
compares the fingerprint with the other banks out of band, as SSH users compare host
keys); from then on a roster naming anyone outside the pinned list is refused.

The file is JSON::

    {
      "consortium": "north-sea-credit",
      "members": [
        {"name": "bank-a", "signing_key": "<base64 of 32 raw Ed25519 bytes>"},
        ...
      ]
    }

Its fingerprint is ``SHA256:`` and the base64 (unpadded) of the SHA-256 of the
list's canonical form (:meth:`MemberList.canonical_bytes`: sorted keys, members
sorted by name, no whitespace), so two files that list the same members in another
order or layout have the same fingerprint.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit.errors import ConfigError

__all__ = [
    "VERIFIED_CACHE",
    "Member",
    "MemberList",
    "UnknownMember",
    "ed25519_verifies",
    "member_name",
]

VERIFIED_CACHE = 1 << 15
"""Signature checks a process remembers (:func:`ed25519_verifies`; about 15 MB at most)."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KEY_BYTES = 32


def member_name(bank_name: str) -> str:
    """The member-list name of a bank called ``bank_name``.

    A valid member name is itself; otherwise lowercased, every other character than
    letters, digits and '-' replaced by '-', leading '-' dropped, cut to 63
    (``EDUCATION=1`` is ``education-1``). Two banks whose names map alike cannot
    both sit on one list (:class:`MemberList` refuses duplicate names).

    Raises
    ------
    ValueError
        Nothing of ``bank_name`` is left (no letter or digit).
    """
    if _NAME.match(bank_name):
        return bank_name
    slug = re.sub(r"[^a-z0-9-]", "-", bank_name.lower()).lstrip("-")[:63]
    if not slug:
        raise ValueError(f"bank name {bank_name!r} has no letter or digit to name a member by")
    return slug


class UnknownMember(ValueError):
    """A name that is not on the pinned member list."""

    def __init__(self, name: str, consortium: str) -> None:
        self.name = name
        super().__init__(f"'{name}' is not on the pinned member list of consortium '{consortium}'")


@dataclass(frozen=True)
class Member:
    """One bank on the list: its name and the raw bytes of its Ed25519 signing key."""

    name: str
    signing_key: bytes

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"member name must be lowercase letters, digits and '-' (1-63); got {self.name!r}"
            )
        if len(self.signing_key) != _KEY_BYTES:
            raise ValueError(
                f"member '{self.name}': signing_key must be {_KEY_BYTES} raw Ed25519 bytes; "
                f"got {len(self.signing_key)}"
            )

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the raw key, as audit-log entries name a key."""
        return hashlib.sha256(self.signing_key).hexdigest()

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this member's Ed25519 signature of ``message``."""
        return ed25519_verifies(self.signing_key, signature, message)


@functools.lru_cache(maxsize=VERIFIED_CACHE)
def ed25519_verifies(signing_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``message`` under ``signing_key``.

    The answer is a function of the three byte strings alone (``cryptography``'s
    verification is deterministic), so a process remembers its last
    :data:`VERIFIED_CACHE` answers: many simulated banks in one worker process verify
    the same roster's N enrollment signatures once, not once each (N² checks at N
    banks). A deployed bank is a process of its own and checks each signature itself.
    """
    try:
        Ed25519PublicKey.from_public_bytes(signing_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class MemberList:
    """The consortium's name and its members, in name order (names unique)."""

    consortium: str
    members: tuple[Member, ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.consortium):
            raise ValueError(
                "consortium name must be lowercase letters, digits and '-' (1-63); "
                f"got {self.consortium!r}"
            )
        counts = collections.Counter(member.name for member in self.members)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"member list names {duplicates} more than once")
        keys = [member.signing_key for member in self.members]
        if len(set(keys)) != len(keys):
            raise ValueError("two members share one signing key")
        object.__setattr__(self, "members", tuple(sorted(self.members, key=lambda m: m.name)))

    @property
    def names(self) -> frozenset[str]:
        """Every member's name."""
        return frozenset(member.name for member in self.members)

    def member(self, name: str) -> Member:
        """The member called ``name``.

        Raises
        ------
        UnknownMember
            ``name`` is not on the list.
        """
        member = self._by_name.get(name)
        if member is None:
            raise UnknownMember(name, self.consortium)
        return member

    @functools.cached_property
    def _by_name(self) -> dict[str, Member]:
        """The members by name, built on first lookup (a bank checking a roster of N
        looks up N names; a scan would make that N² comparisons)."""
        return {member.name: member for member in self.members}

    def canonical_bytes(self) -> bytes:
        """The list as canonical JSON (what the fingerprint hashes and the file holds)."""
        document = {
            "consortium": self.consortium,
            "members": [
                {"name": m.name, "signing_key": base64.b64encode(m.signing_key).decode()}
                for m in self.members
            ],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    @functools.cached_property
    def fingerprint(self) -> str:
        """``SHA256:<base64>`` of the canonical form: what banks compare out of band."""
        digest = hashlib.sha256(self.canonical_bytes()).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def write(self, path: Path) -> None:
        """Write the list as JSON (indented for people; the fingerprint ignores layout)."""
        document = json.loads(self.canonical_bytes())
        Path(path).write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "member list") -> MemberList:
        """Parse a member list.

        Raises
        ------
        ConfigError
            Not JSON, a field missing or of the wrong type, a key that is not 32
            base64 bytes, a name used twice; the message names the field.
        """
        return _parsed(data if isinstance(data, bytes) else data.encode(), source)

    @classmethod
    def _parse(cls, data: bytes, source: str) -> MemberList:
        """:meth:`from_json` without the memory (see :func:`_parsed`)."""
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not JSON ({exc})", source=source) from exc
        if not isinstance(document, dict):
            raise ConfigError("the member list must be a JSON object", source=source)
        consortium = document.get("consortium")
        entries = document.get("members")
        if not isinstance(consortium, str):
            raise ConfigError("'consortium' must be a string", source=source)
        if not isinstance(entries, list) or not entries:
            raise ConfigError("'members' must be a non-empty list", source=source)
        members = [_member(entry, index, source) for index, entry in enumerate(entries)]
        try:
            return cls(consortium=consortium, members=tuple(members))
        except ValueError as exc:
            raise ConfigError(str(exc), source=source) from exc

    @classmethod
    def load(cls, path: Path) -> MemberList:
        """Read the member list at ``path`` (:meth:`from_json`)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the member list ({exc.strerror})", source=str(path)
            ) from exc
        return cls.from_json(data, source=str(path))


@functools.lru_cache(maxsize=8)
def _parsed(data: bytes, source: str) -> MemberList:
    """:meth:`MemberList._parse`, remembered per process: a pure function of the file's
    bytes (an immutable list), which a simulated worker reads at every bank's message."""
    return MemberList._parse(data, source)


def _member(entry: Any, index: int, source: str) -> Member:
    where = f"members[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"'{where}' must be an object with name and signing_key", source=source)
    name, key = entry.get("name"), entry.get("signing_key")
    if not isinstance(name, str) or not isinstance(key, str):
        raise ConfigError(f"'{where}' needs string fields name and signing_key", source=source)
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"'{where}.signing_key' is not base64", source=source) from exc
    try:
        return Member(name=name, signing_key=raw)
    except ValueError as exc:
        raise ConfigError(f"'{where}': {exc}", source=source) from exc

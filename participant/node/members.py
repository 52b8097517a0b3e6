"""The consortium's member list at the bank: chosen, checked and pinned at ``participant start``.

A bank takes part in secure aggregation only with banks on the member list it pinned
(:class:`~privacy.secagg.members.MemberList`): the guard checks every roster and
every peer's signature against it. ``participant start`` chooses the list
(:func:`choose_member_list`):

1. ``--members FILE`` when the bank passes it: pinned, even if it replaces another
   list (the bank compared the new fingerprint with the other banks);
2. else the list this node pinned before (``guard.members_path`` in ``HOME/node.json``),
   read again and refused if its fingerprint is no longer the pinned one;
3. else, at the node's first pin, the ``members.json`` of the bundle.

Whichever it is, the bank's own name must be on it with the bank's own audit public
key, and the list must be of the bundle's consortium. The chosen list is kept as the
node's own copy, ``HOME/members.json`` (the node folder is the bank's alone), and the
guard's settings name that copy and its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from credit.errors import ConfigError
from deploy.bundle import Bundle
from privacy.secagg.members import MemberList, UnknownMember

__all__ = ["PINNED_MEMBERS_FILE", "MemberListChoice", "choose_member_list", "pin_member_list"]

PINNED_MEMBERS_FILE = "members.json"
"""The node's copy of the member list it pinned, in the node folder."""
_PLAN_FILE = "node.json"


@dataclass(frozen=True)
class MemberListChoice:
    """The member list a start pins, and how it relates to the one pinned before.

    Attributes
    ----------
    members : MemberList
        The list to pin (checked: the bank is on it with its own audit key).
    source : pathlib.Path
        Where it was read from (``--members``, the node's copy or the bundle).
    pinned_before : str, optional
        The fingerprint the node pinned before this start; None at the first pin.
    passed : bool
        The bank passed the list with ``--members``.
    bundle_fingerprint : str, optional
        The bundle's list's fingerprint when it differs from the list chosen (the
        bank kept its pinned list instead); None otherwise.
    """

    members: MemberList
    source: Path
    pinned_before: str | None
    passed: bool
    bundle_fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """The chosen list's fingerprint."""
        return self.members.fingerprint

    @property
    def replaces_pin(self) -> bool:
        """This start pins another list than the one pinned before."""
        return self.pinned_before is not None and self.pinned_before != self.fingerprint


def choose_member_list(
    *, home: Path, bundle: Bundle, audit_key: Path, members: Path | None
) -> MemberListChoice:
    """The member list this start pins (see the module's docstring for the order).

    Parameters
    ----------
    home : pathlib.Path
        The node folder (its ``node.json`` names the list pinned before, if any).
    bundle : Bundle
        The onboarding bundle: the bank's name, the consortium, a proposed list.
    audit_key : pathlib.Path
        The bank's Ed25519 audit-signing key (private, PEM): its public half must be
        the bank's key on the list.
    members : pathlib.Path, optional
        ``--members``: a list the bank passes explicitly.

    Raises
    ------
    ConfigError
        No list to pin; a list that does not parse; the pinned copy changed on disk;
        a list of another consortium; the bank is not on it, or under another key.
        One line naming the file and what to do.
    """
    kept = _pinned_before(home)
    if members is not None:
        chosen = MemberList.load(members.expanduser())
        source = members
    elif kept is not None:
        source, chosen = kept[0], _read_pinned(*kept)
    elif bundle.members_path is not None:
        source, chosen = bundle.members_path, MemberList.load(bundle.members_path)
    else:
        raise ConfigError(
            "no member list to pin: the bundle has no members.json; pass the list the "
            "operator sends (`fedcredit coordinator members DIR --out FILE`) with --members",
            source="--members",
        )
    check_own_entry(chosen, bundle=bundle, audit_key=audit_key, source=str(source))
    offered = bundle.members_fingerprint
    return MemberListChoice(
        members=chosen,
        source=source,
        pinned_before=None if kept is None else kept[1],
        passed=members is not None,
        bundle_fingerprint=offered if offered not in (None, chosen.fingerprint) else None,
    )


def pin_member_list(home: Path, members: MemberList) -> Path:
    """Write the node's copy of ``members`` (``HOME/members.json``) atomically; its path."""
    path = home / PINNED_MEMBERS_FILE
    partial = path.with_name(f".{PINNED_MEMBERS_FILE}.partial")
    members.write(partial)
    partial.replace(path)
    return path


def check_own_entry(members: MemberList, *, bundle: Bundle, audit_key: Path, source: str) -> None:
    """Refuse a list of another consortium, or one without this bank under its own key.

    Raises
    ------
    ConfigError
        Names ``source`` (the list's file) and what to do.
    """
    if members.consortium != bundle.consortium:
        raise ConfigError(
            f"this is the member list of consortium '{members.consortium}', not of "
            f"'{bundle.consortium}' (the bundle's); ask the operator for the right list",
            source=source,
        )
    try:
        entry = members.member(bundle.bank)
    except UnknownMember as exc:
        raise ConfigError(
            f"'{bundle.bank}' is not on the member list of '{members.consortium}' "
            f"(members: {', '.join(sorted(members.names))}); ask the operator for the "
            "current list (`fedcredit coordinator members`)",
            source=source,
        ) from exc
    own = own_audit_key(audit_key)
    if entry.signing_key != own:
        raise ConfigError(
            f"the list names '{bundle.bank}' by another key (SHA-256 {entry.fingerprint[:16]}…) "
            f"than this bank's audit key {audit_key} (SHA-256 "
            f"{_sha256(own)[:16]}…): do not start; ask the operator to register your "
            "audit.pub, or pass the right key with --audit-key",
            source=source,
        )


def own_audit_key(path: Path) -> bytes:
    """The 32 raw bytes of the public half of the bank's audit key at ``path``.

    Raises
    ------
    ConfigError
        No key there (it is never created here: the list names the key ``keygen``
        made), or not an owner-only Ed25519 PEM key.
    """
    from credit.audit import load_or_create_signing_key

    if not path.is_file():
        raise ConfigError(
            "no audit key here: the member list names the bank by the audit key "
            "`fedcredit participant keygen` wrote beside node.key; pass it with --audit-key",
            source=str(path),
        )
    key = load_or_create_signing_key(path).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _pinned_before(home: Path) -> tuple[Path, str] | None:
    """``guard.members_path`` and ``.members_fingerprint`` of the node's plan, if pinned.

    Read leniently (a plan from before member lists pins none); a plan that cannot be
    read is left to :func:`participant.node.supernode.node_holdout` to report.
    """
    try:
        plan = json.loads((home / _PLAN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    guard = plan.get("guard") if isinstance(plan, dict) else None
    if not isinstance(guard, dict):
        return None
    path, fingerprint = guard.get("members_path"), guard.get("members_fingerprint")
    if isinstance(path, str) and isinstance(fingerprint, str):
        return Path(path), fingerprint
    return None


def _read_pinned(path: Path, fingerprint: str) -> MemberList:
    """The pinned list, refused if it is gone or changed on disk since it was pinned."""
    try:
        members = MemberList.load(path)
    except ConfigError as exc:
        raise ConfigError(
            f"{exc.problem}; this node pinned {fingerprint} there: pass the member list "
            "with --members FILE to pin it again",
            source=str(path),
        ) from exc
    if members.fingerprint != fingerprint:
        raise ConfigError(
            f"the pinned member list changed on disk: its fingerprint is {members.fingerprint}, "
            f"the pinned one {fingerprint}; nothing started. Compare the list with the other "
            "banks, then pin it with --members FILE",
            source=str(path),
        )
    return members

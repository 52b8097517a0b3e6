"""Onboarding and revoking partner banks: ``add-participant``, ``remove-participant``, ``members``.

Adding a bank registers its node public key with the running SuperLink (``flwr
supernode register``, which prints the node id), records the bank and its Ed25519
audit public key in ``participants/<bank>/participant.json``, rewrites the
consortium's member list ``members.json`` and writes the bank's onboarding bundle
(:class:`deploy.bundle.Bundle`, with the current member list) into
``participants/<bank>/bundle/``. Removing a bank unregisters the node id (the
SuperLink refuses the node's next request with HTTP 401, which disconnects a running
SuperNode) and rewrites the member list without it.

The member list (:class:`~privacy.secagg.members.MemberList`) names every registered
bank with its audit key: the key each bank signs its secure-aggregation messages
with. Banks pin it at ``participant start`` and compare its fingerprint with each
other out of band, so the operator cannot add a key of its own unnoticed. Banks that
joined before the list last changed get the new one from :func:`member_list`
(``fedcredit coordinator members DIR --out FILE``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coordinator.ops.consortium import Consortium
from coordinator.ops.flower_cli import run_flwr
from coordinator.ops.layout import CONNECTION
from credit import __version__
from credit.audit import fingerprint, load_public_key
from credit.errors import ConfigError
from credit.schema import load_schema
from deploy.bundle import Bundle
from deploy.services import Service, ServiceError
from privacy.secagg.members import Member, MemberList

__all__ = [
    "BANK_NAME",
    "Participant",
    "ParticipantStatus",
    "Removal",
    "add_participant",
    "list_participants",
    "member_list",
    "read_audit_key",
    "remove_participant",
    "validate_bank_name",
    "write_member_list",
]

BANK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
RECORD_FILE = "participant.json"
_REGISTERED = re.compile(r"SuperNode (\d+) registered")


class ParticipantStatus(StrEnum):
    """Whether a bank's node key is registered with the SuperLink."""

    REGISTERED = "registered"
    REMOVED = "removed"


class Participant(BaseModel):
    """The record ``participants/<bank>/participant.json``.

    Attributes
    ----------
    name : str
        The bank's name.
    node_id : int
        The node id the SuperLink assigned when the key was registered.
    key_sha256 : str
        SHA-256 (hex) of the OpenSSH public key blob (OpenSSH's SHA256 fingerprint).
    audit_key : str, optional
        Base64 of the 32 raw bytes of the bank's Ed25519 audit public key (its
        ``audit.pub``): the key the member list names the bank by. None only in records
        written before banks signed secure aggregation; such a bank must be removed and
        added again before a member list can be written.
    added_at, removed_at : str
        UTC times (ISO 8601) of ``add-participant`` and ``remove-participant``.
    status : ParticipantStatus
        ``registered`` or ``removed``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    node_id: int
    key_sha256: str
    audit_key: str | None = Field(default=None, min_length=44, max_length=44)
    added_at: str
    status: ParticipantStatus = ParticipantStatus.REGISTERED
    removed_at: str | None = None


def validate_bank_name(bank: str) -> str:
    """``bank`` if it is a valid bank name (lower-case letters, digits, hyphens)."""
    if not BANK_NAME.match(bank):
        raise ConfigError(
            f"bank names use lower-case letters, digits and '-', start with a letter or "
            f"digit and have at most 63 characters; got '{bank}'",
            source="BANK",
        )
    return bank


def _require_superlink(consortium: Consortium) -> None:
    if Service("superlink", consortium.paths.services).pid() is None:
        raise ServiceError(
            "the SuperLink is not running; start it with "
            f"`fedcredit coordinator start {consortium.paths.root}`"
        )


def _read_public_key(path: Path) -> bytes:
    """The bytes of an OpenSSH ECDSA public key on a NIST curve (ConfigError otherwise)."""
    try:
        data = path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read ({exc.strerror})", source=str(path)) from exc
    try:
        key = serialization.load_ssh_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            "not an OpenSSH public key; send the node.pub made by `fedcredit participant keygen`",
            source=str(path),
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(
            "node keys must be ECDSA keys (fedcredit participant keygen)", source=str(path)
        )
    return data


def read_audit_key(path: Path) -> bytes:
    """The 32 raw bytes of a bank's Ed25519 audit public key (``audit.pub``, PEM or OpenSSH).

    Raises
    ------
    ConfigError
        The file is missing or unreadable, or holds no Ed25519 public key; the message
        names the file and asks for the bank's ``audit.pub``.
    """
    ask = "pass the audit.pub that `fedcredit participant keygen` wrote beside node.pub"
    try:
        data = path.expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"not the bank's audit key: cannot read ({exc.strerror}); {ask}", source=str(path)
        ) from exc
    try:
        key: object = (
            serialization.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----BEGIN")
            else serialization.load_ssh_public_key(data.strip())
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"not the bank's audit key: not a PEM or OpenSSH public key; {ask}", source=str(path)
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(
            f"not the bank's audit key: expected an Ed25519 key, got {type(key).__name__} "
            f"(a node.pub goes to --public-key); {ask}",
            source=str(path),
        )
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _record_path(consortium: Consortium, bank: str) -> Path:
    return consortium.paths.participant(bank) / RECORD_FILE


def list_participants(consortium: Consortium) -> list[Participant]:
    """Every bank ever added (removed ones too), by name."""
    folder = consortium.paths.participants
    if not folder.is_dir():
        return []
    return [
        _read_record(record)
        for record in sorted(folder.glob(f"*/{RECORD_FILE}"))
        if record.is_file()
    ]


def _read_record(path: Path) -> Participant:
    try:
        return Participant.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise ConfigError(f"unreadable participant record ({exc})", source=str(path)) from exc


def _write_record(consortium: Consortium, record: Participant) -> None:
    path = _record_path(consortium, record.name)
    path.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def add_participant(
    consortium: Consortium, bank: str, public_key: Path, audit_key: Path
) -> Participant:
    """Register ``bank``'s node key with the SuperLink, list its audit key, write its bundle.

    Parameters
    ----------
    consortium : Consortium
        The loaded consortium folder (its SuperLink must run).
    bank : str
        The bank's name (lower-case letters, digits, ``-``).
    public_key : pathlib.Path
        The bank's ``node.pub`` (OpenSSH ECDSA): registered with the SuperLink.
    audit_key : pathlib.Path
        The bank's ``audit.pub`` (Ed25519): recorded, and put on the member list.

    Raises
    ------
    ConfigError
        Bad bank name, the bank is already registered, a key of the wrong kind or
        already used by another bank, or a registered bank without an audit key
        (nothing is registered then).
    ServiceError
        The SuperLink is not running.
    OperationFailed
        ``flwr supernode register`` failed.
    """
    validate_bank_name(bank)
    key_bytes = _read_public_key(public_key)
    audit_raw = read_audit_key(audit_key)
    key_sha256 = hashlib.sha256(base64.b64decode(key_bytes.split()[1])).hexdigest()
    audit_b64 = base64.b64encode(audit_raw).decode()
    registered = _registered(list_participants(consortium))
    for existing in registered:
        if existing.name == bank:
            raise ConfigError(
                f"participant '{bank}' is already registered (node {existing.node_id}); "
                f"remove it first with `fedcredit coordinator remove-participant`",
                source="BANK",
            )
        if existing.key_sha256 == key_sha256:
            raise ConfigError(
                f"this key is already registered for participant '{existing.name}'; "
                "each bank needs its own key",
                source=str(public_key),
            )
        if existing.audit_key == audit_b64:
            raise ConfigError(
                f"this audit key is already registered for participant '{existing.name}'; "
                "each bank needs its own key",
                source=str(audit_key),
            )
    # The list with the new bank, built before anything is registered: a record that
    # cannot be listed stops the onboarding here.
    provisional = Participant(
        name=bank, node_id=0, key_sha256=key_sha256, audit_key=audit_b64, added_at=_now()
    )
    _members_of(consortium, [*registered, provisional])
    _require_superlink(consortium)
    folder = consortium.paths.participant(bank)
    folder.mkdir(parents=True, exist_ok=True)
    key_copy = folder / "node.pub"
    key_copy.write_bytes(key_bytes)
    (folder / "audit.pub").write_bytes(audit_key.expanduser().read_bytes())
    reply = run_flwr(
        consortium.paths.flwr_home,
        "supernode",
        "register",
        str(key_copy),
        CONNECTION,
        "--name",
        bank,
    )
    record = provisional.model_copy(update={"node_id": int(reply["node-id"])})
    _write_record(consortium, record)
    write_member_list(consortium)
    write_bundle(consortium, bank)
    return record


def _registered(records: list[Participant]) -> list[Participant]:
    return [record for record in records if record.status is ParticipantStatus.REGISTERED]


def _members_of(consortium: Consortium, registered: list[Participant]) -> MemberList | None:
    """The member list of ``registered`` banks (None when there are none).

    Raises
    ------
    ConfigError
        A registered bank has no recorded audit key (a record from before member
        lists): names the banks and what to do.
    """
    if not registered:
        return None
    unkeyed = sorted(record.name for record in registered if record.audit_key is None)
    if unkeyed:
        raise ConfigError(
            f"no audit key is recorded for {', '.join(unkeyed)}, so the member list cannot "
            "name them: remove each with `fedcredit coordinator remove-participant` and add "
            "it again with --audit-key (the bank's audit.pub)",
            source=str(consortium.paths.members),
        )
    members = tuple(
        Member(name=record.name, signing_key=base64.b64decode(record.audit_key or ""))
        for record in registered
    )
    try:
        return MemberList(consortium=consortium.config.name, members=members)
    except ValueError as exc:
        raise ConfigError(str(exc), source=str(consortium.paths.members)) from exc


def member_list(consortium: Consortium) -> MemberList | None:
    """The member list of the banks registered now (None when none is).

    Raises
    ------
    ConfigError
        A registered bank has no recorded audit key.
    """
    return _members_of(consortium, _registered(list_participants(consortium)))


def write_member_list(consortium: Consortium) -> MemberList | None:
    """Rewrite ``members.json`` from the participant records; the list written.

    With no bank registered the file is removed (a member list names at least one).
    The file is replaced atomically (written beside it, then renamed).

    Raises
    ------
    ConfigError
        A registered bank has no recorded audit key (the file is left as it was).
    """
    members = member_list(consortium)
    path = consortium.paths.members
    if members is None:
        path.unlink(missing_ok=True)
        return None
    partial = path.with_name(f".{path.name}.partial")
    members.write(partial)
    partial.replace(path)  # atomic: a bank never receives half a list
    return members


def write_bundle(consortium: Consortium, bank: str) -> Bundle:
    """(Re)write ``participants/<bank>/bundle/`` from the consortium's current files.

    The bundle carries the consortium's current ``members.json`` (and its fingerprint
    in ``bundle.toml``) when there is one, and the coordinator's audit public key (and
    its hash), which signs the consortium's model packages.
    """
    config = consortium.config
    members_file = consortium.paths.members
    members = MemberList.load(members_file) if members_file.is_file() else None
    coordinator_key = consortium.paths.audit_public_key
    bundle = Bundle(
        consortium=config.name,
        bank=bank,
        superlink=config.edge_address,
        config_sha256=consortium.config_sha256,
        schema_sha256=load_schema(consortium.schema_path).schema_hash(),
        fedcredit_version=__version__,
        privacy=config.privacy,
        members_fingerprint=None if members is None else members.fingerprint,
        coordinator_key_sha256=fingerprint(load_public_key(coordinator_key))
        if coordinator_key.is_file()
        else None,
    )
    target = consortium.paths.participant(bank) / "bundle"
    if target.exists():
        shutil.rmtree(target)
    return bundle.write(
        target,
        ca_cert=consortium.paths.ca_cert,
        schema=consortium.schema_path,
        members=members_file if members is not None else None,
        coordinator_key=coordinator_key if coordinator_key.is_file() else None,
    )


@dataclass(frozen=True)
class Removal:
    """A revoked bank's record, and the member list written without it.

    Attributes
    ----------
    record : Participant
        The bank's record, now ``removed``.
    members : MemberList or None
        The member list of the banks still registered; None when none is, or when
        ``unlisted`` is not empty.
    unlisted : tuple of str
        Banks still registered without a recorded audit key (records from before
        member lists): no list can name them, so ``members.json`` was removed rather
        than left naming the revoked bank.
    """

    record: Participant
    members: MemberList | None
    unlisted: tuple[str, ...] = ()


def remove_participant(consortium: Consortium, bank: str) -> Removal:
    """Unregister ``bank``'s node (a running SuperNode is disconnected), mark it removed,
    and rewrite the member list without it.

    Revoking never waits on the member list: when a bank still registered has no
    recorded audit key, the bank is revoked all the same and ``members.json`` is
    removed (:attr:`Removal.unlisted` names the banks to add again).

    Raises
    ------
    ConfigError
        Unknown bank, or it was removed already.
    ServiceError
        The SuperLink is not running.
    OperationFailed
        ``flwr supernode unregister`` failed.
    """
    known = {p.name: p for p in list_participants(consortium)}
    record = known.get(bank)
    if record is None:
        registered = [n for n, p in known.items() if p.status is ParticipantStatus.REGISTERED]
        raise ConfigError(
            f"unknown participant '{bank}' (registered: {', '.join(registered) or 'none'})",
            source="BANK",
        )
    if record.status is ParticipantStatus.REMOVED:
        raise ConfigError(
            f"participant '{bank}' was already removed on {record.removed_at}", source="BANK"
        )
    _require_superlink(consortium)
    run_flwr(consortium.paths.flwr_home, "supernode", "unregister", str(record.node_id), CONNECTION)
    removed = record.model_copy(update={"status": ParticipantStatus.REMOVED, "removed_at": _now()})
    _write_record(consortium, removed)
    remaining = _registered(list_participants(consortium))
    unlisted = tuple(sorted(p.name for p in remaining if p.audit_key is None))
    if unlisted:
        consortium.paths.members.unlink(missing_ok=True)
        return Removal(record=removed, members=None, unlisted=unlisted)
    return Removal(record=removed, members=write_member_list(consortium))

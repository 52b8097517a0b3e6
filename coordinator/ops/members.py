"""Onboarding and revoking partner banks: ``add-participant`` and ``remove-participant``.

Adding a bank registers its node public key with the running SuperLink (``flwr
supernode register``, which prints the node id), records the bank in
``participants/<bank>/participant.json`` and writes its onboarding bundle
(:class:`deploy.bundle.Bundle`) into ``participants/<bank>/bundle/``.
Removing a bank unregisters the node id: the SuperLink refuses the node's next
request with HTTP 401, which disconnects a running SuperNode.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import shutil
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, ValidationError

from coordinator.ops.consortium import Consortium
from coordinator.ops.flower_cli import run_flwr
from coordinator.ops.layout import CONNECTION
from credit import __version__
from credit.errors import ConfigError
from credit.schema import load_schema
from deploy.bundle import Bundle
from deploy.services import Service, ServiceError

__all__ = [
    "BANK_NAME",
    "Participant",
    "ParticipantStatus",
    "add_participant",
    "list_participants",
    "remove_participant",
    "validate_bank_name",
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
    added_at, removed_at : str
        UTC times (ISO 8601) of ``add-participant`` and ``remove-participant``.
    status : ParticipantStatus
        ``registered`` or ``removed``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    node_id: int
    key_sha256: str
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


def add_participant(consortium: Consortium, bank: str, public_key: Path) -> Participant:
    """Register ``bank``'s node key with the SuperLink and write its bundle.

    Raises
    ------
    ConfigError
        Bad bank name, the bank is already registered, the key is not an OpenSSH
        ECDSA public key, or another bank already uses it.
    ServiceError
        The SuperLink is not running.
    OperationFailed
        ``flwr supernode register`` failed.
    """
    validate_bank_name(bank)
    key_bytes = _read_public_key(public_key)
    key_sha256 = hashlib.sha256(base64.b64decode(key_bytes.split()[1])).hexdigest()
    for existing in list_participants(consortium):
        if existing.status is not ParticipantStatus.REGISTERED:
            continue
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
    _require_superlink(consortium)
    folder = consortium.paths.participant(bank)
    folder.mkdir(parents=True, exist_ok=True)
    key_copy = folder / "node.pub"
    key_copy.write_bytes(key_bytes)
    reply = run_flwr(
        consortium.paths.flwr_home,
        "supernode",
        "register",
        str(key_copy),
        CONNECTION,
        "--name",
        bank,
    )
    node_id = int(reply["node-id"])
    record = Participant(name=bank, node_id=node_id, key_sha256=key_sha256, added_at=_now())
    _write_record(consortium, record)
    write_bundle(consortium, bank)
    return record


def write_bundle(consortium: Consortium, bank: str) -> Bundle:
    """(Re)write ``participants/<bank>/bundle/`` from the consortium's current files."""
    config = consortium.config
    bundle = Bundle(
        consortium=config.name,
        bank=bank,
        superlink=config.edge_address,
        config_sha256=consortium.config_sha256,
        schema_sha256=load_schema(consortium.schema_path).schema_hash(),
        fedcredit_version=__version__,
        privacy=config.privacy,
    )
    target = consortium.paths.participant(bank) / "bundle"
    if target.exists():
        shutil.rmtree(target)
    return bundle.write(target, ca_cert=consortium.paths.ca_cert, schema=consortium.schema_path)


def remove_participant(consortium: Consortium, bank: str) -> Participant:
    """Unregister ``bank``'s node (a running SuperNode is disconnected) and mark it removed.

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
    return removed

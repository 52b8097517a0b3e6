"""The onboarding bundle the operator hands a bank: what its SuperNode needs to connect.

A bundle is a folder of five files, written by ``fedcredit coordinator
add-participant`` into ``DIR/participants/<bank>/bundle/``::

    bundle.toml   consortium and bank name, edge address, config and schema hashes,
                  fedcredit version, recommended privacy budget, the member list's
                  fingerprint
    ca.crt        the consortium's root certificate (the only one the bank trusts)
    schema.toml   the dataset schema the bank's data must meet
    members.json  the consortium's member list when the bundle was written
                  (:class:`~privacy.secagg.members.MemberList`): every registered
                  bank's name and audit key
    coordinator.pub  the public half of the coordinator's audit key, which signs
                  the audit log and every model package the consortium writes: the
                  key a bank pins to verify a package (``fedcredit model verify
                  --signer``, ``fedcredit score``/``serve --signer``)

Nothing in it is secret. The bank checks it on arrival: :meth:`Bundle.load`
validates ``bundle.toml`` and refuses a schema whose hash, or a member list whose
fingerprint, or a coordinator key whose hash, is not the one recorded. ``schema_sha256`` is
:meth:`credit.schema.DatasetSchema.schema_hash`, the same canonical hash the
coordinator sends with each round. The bundle's member list is only a proposal: the
bank pins it at ``participant start`` after comparing its fingerprint with the
other banks (a bundle from before member lists has none).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, field_validator

from credit.audit import fingerprint, load_public_key
from credit.config_files import read_toml, validate_fields
from credit.errors import ConfigError, FedcreditError, SchemaError
from credit.schema import load_schema
from privacy.budget import PrivacyBudget
from privacy.secagg.members import MemberList

__all__ = ["BUNDLE_FILE", "COORDINATOR_KEY_FILE", "MEMBERS_FILE", "Bundle"]

BUNDLE_FILE = "bundle.toml"
CA_FILE = "ca.crt"
SCHEMA_FILE = "schema.toml"
MEMBERS_FILE = "members.json"
COORDINATOR_KEY_FILE = "coordinator.pub"
_SHA256 = r"^[0-9a-f]{64}$"
_FINGERPRINT = r"^SHA256:[A-Za-z0-9+/]{43}$"
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


class Bundle(BaseModel):
    """The contents of ``bundle.toml``, plus the folder it was read from.

    Parameters
    ----------
    consortium : str
        The consortium's name.
    bank : str
        The bank's registered name.
    superlink : str
        ``host:port`` of the consortium's edge, the address the SuperNode dials.
    config_sha256 : str
        SHA-256 of the operator's ``consortium.toml`` at onboarding.
    schema_sha256 : str
        Canonical hash of the dataset schema (``DatasetSchema.schema_hash()``).
    fedcredit_version : str
        The fedcredit release the consortium runs.
    privacy : PrivacyBudget, optional
        The privacy budget the consortium recommends; the bank decides its own.
    members_fingerprint : str, optional
        Fingerprint (``SHA256:...``) of the bundle's ``members.json``; absent in a
        bundle without a member list.
    coordinator_key_sha256 : str, optional
        SHA-256 (hex) of the 32 raw bytes of the coordinator's audit public key in
        ``coordinator.pub`` (:func:`credit.audit.fingerprint`); absent in a bundle
        from before model packages were signed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    consortium: str = Field(min_length=1)
    bank: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    superlink: str
    config_sha256: str = Field(pattern=_SHA256)
    schema_sha256: str = Field(pattern=_SHA256)
    fedcredit_version: str = Field(min_length=1)
    privacy: PrivacyBudget | None = None
    members_fingerprint: str | None = Field(default=None, pattern=_FINGERPRINT)
    coordinator_key_sha256: str | None = Field(default=None, pattern=_SHA256)
    folder: Path = Field(default=Path("."), exclude=True)
    """The bundle's folder (where ``ca.crt`` and ``schema.toml`` are); not serialized."""

    @field_validator("superlink")
    @classmethod
    def _host_port(cls, value: str) -> str:
        match = _ADDRESS.match(value)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ValueError(f"must be host:port, e.g. fl.example.org:9443; got '{value}'")
        return value

    @property
    def ca_cert(self) -> Path:
        """The consortium's root certificate."""
        return self.folder / CA_FILE

    @property
    def schema_path(self) -> Path:
        """The consortium's dataset schema."""
        return self.folder / SCHEMA_FILE

    @property
    def members_path(self) -> Path | None:
        """The bundle's member list; None when the bundle has none."""
        return None if self.members_fingerprint is None else self.folder / MEMBERS_FILE

    @property
    def coordinator_key_path(self) -> Path | None:
        """The coordinator's audit public key; None when the bundle has none."""
        return None if self.coordinator_key_sha256 is None else self.folder / COORDINATOR_KEY_FILE

    def at(self, folder: Path) -> Bundle:
        """This bundle, located in ``folder``."""
        return self.model_copy(update={"folder": folder.expanduser().resolve()})

    @classmethod
    def load(cls, path: Path) -> Bundle:
        """Read and check a bundle folder (or its ``bundle.toml``).

        Raises
        ------
        ConfigError
            ``bundle.toml`` is missing, not TOML, or breaks a rule; ``ca.crt``,
            ``schema.toml`` or (with a ``members_fingerprint``) ``members.json`` is
            missing; the schema's hash or the member list's fingerprint differs from
            the recorded one. The message names the file and key.
        """
        path = path.expanduser().resolve()
        folder = path.parent if path.name == BUNDLE_FILE or path.is_file() else path
        file = read_toml(
            folder / BUNDLE_FILE, if_missing="pass the bundle folder the operator sent"
        )
        if "folder" in file.table:  # a field, but never one the file may set
            raise ConfigError("'folder': unknown key", source=str(file.path))
        bundle = validate_fields(cls, file.table, source=str(file.path)).at(folder)
        bundle._check_files()
        return bundle

    def _check_files(self) -> None:
        for required in (self.ca_cert, self.schema_path):
            if not required.is_file():
                raise ConfigError(
                    "missing from the bundle; ask the operator for the whole folder",
                    source=str(required),
                )
        try:
            actual = load_schema(self.schema_path).schema_hash()
        except SchemaError as exc:
            raise ConfigError(str(exc), source=str(self.schema_path)) from exc
        if actual != self.schema_sha256:
            raise ConfigError(
                f"schema hash {actual[:12]}… differs from the bundle's "
                f"schema_sha256 {self.schema_sha256[:12]}…; the schema was changed after "
                "onboarding: ask the operator for a fresh bundle",
                source=str(self.schema_path),
            )
        self._check_members()
        self._check_coordinator_key()

    def _check_coordinator_key(self) -> None:
        path, recorded = self.coordinator_key_path, self.coordinator_key_sha256
        if path is None or recorded is None:
            return
        if not path.is_file():
            raise ConfigError(
                "missing from the bundle; ask the operator for the whole folder", source=str(path)
            )
        try:
            actual = fingerprint(load_public_key(path))
        except FedcreditError as exc:
            raise ConfigError(f"not an Ed25519 public key ({exc})", source=str(path)) from exc
        if actual != recorded:
            raise ConfigError(
                f"the coordinator key's hash {actual[:12]}… differs from the bundle's "
                f"coordinator_key_sha256 {recorded[:12]}…; the key was "
                "changed after the bundle was written: ask the operator for a fresh bundle",
                source=str(path),
            )

    def _check_members(self) -> None:
        if self.members_path is None:
            return
        if not self.members_path.is_file():
            raise ConfigError(
                "missing from the bundle; ask the operator for the whole folder",
                source=str(self.members_path),
            )
        actual = MemberList.load(self.members_path).fingerprint
        if actual != self.members_fingerprint:
            raise ConfigError(
                f"the member list's fingerprint {actual} differs from the bundle's "
                f"members_fingerprint {self.members_fingerprint}; the list was changed "
                "after the bundle was written: ask the operator for a fresh bundle",
                source=str(self.members_path),
            )

    def write(
        self,
        folder: Path,
        *,
        ca_cert: Path | None = None,
        schema: Path | None = None,
        members: Path | None = None,
        coordinator_key: Path | None = None,
    ) -> Bundle:
        """Write ``bundle.toml`` and copies of the certificate, schema, member list and key.

        Each file defaults to this bundle's own (copying a bundle); ``members`` is
        copied only when the bundle has a ``members_fingerprint``, ``coordinator_key``
        only when it has a ``coordinator_key_sha256``.

        Returns
        -------
        Bundle
            This bundle located in ``folder``.
        """
        folder.mkdir(parents=True, exist_ok=True)
        copies = [(ca_cert or self.ca_cert, CA_FILE), (schema or self.schema_path, SCHEMA_FILE)]
        member_list = members or self.members_path
        if self.members_fingerprint is not None and member_list is not None:
            copies.append((member_list, MEMBERS_FILE))
        coordinator = coordinator_key or self.coordinator_key_path
        if self.coordinator_key_sha256 is not None and coordinator is not None:
            copies.append((coordinator, COORDINATOR_KEY_FILE))
        for source, name in copies:
            if source.resolve() != (folder / name).resolve():
                shutil.copyfile(source, folder / name)
        data = self.model_dump(mode="json", exclude_none=True)
        header = (
            "# fedcredit onboarding bundle: give this whole folder to the bank.\n"
            "# Nothing here is secret; the bank checks the schema hash on arrival and\n"
            "# compares members.json's fingerprint with the other banks before pinning it.\n"
        )
        (folder / BUNDLE_FILE).write_text(header + tomli_w.dumps(data), encoding="utf-8")
        return self.at(folder)

"""The package manifest: every file's digest, signed with the coordinator's Ed25519 key.

``manifest.json`` lists each file of the package folder with its SHA-256 and size,
the run it comes from and the signer's public key; ``manifest.sig`` is the Ed25519
signature (RFC 8032, base64) of ``manifest.json``'s exact bytes. The package digest
that names a package everywhere (``fedcredit score``'s summary, the service's
``"model"`` field) is the SHA-256 of those bytes, so it changes with any file.

Verification (:func:`verify_folder`) reads every file once and returns its bytes, so
that a loader uses exactly what was checked (no second read a swap could slip under).
It refuses, naming the file and what to do: a missing or unreadable manifest or
signature, a signature that is not the manifest signer's, a signer other than the
pinned one, a listed file missing, changed or resized, and any file the manifest
does not list (a planted file) or a sub-folder.

Notes
-----
The signer key is the coordinator's audit key (:mod:`credit.audit`): whoever trusts
the consortium's audit log trusts its packages with the same public key, pinned with
``--signer``. Without a pinned key, verification proves only that the package is
whole and was signed by the key it names: anybody can sign a package with a key of
their own. A bank should pin the consortium's key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from credit.audit import fingerprint
from credit.errors import PackageRefused

__all__ = [
    "MANIFEST_FILE",
    "PACKAGE_FORMAT",
    "SIGNATURE_FILE",
    "FileDigest",
    "Manifest",
    "SignerKey",
    "VerifiedFolder",
    "package_digest",
    "sign_folder",
    "signer_fingerprint",
    "verify_folder",
]

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
PACKAGE_FORMAT: Final = "fedcredit-package/1"
_RECOPY = "copy the whole model folder again from the consortium's run"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileDigest(_Frozen):
    """One listed file: its SHA-256 (hex) and size in bytes."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class SignerKey(_Frozen):
    """The key that signed the manifest: Ed25519, raw public key in base64."""

    algorithm: Literal["ed25519"] = "ed25519"
    public_key: str
    fingerprint: str

    def key(self) -> Ed25519PublicKey:
        """The public key; ValueError when it is not 32 bytes of base64."""
        raw = base64.b64decode(self.public_key, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)


class Manifest(_Frozen):
    """``manifest.json``: format, creation time, run, files and signer.

    Attributes
    ----------
    format : str
        :data:`PACKAGE_FORMAT`.
    created : str
        When the package was signed (ISO 8601, UTC).
    run : str
        The run the model comes from (its name, or its output folder's name).
    files : dict of str to FileDigest
        Every file of the folder except the manifest and its signature, by name.
    signer : SignerKey
        The signing key.
    """

    format: Literal["fedcredit-package/1"]
    created: str
    run: str
    files: dict[str, FileDigest]
    signer: SignerKey


def package_digest(manifest_bytes: bytes) -> str:
    """The package digest: SHA-256 (hex) of ``manifest.json``'s exact bytes."""
    return hashlib.sha256(manifest_bytes).hexdigest()


def signer_fingerprint(public_key: Ed25519PublicKey) -> str:
    """``SHA256:<hex>``: the audit key fingerprint (:func:`credit.audit.fingerprint`)."""
    return f"SHA256:{fingerprint(public_key)}"


@dataclass(frozen=True)
class VerifiedFolder:
    """A package folder that passed verification, with the bytes that were checked.

    Attributes
    ----------
    manifest : Manifest
        The signed manifest.
    digest : str
        SHA-256 (hex) of ``manifest.json``'s bytes: the package digest.
    contents : mapping of str to bytes
        Every listed file's bytes, as hashed.
    """

    manifest: Manifest
    digest: str
    contents: Mapping[str, bytes]


def sign_folder(directory: Path, *, run: str, signing_key: Ed25519PrivateKey) -> Manifest:
    """List every file of ``directory`` in a manifest, sign it, write both.

    Parameters
    ----------
    directory : pathlib.Path
        The package folder, holding plain files only (a stale manifest and signature
        are replaced).
    run : str
        The run's name for the manifest.
    signing_key : Ed25519PrivateKey
        The coordinator's audit key.

    Raises
    ------
    PackageRefused
        The folder holds a sub-folder or a link: a package is a flat set of files.
    """
    files: dict[str, FileDigest] = {}
    for path in sorted(directory.iterdir()):
        if path.name in (MANIFEST_FILE, SIGNATURE_FILE):
            continue
        if path.is_symlink() or not path.is_file():
            raise PackageRefused(
                "not a plain file; a package holds plain files only",
                file=path,
                hint="remove it before signing",
            )
        data = path.read_bytes()
        files[path.name] = FileDigest(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    public = signing_key.public_key()
    manifest = Manifest(
        format=PACKAGE_FORMAT,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        run=run,
        files=files,
        signer=SignerKey(
            public_key=base64.b64encode(_raw(public)).decode("ascii"),
            fingerprint=signer_fingerprint(public),
        ),
    )
    text = (json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n").encode("utf-8")
    (directory / MANIFEST_FILE).write_bytes(text)
    signature = base64.b64encode(signing_key.sign(text)) + b"\n"
    (directory / SIGNATURE_FILE).write_bytes(signature)
    return manifest


def verify_folder(
    directory: Path | str, *, signer: Ed25519PublicKey | None = None
) -> VerifiedFolder:
    """Check a package folder's signature, signer and every file (module docstring).

    Parameters
    ----------
    directory : pathlib.Path or str
        The package folder (a run's ``model/``).
    signer : Ed25519PublicKey, optional
        The pinned signer: the package must be signed by exactly this key.

    Raises
    ------
    PackageRefused
        Any failure, naming the file and what to do.
    """
    root = Path(directory)
    if not root.is_dir():
        raise PackageRefused(
            "no such package folder", file=root, hint="pass the 'model' folder of a run"
        )
    text = _read(root / MANIFEST_FILE)
    manifest = _parse_manifest(text, root / MANIFEST_FILE)
    _check_signature(root, text, manifest, signer)
    contents = {name: _checked_file(root, name, entry) for name, entry in manifest.files.items()}
    _refuse_unlisted(root, manifest)
    return VerifiedFolder(manifest=manifest, digest=package_digest(text), contents=contents)


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _read(path: Path) -> bytes:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise PackageRefused("not a plain file (a link or a folder)", file=path, hint=_RECOPY)
    if not path.exists():
        raise PackageRefused(
            "missing (not a signed package, or incomplete)", file=path, hint=_RECOPY
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PackageRefused(f"unreadable ({exc.strerror})", file=path, hint=_RECOPY) from exc


def _parse_manifest(text: bytes, path: Path) -> Manifest:
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise PackageRefused(
            f"not a valid package manifest ({where}: {first['msg']})", file=path, hint=_RECOPY
        ) from exc


def _check_signature(
    root: Path, text: bytes, manifest: Manifest, pinned: Ed25519PublicKey | None
) -> None:
    manifest_path = root / MANIFEST_FILE
    try:
        key = manifest.signer.key()
    except (ValueError, binascii.Error) as exc:
        raise PackageRefused(
            "the signer's public key is not a base64 Ed25519 key", file=manifest_path, hint=_RECOPY
        ) from exc
    if manifest.signer.fingerprint != signer_fingerprint(key):
        raise PackageRefused(
            "the signer's fingerprint does not match its public key",
            file=manifest_path,
            hint=_RECOPY,
        )
    if pinned is not None and _raw(pinned) != _raw(key):
        raise PackageRefused(
            f"signed by {signer_fingerprint(key)}, not by the pinned signer "
            f"{signer_fingerprint(pinned)}",
            file=manifest_path,
            hint="use the package the consortium signed, or pin the key that signed it "
            "(--signer: the coordinator's audit .pub file)",
        )
    signature_path = root / SIGNATURE_FILE
    encoded = _read(signature_path)
    try:
        signature = base64.b64decode(encoded.strip(), validate=True)
        key.verify(signature, text)
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise PackageRefused(
            "the signature does not verify: manifest.json or manifest.sig was changed",
            file=signature_path,
            hint=_RECOPY,
        ) from exc


def _checked_file(root: Path, name: str, entry: FileDigest) -> bytes:
    if name in ("", ".", "..") or "/" in name or "\\" in name or name != name.strip():
        raise PackageRefused(
            f"the manifest lists {name!r}, which is not a file name in the folder",
            file=root / MANIFEST_FILE,
            hint=_RECOPY,
        )
    path = root / name
    data = _read(path)
    if len(data) != entry.bytes:
        raise PackageRefused(
            f"{len(data)} bytes, the manifest says {entry.bytes}: the file was changed",
            file=path,
            hint=_RECOPY,
        )
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise PackageRefused(
            "sha256 differs from the manifest's: the file was changed", file=path, hint=_RECOPY
        )
    return data


def _refuse_unlisted(root: Path, manifest: Manifest) -> None:
    known = {*manifest.files, MANIFEST_FILE, SIGNATURE_FILE}
    for path in sorted(root.iterdir()):
        if path.name not in known:
            raise PackageRefused(
                "not listed in the signed manifest (a file added to the package)",
                file=path,
                hint="remove it, or copy the whole model folder again from the consortium's run",
            )

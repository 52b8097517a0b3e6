"""Ed25519 signing keys of audit-log writers: create, load, fingerprint.

A writer's private key is a PEM (PKCS#8, unencrypted) file with mode 0600; its
public key sits beside it as ``<stem>.pub`` (PEM) for auditors, and the record of
the logs it has signed as ``<stem>.history`` (see :mod:`credit.audit._history`). The
fingerprint that names a key in every entry is the SHA-256 (hex) of its 32 raw bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from credit.errors import ConfigError

__all__ = [
    "fingerprint",
    "history_path",
    "load_or_create_signing_key",
    "load_public_key",
    "public_key_path",
    "public_key_pem",
    "raw_public_bytes",
]


def public_key_path(key_path: Path) -> Path:
    """Where the public half of the signing key at ``key_path`` is kept: ``<stem>.pub``."""
    return key_path.with_suffix(".pub")


def history_path(key_path: Path) -> Path:
    """Where the logs signed with the key at ``key_path`` are recorded: ``<stem>.history``."""
    return key_path.with_suffix(".history")


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 (hex) of the 32 raw bytes of ``public_key``."""
    return hashlib.sha256(raw_public_bytes(public_key)).hexdigest()


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key at ``path``, created (PEM PKCS#8, mode 0600) when missing.

    The public key is written beside it as ``<stem>.pub`` (PEM) when absent. A new
    key has signed nothing yet: a ``<stem>.history`` left beside it by a key that was
    there before is removed before the new key is written.

    Raises
    ------
    ConfigError
        The file is not an Ed25519 private key, other users can read it, or the
        ``.pub`` beside it belongs to another key.
    """
    path = Path(path)
    if path.exists():
        key = _read_signing_key(path)
    else:
        key = Ed25519PrivateKey.generate()  # the OS's CSPRNG
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        history_path(path).unlink(missing_ok=True)  # a former key's, at this path
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_or_create_signing_key(path)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
    _write_public_key(path, key.public_key())
    return key


def _read_signing_key(path: Path) -> Ed25519PrivateKey:
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            "the audit signing key is readable by other users; run: chmod 600 " + str(path),
            source=str(path),
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"not a readable unencrypted PEM private key ({exc})", source=str(path)
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"the audit signing key must be Ed25519, got {type(key).__name__}", source=str(path)
        )
    return key


def _write_public_key(key_path: Path, public_key: Ed25519PublicKey) -> None:
    pub_path = public_key_path(key_path)
    if pub_path.exists():
        if fingerprint(load_public_key(pub_path)) != fingerprint(public_key):
            raise ConfigError(
                f"{pub_path} holds another key than {key_path}; remove the stale .pub file",
                source=str(pub_path),
            )
        return
    pub_path.write_bytes(public_key_pem(public_key))


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM (SubjectPublicKeyInfo) or OpenSSH file.

    Raises
    ------
    ConfigError
        The file is missing, unreadable or holds another kind of key.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read public key ({exc.strerror})", source=str(path)) from exc
    try:
        if data.lstrip().startswith(b"ssh-"):
            key: object = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            "not a PEM or OpenSSH public key; pass the writer's .pub file", source=str(path)
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"expected an Ed25519 key, got {type(key).__name__}", source=str(path))
    return key

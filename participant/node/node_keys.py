"""A bank's keys, made at the bank by ``fedcredit participant keygen DIR``.

Two key pairs, both generated from the operating system's CSPRNG by ``cryptography``:

- the **node key** (ECDSA on NIST P-384, OpenSSH format): the bank's SuperNode signs
  every Fleet API request with it; the operator registers ``node.pub`` with the
  SuperLink (``fedcredit coordinator add-participant``);
- the **audit key** (Ed25519, PEM PKCS#8): the bank signs its own audit log with it;
  ``audit.pub`` lets anybody check that log.

The private halves (``node.key``, ``audit.key``) are created with mode 0600 and never
leave the bank; only the ``.pub`` files are sent to the operator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from credit.errors import ConfigError

__all__ = ["BankKeyFiles", "generate_bank_keys", "load_node_private_key"]


@dataclass(frozen=True)
class BankKeyFiles:
    """The four key files of a bank in ``folder``."""

    folder: Path

    @property
    def node_key(self) -> Path:
        return self.folder / "node.key"

    @property
    def node_public(self) -> Path:
        return self.folder / "node.pub"

    @property
    def audit_key(self) -> Path:
        return self.folder / "audit.key"

    @property
    def audit_public(self) -> Path:
        return self.folder / "audit.pub"

    @property
    def all(self) -> tuple[Path, Path, Path, Path]:
        return (self.node_key, self.node_public, self.audit_key, self.audit_public)


def generate_bank_keys(folder: Path, *, comment: str = "fedcredit-node") -> BankKeyFiles:
    """Create the node and audit key pairs in ``folder``; never overwrite a key.

    Parameters
    ----------
    folder : pathlib.Path
        Created if missing.
    comment : str, default ``fedcredit-node``
        The comment at the end of ``node.pub``.

    Raises
    ------
    ConfigError
        One of the four files already exists (nothing is written then).
    """
    files = BankKeyFiles(folder.expanduser().resolve())
    for path in files.all:
        if path.exists():
            raise ConfigError(
                "already exists; refusing to overwrite a key (move it away first)",
                source=str(path),
            )
    files.folder.mkdir(parents=True, exist_ok=True)
    node = ec.generate_private_key(ec.SECP384R1())
    _write_new(
        files.node_key,
        node.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    public = node.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    _write_new(files.node_public, public + f" {comment}\n".encode(), mode=0o644)
    _write_audit_key(files)
    return files


def _write_audit_key(files: BankKeyFiles) -> None:
    """The Ed25519 audit-signing pair, made by :mod:`credit.audit` (PEM PKCS#8, 0600)."""
    from credit.audit import load_or_create_signing_key

    load_or_create_signing_key(files.audit_key)  # writes audit.pub beside it


def load_node_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Read a node key as Flower's SuperNode will; ConfigError naming the file if unusable."""
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(
            f"cannot read node key ({exc.strerror}); make one with `fedcredit participant keygen`",
            source=str(path),
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"not an OpenSSH private key ({exc})", source=str(path)) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("the node key must be an ECDSA key", source=str(path))
    return key


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)

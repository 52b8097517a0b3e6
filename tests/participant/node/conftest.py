"""Fixtures of the bank's node tests: the bank's keys and an onboarding bundle with a real
CA certificate and a member list naming the bank by its audit key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from credit import __version__
from credit.audit import load_public_key
from credit.schema import embedded_schema_path, load_schema
from deploy.bundle import Bundle
from participant.node.node_keys import BankKeyFiles, generate_bank_keys
from privacy.secagg.members import Member, MemberList

CONSORTIUM = "nordic"


def raw_key(public: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def member_list(keys: BankKeyFiles, *others: str, bank: str = "bank-a") -> MemberList:
    """A list of ``bank`` (by the audit key in ``keys``) and ``others`` (fresh keys)."""
    listed = [Member(name=bank, signing_key=raw_key(load_public_key(keys.audit_public)))]
    listed += [
        Member(name=name, signing_key=raw_key(Ed25519PrivateKey.generate().public_key()))
        for name in others
    ]
    return MemberList(consortium=CONSORTIUM, members=tuple(listed))


@pytest.fixture
def keys(tmp_path: Path) -> BankKeyFiles:
    """bank-a's keys, as ``participant keygen`` makes them."""
    return generate_bank_keys(tmp_path / "keys")


@pytest.fixture
def bundle(tmp_path: Path, keys: BankKeyFiles) -> Bundle:
    """bank-a's bundle; its member list names bank-a (its audit key), bank-b and bank-c."""
    from coordinator.ops.pki import create_ca, write_certificate

    ca_cert = tmp_path / "ca.crt"
    write_certificate(create_ca(CONSORTIUM).certificate, ca_cert)
    members = member_list(keys, "bank-b", "bank-c")
    members_file = tmp_path / "members.json"
    members.write(members_file)
    return Bundle.model_validate(
        {
            "consortium": CONSORTIUM,
            "bank": "bank-a",
            "superlink": "fl.example:9443",
            "config_sha256": hashlib.sha256(b"config").hexdigest(),
            "schema_sha256": load_schema().schema_hash(),
            "fedcredit_version": __version__,
            "members_fingerprint": members.fingerprint,
        }
    ).write(
        tmp_path / "bundle", ca_cert=ca_cert, schema=embedded_schema_path(), members=members_file
    )

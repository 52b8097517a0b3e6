"""Fixtures of the bank's node tests: an onboarding bundle with a real CA certificate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from credit import __version__
from credit.schema import embedded_schema_path, load_schema
from deploy.bundle import Bundle


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    from coordinator.ops.pki import create_ca, write_certificate

    ca_cert = tmp_path / "ca.crt"
    write_certificate(create_ca("nordic").certificate, ca_cert)
    return Bundle.model_validate(
        {
            "consortium": "nordic",
            "bank": "bank-a",
            "superlink": "fl.example:9443",
            "config_sha256": hashlib.sha256(b"config").hexdigest(),
            "schema_sha256": load_schema().schema_hash(),
            "fedcredit_version": __version__,
        }
    ).write(tmp_path / "bundle", ca_cert=ca_cert, schema=embedded_schema_path())

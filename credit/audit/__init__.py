"""Tamper-evident audit logs: append-only JSON lines, hash-chained and Ed25519-signed.

The package's door; :mod:`credit.audit.log` holds the writer and describes the
format, ``_chain`` the verification, ``_keys`` the signing keys and ``_history``
each key's signed record of the logs it wrote.
"""

from __future__ import annotations

from credit.audit.log import (
    CLOSING_EVENTS,
    GENESIS,
    LOG_OPEN,
    AuditBroken,
    AuditLog,
    AuditReport,
    KeyHistory,
    LogHead,
    arrays_sha256,
    canonical_json,
    fingerprint,
    history_path,
    load_or_create_signing_key,
    load_public_key,
    public_key_path,
    public_key_pem,
    verify_audit,
)

__all__ = [  # noqa: RUF022 - plain sort, as every package door
    "AuditBroken",
    "AuditLog",
    "AuditReport",
    "CLOSING_EVENTS",
    "GENESIS",
    "KeyHistory",
    "LOG_OPEN",
    "LogHead",
    "arrays_sha256",
    "canonical_json",
    "fingerprint",
    "history_path",
    "load_or_create_signing_key",
    "load_public_key",
    "public_key_path",
    "public_key_pem",
    "verify_audit",
]

"""Tamper-evident audit logs: append-only JSON lines, hash-chained and Ed25519-signed.

Both sides keep one: the coordinator records each run (start, rounds, refusals, end)
and each bank records what it was asked to do (joins, training, refusals). One entry
per line::

    {"data": {...}, "event": "round", "key": FINGERPRINT, "prev": SHA256(previous line),
     "seq": 7, "sig": BASE64, "time": "2025-01-01T12:00:00.000+00:00", "writer": "coordinator"}

* ``seq`` counts from 1; the first entry is always ``log-open`` and carries the
  writer's public key (base64 of the 32 raw bytes);
* ``prev`` is the SHA-256 (hex) of the previous line's exact bytes, newline
  excluded, and 64 zeros for the first entry;
* ``key`` is the writer's key fingerprint: SHA-256 (hex) of the raw public key;
* ``sig`` is the Ed25519 signature of the canonical JSON (sorted keys, compact
  separators, ASCII) of the entry without ``sig``; the line itself is the canonical
  JSON of the whole entry, so any byte changed in a line breaks its signature or
  its canonical form.

Notes
-----
The chain makes deletions, insertions and reordering visible; the signatures make
edits visible to anyone without the writer's private key. Neither can show that
trailing entries were cut off at a line boundary, or that the file was emptied and
a new log begun: a run's log therefore ends with a closing event (``run-end``) and
:func:`verify_audit` reports a log without one as truncated unless told the log is
live (``allow_open``); the writer keeps, beside its key, a signed record of how far
it wrote each log (:mod:`credit.audit._history`) and refuses to reopen a log that
was emptied, deleted, replaced or cut; and each side records the other's log head
with every message, which ``verify_audit(heads=...)`` checks a log against. Someone
holding the private key can rewrite the whole log; compare the fingerprint with one
published out of band (``--public-key``) and keep the head hash :func:`verify_audit`
reports. Ed25519 is RFC 8032, via the ``cryptography`` package.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import math
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from credit import __version__
from credit.audit._chain import (
    CLOSING_EVENTS,
    GENESIS,
    LOG_OPEN,
    AuditBroken,
    AuditReport,
    Chain,
    canonical_json,
    split_lines,
    truncated_line,
    verify_audit,
)
from credit.audit._history import KeyHistory, LogHead
from credit.audit._keys import (
    fingerprint,
    history_path,
    load_or_create_signing_key,
    load_public_key,
    public_key_path,
    public_key_pem,
    raw_public_bytes,
)
from credit.errors import ConfigError

__all__ = [
    "CLOSING_EVENTS",
    "GENESIS",
    "LOG_OPEN",
    "AuditBroken",
    "AuditLog",
    "AuditReport",
    "KeyHistory",
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


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as strings ("nan", "inf")."""
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of a model's arrays: names, dtypes, shapes and bytes, in order.

    Both sides hash the global model with it, so a bank's "model received" in round
    r equals the coordinator's "model after round r-1".
    """
    digest = hashlib.sha256()
    for name, array in arrays.items():
        contiguous = np.ascontiguousarray(array)
        header = canonical_json([name, contiguous.dtype.str, list(contiguous.shape)])
        digest.update(header.encode() + b"\n")
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


class AuditLog:
    """An append-only, signed audit log, opened for writing.

    Parameters
    ----------
    path : pathlib.Path
        The JSON-lines file; created (with a ``log-open`` entry) when missing or
        empty, otherwise verified and continued from its last entry.
    key : Ed25519PrivateKey
        The writer's signing key; an existing log must have been written with it.
    writer : str
        Who writes, e.g. ``"coordinator"`` or ``"bank bank-1"``.
    history : KeyHistory, optional
        The key's record of the logs it wrote (:meth:`open` reads it beside the key
        file): a log it knows is not started afresh when missing or empty, nor
        continued when cut, and every entry moves its record on. Without it the
        writer cannot tell a cut log from a new one.

    Raises
    ------
    ConfigError
        The existing log is broken or was written with another key (naming the file
        and line), or the key's record shows the log was emptied, deleted, replaced
        or cut (naming the log and the key); nothing is appended to it.

    Notes
    -----
    Every entry is written with one ``write`` on an ``O_APPEND`` descriptor, then
    flushed and fsynced, under an exclusive ``flock``: several processes of the
    same writer (a bank's per-message ClientApps) can share one log; each catches
    up with lines the others appended before adding its own. The key's record is
    moved on after the entry is on disk, so a crash between the two leaves the
    record behind the log, never ahead of it.

    ``durable`` False (simulated banks: ``fedcredit simulate``) writes the same
    signed, chained entries and the same key record without the fsyncs: three per
    entry, which at 1,000 simulated banks were seconds of every round. The logs and
    records verify exactly as durable ones (``fedcredit privacy verify`` reads the
    files, not how they reached the disk); only an operating-system crash could
    lose the latest entries, and a simulation that crashed is run again from scratch
    with new keys.
    """

    def __init__(
        self,
        path: Path,
        key: Ed25519PrivateKey,
        writer: str,
        *,
        history: KeyHistory | None = None,
        durable: bool = True,
    ) -> None:
        self.path = Path(path)
        self.writer = writer
        self._durable = durable
        self._key = key
        self._fingerprint = fingerprint(key.public_key())
        self._history = history
        if history is not None and not self.path.exists():
            history.check(self.path, [], exists=False)  # before creating the file
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self._chain = Chain(file=str(self.path))
        self._size = 0
        try:
            with self._locked():
                self._catch_up()
                if history is not None:
                    history.check(self.path, self._chain.hashes)
                if not self._chain.entries:
                    self._write(
                        LOG_OPEN,
                        {
                            "public_key": _b64(raw_public_bytes(key.public_key())),
                            "fedcredit": __version__,
                        },
                    )
                elif history is not None:  # a log from before the record, or a crash
                    history.record(self.path, self._log_head())
        except BaseException:
            os.close(self._fd)
            raise

    @classmethod
    def open(cls, path: Path, key_path: Path, writer: str, *, durable: bool = True) -> AuditLog:
        """The log at ``path``, signed with the key at ``key_path`` and kept in its record.

        The key is created when missing (:func:`load_or_create_signing_key`); its
        record of the logs it wrote is ``<stem>.history`` beside it. ``durable``
        False skips the fsyncs (the class's Notes): what is written, signed and
        chained is the same, only a machine crash may lose the last entries.

        Raises
        ------
        ConfigError
            As the constructor, or the key or its record is unusable.
        """
        key = load_or_create_signing_key(Path(key_path))
        history = KeyHistory(Path(key_path), key, durable=durable)
        return cls(path, key, writer, history=history, durable=durable)

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the writer's raw public key."""
        return self._fingerprint

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The writer's public key (what auditors verify the log with)."""
        return self._key.public_key()

    def current_head(self) -> LogHead:
        """How far the log goes now, lines other processes appended included."""
        with self._locked():
            self._catch_up()
            return self._log_head()

    @property
    def seq(self) -> int:
        """The sequence number of the last entry."""
        return self._chain.seq

    @property
    def head(self) -> str:
        """SHA-256 of the last line."""
        return self._chain.head

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Every entry of the log so far (parsed), oldest first."""
        return list(self._chain.entries)

    def append(self, event: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Sign and append one entry; return it."""
        with self._locked():
            self._catch_up()
            return self._write(event, data)

    def close(self) -> None:
        """Close the file (entries are already on disk)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._fd < 0:
            raise ValueError(f"audit log {self.path} is closed")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        """Verify lines appended since we last looked (all of them on opening)."""
        size = os.fstat(self._fd).st_size
        if size == self._size:
            return
        first_line = len(self._chain.entries) + 1
        try:
            if size < self._size:
                raise AuditBroken(
                    str(self.path), first_line - 1, "the file shrank: entries were cut off"
                )
            lines, tail = split_lines(os.pread(self._fd, size - self._size, self._size))
            self._chain.lines = lines if first_line == 1 else []  # for messages only
            for offset, raw in enumerate(lines):
                self._chain.feed(first_line + offset, raw)
            if tail:
                raise truncated_line(str(self.path), first_line + len(lines), tail)
        except AuditBroken as exc:
            raise ConfigError(
                f"{exc}; refusing to append to a broken audit log "
                "(keep it as evidence and start a new log file)",
                source="audit log",
            ) from exc
        if self._chain.key is not None and fingerprint(self._chain.key) != self._fingerprint:
            raise ConfigError(
                f"{self.path} line 1: the log was written with key "
                f"{fingerprint(self._chain.key)[:16]}, not this writer's key "
                f"{self._fingerprint[:16]}; use the log's own key or start a new log file",
                source="audit log",
            )
        self._size = size

    def _write(self, event: str, data: Mapping[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": self._chain.seq + 1,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "writer": self.writer,
            "event": event,
            "data": _jsonable(data),
            "prev": self._chain.head,
            "key": self._fingerprint,
        }
        entry["sig"] = _b64(self._key.sign(canonical_json(entry).encode()))
        raw = canonical_json(entry).encode()
        written = os.write(self._fd, raw + b"\n")
        if written != len(raw) + 1:
            raise OSError(f"short write to audit log {self.path}: {written} of {len(raw) + 1}")
        if self._durable:
            os.fsync(self._fd)
        if self._chain.key is None:
            self._chain.key = self._key.public_key()
        self._chain.seq, self._chain.head = entry["seq"], hashlib.sha256(raw).hexdigest()
        self._chain.entries.append(entry)
        self._chain.hashes.append(self._chain.head)
        self._size += len(raw) + 1
        if self._history is not None:
            self._history.record(self.path, self._log_head())
        return entry

    def _log_head(self) -> LogHead:
        if not self._chain.hashes:
            raise ValueError(f"audit log {self.path} has no entry yet")
        return LogHead(seq=self._chain.seq, head=self._chain.head, genesis=self._chain.hashes[0])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

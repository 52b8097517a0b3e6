"""What an audit-signing key has written: each log it signed and how far, kept beside the key.

An audit log alone cannot show that it was emptied, deleted or cut at a line
boundary: a writer that finds an empty file starts a new, valid log with the same
key, and a log cut after any entry still verifies (as an open log, or as a closed
one when cut after an earlier ``run-end``). The key's record closes that gap:
``<stem>.history`` beside the key (:func:`~credit.audit._keys.history_path`) holds,
for every log the key has written, the SHA-256 of the log's first line (its
genesis) and of its last entry, with that entry's ``seq``::

    {"key": FINGERPRINT, "logs": {"/abs/log.jsonl": {"genesis": HEX, "head": HEX, "seq": 9}},
     "sig": BASE64, "type": "audit-key-history"}

signed like a log entry (Ed25519 over the canonical JSON without ``sig``, by the
key itself). :class:`~credit.audit.AuditLog` checks a log against it on opening
and updates it after each entry it writes; a log the record knows is refused when
it is missing or empty, starts with another first line (the file was replaced),
ends before the recorded ``seq`` (entries were cut off) or holds another line at
that ``seq`` (it was rewritten).

Notes
-----
The record sits beside the key because whoever can change that folder can as well
remove or replace the key: keep both where only the writer can write (a run's
output folder is no such place). The record cannot stop someone who can delete
files in the key's folder: a key without a record is taken for a key from before
records were kept and starts one, and a new key is a new identity that only the
public key published out of band exposes. What the writer's own files cannot show,
its peer's log can: every request and reply carries its sender's log head, and the
receiver records it (:mod:`credit.messages.audit`); :func:`~credit.audit.verify_audit`
checks a log against heads recorded elsewhere (``heads=``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from credit.audit._chain import canonical_json
from credit.audit._keys import fingerprint, history_path
from credit.errors import ConfigError

__all__ = ["HISTORY_TYPE", "KeyHistory", "LogHead"]

HISTORY_TYPE = "audit-key-history"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_WHAT_TO_DO = "restore the log from a backup, or sign a genuinely new log with a new key"


@dataclass(frozen=True)
class LogHead:
    """How far a log goes.

    Attributes
    ----------
    seq : int
        The sequence number of its last entry (its number of entries), >= 1.
    head : str
        SHA-256 (hex) of its last line.
    genesis : str
        SHA-256 (hex) of its first line (the ``log-open`` entry): names the log.
    """

    seq: int
    head: str
    genesis: str


class KeyHistory:
    """The signed record, beside a signing key, of the logs that key has written.

    Parameters
    ----------
    key_path : pathlib.Path
        The key's file; the record is ``<stem>.history`` beside it.
    key : Ed25519PrivateKey
        The key in that file: it signs the record and must have signed a record found.
    """

    def __init__(self, key_path: Path, key: Ed25519PrivateKey, *, durable: bool = True) -> None:
        self.key_path = Path(key_path)
        self._durable = durable
        self.path = history_path(self.key_path)
        self._key = key
        self._fingerprint = fingerprint(key.public_key())

    def recorded(self, log: Path) -> LogHead | None:
        """How far the key has written ``log``; None if it never has.

        Raises
        ------
        ConfigError
            The record is damaged, edited or another key's.
        """
        entry = self._read().get(_name(log))
        return None if entry is None else LogHead(**entry)

    def check(self, log: Path, hashes: Sequence[str], *, exists: bool = True) -> None:
        """Refuse ``log`` if it no longer holds what the key wrote into it.

        Parameters
        ----------
        log : pathlib.Path
            The log file.
        hashes : sequence of str
            SHA-256 of each of its lines, verified, line 1 first (empty: an empty log).
        exists : bool, default True
            Whether the file exists (for the message only).

        Raises
        ------
        ConfigError
            One line naming the log, the key, how far the key wrote it and what to do.
        """
        recorded = self.recorded(log)
        if recorded is None:
            return
        problem = _problem(recorded, hashes, exists=exists)
        if problem is not None:
            raise ConfigError(
                f"{log} {problem}, but key {self.key_path} has signed it up to seq "
                f"{recorded.seq} (head {recorded.head[:16]}): {_WHAT_TO_DO}",
                source="audit log",
            )

    def record(self, log: Path, head: LogHead) -> None:
        """Record that the key has written ``log`` up to ``head`` (signed, atomically)."""
        with self._locked():
            logs = self._read()
            logs[_name(log)] = asdict(head)
            self._write(logs)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive use of the record among the writers of every log of this key."""
        descriptor = os.open(self.key_path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._damaged(f"cannot be read ({exc.strerror})") from exc
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise self._damaged("is not JSON: it was edited or damaged") from exc
        if not isinstance(document, dict) or set(document) != {"type", "key", "logs", "sig"}:
            raise self._damaged("is not a key's record of its logs: it was edited or replaced")
        if document["key"] != self._fingerprint:
            raise self._damaged(
                f"records the logs of key {str(document['key'])[:16]}, not of this key "
                f"({self._fingerprint[:16]})"
            )
        self._check_signature(document)
        logs = document["logs"]
        if document["type"] != HISTORY_TYPE or not isinstance(logs, dict):
            raise self._damaged("is not a key's record of its logs: it was edited or replaced")
        for entry in logs.values():
            if not _well_formed(entry):
                raise self._damaged("holds a malformed entry: it was edited")
        return logs

    def _check_signature(self, document: dict[str, Any]) -> None:
        unsigned = {name: value for name, value in document.items() if name != "sig"}
        try:
            signature = base64.b64decode(str(document["sig"]), validate=True)
            self._key.public_key().verify(signature, canonical_json(unsigned).encode())
        except (InvalidSignature, ValueError, binascii.Error) as exc:
            raise self._damaged("does not verify against the key: it was edited") from exc

    def _write(self, logs: dict[str, dict[str, Any]]) -> None:
        document: dict[str, Any] = {"type": HISTORY_TYPE, "key": self._fingerprint, "logs": logs}
        signature = self._key.sign(canonical_json(document).encode())
        document["sig"] = base64.b64encode(signature).decode("ascii")
        data = canonical_json(document).encode() + b"\n"
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            if self._durable:
                os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        if not self._durable:
            return
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def _damaged(self, problem: str) -> ConfigError:
        return ConfigError(
            f"{self.path} {problem}; restore it from a backup (it records which logs key "
            f"{self.key_path} has signed, and how far)",
            source="audit key history",
        )


def _name(log: Path) -> str:
    return str(Path(log).resolve())


def _well_formed(entry: object) -> bool:
    if not isinstance(entry, dict) or set(entry) != {"seq", "head", "genesis"}:
        return False
    seq, head, genesis = entry["seq"], entry["head"], entry["genesis"]
    return (
        isinstance(seq, int)
        and not isinstance(seq, bool)
        and seq >= 1
        and all(isinstance(h, str) and _HEX64.fullmatch(h) for h in (head, genesis))
    )


def _problem(recorded: LogHead, hashes: Sequence[str], *, exists: bool) -> str | None:
    """What is wrong with a log of line ``hashes`` the key wrote up to ``recorded``."""
    if not hashes:
        return "is empty" if exists else "is missing"
    if hashes[0] != recorded.genesis:
        return "starts with another first entry than the key wrote there (the file was replaced)"
    if len(hashes) < recorded.seq:
        return f"ends at seq {len(hashes)} (entries were cut off)"
    if hashes[recorded.seq - 1] != recorded.head:
        return f"holds another entry at seq {recorded.seq} (it was rewritten)"
    return None

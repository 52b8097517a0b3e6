"""An audit log as a dashboard shows it: its head, its entries and whether it verifies.

Both dashboards (the operator's and a bank's) read a signed audit log
(:mod:`credit.audit`) that a live process may be appending to. :func:`read_audit`
verifies the whole file with :func:`credit.audit.verify_audit` (an open log is
accepted: the run may still be going) and parses its entries for display. A reader
that catches the writer mid-line sees a torn last line; it reads again a few times
before reporting the log as broken.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit.audit import AuditBroken, load_public_key, verify_audit
from credit.errors import ConfigError

__all__ = ["AuditView", "file_signature", "read_audit"]

_TORN = "incomplete last line"
_RETRIES = 5
_RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class AuditView:
    """One audit log as the dashboards show it.

    Attributes
    ----------
    file : str
        The log's path.
    key : str
        Which key the log was verified with: a public key file, or "the log's own
        key" (its ``log-open`` entry) when there is no file to pin.
    present : bool
        False: there is no log yet (every other field but ``problem`` is empty).
    verified : bool
        Every entry's signature and the hash chain check out under ``key``.
    problem : str or None
        Why the log does not verify (the first bad entry), or why it cannot be read.
    entries : int
        Lines of the log.
    head : str
        SHA-256 of its last line (what the other side records).
    fingerprint : str
        The writer key's fingerprint (SHA-256 of the raw public key).
    closed : bool
        The log ends with ``run-end``.
    last_event, last_time : str
        Its last entry's event and time.
    events : list of dict
        The parsed entries, oldest first (``seq``, ``time``, ``event``, ``data``);
        shown next to ``verified``, never trusted beyond it.
    """

    file: str
    key: str
    present: bool
    verified: bool
    problem: str | None
    entries: int = 0
    head: str = ""
    fingerprint: str = ""
    closed: bool = False
    last_event: str = ""
    last_time: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the entries, JSON-ready (the page's audit panel)."""
        document = asdict(self)
        del document["events"]
        return document


def file_signature(*paths: Path) -> tuple[tuple[int, int] | None, ...]:
    """Size and modification time (ns) of each file (None: missing): "has it changed"."""
    signature: list[tuple[int, int] | None] = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            signature.append(None)
            continue
        signature.append((status.st_size, status.st_mtime_ns))
    return tuple(signature)


def read_audit(log: Path, public_key: Path | None) -> AuditView:
    """Verify and parse the audit log at ``log`` (a live log is read as it is now).

    Parameters
    ----------
    log : pathlib.Path
        The JSON-lines log; a missing file is reported as not present.
    public_key : pathlib.Path, optional
        The writer's published public key (PEM); None or a missing file: the key
        recorded in the log itself.
    """
    key_file = public_key if public_key is not None and public_key.is_file() else None
    key_name = str(key_file) if key_file is not None else "the log's own key"
    if not log.is_file():
        return AuditView(file=str(log), key=key_name, present=False, verified=False, problem=None)
    try:
        key = load_public_key(key_file) if key_file is not None else None
    except ConfigError as exc:
        return AuditView(
            file=str(log), key=key_name, present=True, verified=False, problem=str(exc)
        )
    for _ in range(_RETRIES - 1):
        view = _read_once(log, key, key_name)
        if _TORN not in (view.problem or ""):
            return view
        time.sleep(_RETRY_SECONDS)  # the writer was mid-line: read again
    return _read_once(log, key, key_name)


def _read_once(log: Path, key: Ed25519PublicKey | None, key_name: str) -> AuditView:
    """One reading of the log: verification, then the entries as they are."""
    try:
        report = verify_audit(log, key, allow_open=True)
    except (AuditBroken, ConfigError) as exc:
        return AuditView(
            file=str(log),
            key=key_name,
            present=True,
            verified=False,
            problem=str(exc),
            events=_entries(log),
        )
    return AuditView(
        file=str(log),
        key=key_name,
        present=True,
        verified=True,
        problem=None,
        entries=report.entries,
        head=report.head,
        fingerprint=report.fingerprint,
        closed=report.closed,
        last_event=report.last_event,
        last_time=report.last_time,
        events=_entries(log),
    )


def _entries(log: Path) -> list[dict[str, Any]]:
    """The log's complete lines that parse as entries (seq, time, event, data)."""
    try:
        data = log.read_bytes()
    except OSError:
        return []
    entries = []
    for raw in data.split(b"\n")[:-1]:  # the part after the last newline is not a line yet
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict):
            keep = ("seq", "time", "event", "data")
            entries.append({name: entry.get(name) for name in keep})
    return entries

"""Verification of audit logs: the hash chain, the signatures and the closing entry.

See :mod:`credit.audit` for the entry format. :class:`Chain` checks one line at a
time so that the writer (:class:`credit.audit.AuditLog`) can catch up with lines
other processes appended; :func:`verify_audit` checks a whole file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit.audit._keys import fingerprint
from credit.errors import ConfigError, FedcreditError

__all__ = [
    "CLOSING_EVENTS",
    "GENESIS",
    "LOG_OPEN",
    "AuditBroken",
    "AuditReport",
    "Chain",
    "canonical_json",
    "split_lines",
    "truncated_line",
    "verify_audit",
]

GENESIS = "0" * 64
LOG_OPEN = "log-open"
CLOSING_EVENTS = frozenset({"run-end"})
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "seq": int,
    "time": str,
    "writer": str,
    "event": str,
    "data": dict,
    "prev": str,
    "key": str,
    "sig": str,
}
_SEQ = re.compile(rb'"seq":\s*(\d+)')
_EVENT = re.compile(rb'"event":\s*"([^"\\]{0,64})"')


def canonical_json(value: Any) -> str:
    """Sorted keys, compact separators, ASCII only, no NaN: the signed byte form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


class AuditBroken(FedcreditError):
    """An audit log fails verification; the message names its first bad entry.

    Parameters
    ----------
    file : str
        The log file.
    line : int
        1-based line of the first bad entry.
    problem : str
        What is wrong with it.
    seq, event : optional
        The entry's sequence number and event, when they can be read.
    """

    def __init__(
        self,
        file: str,
        line: int,
        problem: str,
        *,
        seq: int | None = None,
        event: str | None = None,
    ) -> None:
        self.file, self.line, self.problem, self.seq, self.event = file, line, problem, seq, event
        about = f" (seq {seq if seq is not None else '?'}, event {event or '?'})"
        super().__init__(f"{file} line {line}{about}: {problem}")


@dataclass(frozen=True)
class AuditReport:
    """What a verified audit log holds.

    ``head`` is the SHA-256 of the last line: keep it to detect a later rewrite.
    ``closed`` says whether the last entry is a closing event (``run-end``).
    """

    path: Path
    entries: int
    writer: str
    fingerprint: str
    events: dict[str, int]
    first_event: str
    last_event: str
    head: str
    closed: bool
    first_time: str
    last_time: str


@dataclass
class Chain:
    """Checks entries one line at a time; remembers the head of the chain."""

    file: str
    expected_key: Ed25519PublicKey | None = None
    seq: int = 0
    head: str = GENESIS
    key: Ed25519PublicKey | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # SHA-256 of each line, line 1 first
    lines: list[bytes] = field(default_factory=list)  # the whole file, for messages only

    def feed(self, line: int, raw: bytes) -> dict[str, Any]:
        """Verify ``raw``, the ``line``-th line of the file (newline stripped)."""
        entry = self._parse(line, raw)
        seq, event = entry["seq"], entry["event"]

        def broken(problem: str) -> AuditBroken:
            return AuditBroken(self.file, line, problem, seq=seq, event=event)

        if self.seq == 0 and (seq != 1 or event != LOG_OPEN):
            moved = self._later(1, line)
            raise broken(
                f"the log does not start with its '{LOG_OPEN}' entry (seq 1): "
                + (
                    f"it comes later (line {moved}), entries were reordered"
                    if moved
                    else "entries before this one were deleted or the file was replaced"
                )
            )
        expected = self.seq + 1
        if seq != expected:
            raise broken(self._sequence_problem(seq, expected, line))
        if entry["prev"] != self.head:
            raise broken(
                f"'prev' does not match the hash of line {line - 1}: "
                "the entry before it was removed, replaced or edited"
            )
        if seq == 1:
            self.key = self._open_key(entry, broken)
        if self.key is None:  # set by the log-open entry, which the sequence puts first
            raise broken("no log-open entry comes before this one")
        if entry["key"] != fingerprint(self.key):
            raise broken(f"signed by key {entry['key'][:16]}, not the log's {self._short()}")
        self._check_signature(entry, raw, broken)
        self.seq, self.head = seq, hashlib.sha256(raw).hexdigest()
        self.entries.append(entry)
        self.hashes.append(self.head)
        return entry

    def _parse(self, line: int, raw: bytes) -> dict[str, Any]:
        seq_match, event_match = _SEQ.search(raw), _EVENT.search(raw)
        seq = int(seq_match.group(1)) if seq_match else None
        event = event_match.group(1).decode("ascii", "replace") if event_match else None
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            entry = None
        if not isinstance(entry, dict):
            raise AuditBroken(
                self.file,
                line,
                "not a JSON object: the line was edited or corrupted",
                seq=seq,
                event=event,
            )
        for name, kind in _FIELDS.items():
            if not isinstance(entry.get(name), kind) or isinstance(entry.get(name), bool):
                raise AuditBroken(
                    self.file,
                    line,
                    f"field '{name}' is missing or malformed: the line was edited",
                    seq=seq,
                    event=event,
                )
        return entry

    def _later(self, seq: int, line: int) -> int | None:
        """The first line after ``line`` that seems to hold ``seq`` (for messages)."""
        for number, raw in enumerate(self.lines[line:], start=line + 1):
            match = _SEQ.search(raw)
            if match and int(match.group(1)) == seq:
                return number
        return None

    def _sequence_problem(self, seq: int, expected: int, line: int) -> str:
        if seq < expected:
            return (
                f"seq {seq} where {expected} was expected: "
                "an earlier entry was duplicated or moved here"
            )
        moved = self._later(expected, line)
        if moved is not None:
            return f"seq {seq} comes before seq {expected} (line {moved}): entries were reordered"
        missing = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
        return f"seq {seq} follows seq {expected - 1}: entry {missing} is missing (deleted)"

    def _open_key(self, entry: dict[str, Any], broken: Any) -> Ed25519PublicKey:
        try:
            raw_key = base64.b64decode(str(entry["data"].get("public_key", "")), validate=True)
            key = Ed25519PublicKey.from_public_bytes(raw_key)
        except (ValueError, binascii.Error) as exc:
            raise broken("the log-open entry does not carry a valid Ed25519 public key") from exc
        if self.expected_key is not None and fingerprint(key) != fingerprint(self.expected_key):
            raise broken(
                f"the log was written with key {fingerprint(key)[:16]}, "
                f"not the expected key {fingerprint(self.expected_key)[:16]}"
            )
        return key

    def _check_signature(self, entry: dict[str, Any], raw: bytes, broken: Any) -> None:
        if self.key is None:
            raise broken("no log-open entry comes before this one")
        unsigned = {k: v for k, v in entry.items() if k != "sig"}
        try:
            signature = base64.b64decode(entry["sig"], validate=True)
            self.key.verify(signature, canonical_json(unsigned).encode())
        except (InvalidSignature, ValueError, binascii.Error) as exc:
            raise broken("signature does not verify: the entry was edited after signing") from exc
        if canonical_json(entry).encode() != raw:
            raise broken("the line differs from its signed canonical form: it was edited")

    def _short(self) -> str:
        return fingerprint(self.key)[:16] if self.key is not None else "?"


def split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (newline stripped) and the trailing partial line (b"" if none)."""
    *complete, tail = data.split(b"\n")
    return complete, tail


def truncated_line(file: str, line: int, tail: bytes) -> AuditBroken:
    seq_match, event_match = _SEQ.search(tail), _EVENT.search(tail)
    return AuditBroken(
        file,
        line,
        "incomplete last line (no newline): the log was truncated mid-entry",
        seq=int(seq_match.group(1)) if seq_match else None,
        event=event_match.group(1).decode("ascii", "replace") if event_match else None,
    )


def _check(
    file: str, data: bytes, expected_key: Ed25519PublicKey | None, *, allow_open: bool
) -> Chain:
    lines, tail = split_lines(data)
    chain = Chain(file=file, expected_key=expected_key, lines=lines)
    for number, raw in enumerate(lines, start=1):
        chain.feed(number, raw)
    if tail:
        raise truncated_line(file, len(lines) + 1, tail)
    if not chain.entries:
        raise AuditBroken(file, 1, f"empty log: no '{LOG_OPEN}' entry")
    last = chain.entries[-1]
    if not allow_open and last["event"] not in CLOSING_EVENTS:
        raise AuditBroken(
            file,
            len(lines),
            f"the log ends without a closing entry ({', '.join(sorted(CLOSING_EVENTS))}): "
            "entries after this one were cut off, or the run is still going "
            "(verify a live log with --allow-open)",
            seq=last["seq"],
            event=last["event"],
        )
    return chain


def _report(path: Path, chain: Chain) -> AuditReport:
    first, last = chain.entries[0], chain.entries[-1]
    return AuditReport(
        path=path,
        entries=len(chain.entries),
        writer=str(first["writer"]),
        fingerprint=first["key"],
        events=dict(Counter(str(e["event"]) for e in chain.entries)),
        first_event=first["event"],
        last_event=last["event"],
        head=chain.head,
        closed=last["event"] in CLOSING_EVENTS,
        first_time=first["time"],
        last_time=last["time"],
    )


def verify_audit(
    path: Path,
    public_key: Ed25519PublicKey | None = None,
    *,
    allow_open: bool = False,
    heads: Iterable[tuple[int, str]] = (),
) -> AuditReport:
    """Verify every entry of the audit log at ``path``.

    Parameters
    ----------
    path : pathlib.Path
        The JSON-lines log.
    public_key : Ed25519PublicKey, optional
        The writer's key as published out of band; without it the key in the
        log's own ``log-open`` entry is used.
    allow_open : bool, default False
        Accept a log whose last entry is not a closing event (a live log).
    heads : iterable of (int, str), default ()
        Heads of this log recorded elsewhere, as (seq, SHA-256 hex of that line):
        those the other side of each message recorded in its own log. The log must
        reach each ``seq`` and its line there must hash to the head.

    Raises
    ------
    AuditBroken
        Naming the first bad entry: edited, deleted, reordered, truncated, signed
        with another key, or not the entry a recorded head names.
    ConfigError
        The file cannot be read.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read audit log ({exc.strerror})", source=str(path)) from exc
    chain = _check(str(path), data, public_key, allow_open=allow_open)
    for seq, head in heads:
        _check_head(str(path), chain, seq, head)
    return _report(path, chain)


def _check_head(file: str, chain: Chain, seq: int, head: str) -> None:
    """Raise AuditBroken unless the log's line ``seq`` hashes to ``head``."""
    if seq < 1:
        raise ValueError(f"a recorded head's seq must be >= 1; got {seq}")
    if seq > len(chain.hashes):
        last = chain.entries[-1]
        raise AuditBroken(
            file,
            len(chain.hashes),
            f"the log ends here, but its head at seq {seq} ({head[:16]}) was recorded "
            "elsewhere: entries were cut off, or the log was begun anew",
            seq=last["seq"],
            event=last["event"],
        )
    if chain.hashes[seq - 1] != head:
        entry = chain.entries[seq - 1]
        raise AuditBroken(
            file,
            seq,
            f"this line hashes to {chain.hashes[seq - 1][:16]}, but the head recorded "
            f"elsewhere for seq {seq} is {head[:16]}: the log was rewritten or begun anew",
            seq=seq,
            event=entry["event"],
        )

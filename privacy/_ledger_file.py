"""The ledger file's bytes: atomic creation, locked reads and appends, torn lines, repair.

Every write is ``flock(LOCK_EX)`` on the ledger file, a re-read of the whole file,
the caller's check, one ``write`` of the new lines, ``fsync`` and unlock; readers take
``LOCK_SH``. Two processes (two runs of one bank, say) therefore never both pass a
check against the same stale spend. The file is created whole (budget line written
and synced under a temporary name, then hard-linked into place, then the directory
synced), so an empty or headless ledger file is never a state the code leaves behind.

A crash in the middle of an append can leave a *torn* last line: no trailing newline,
or bytes that do not parse. Reading such a file raises :class:`TornLedger` naming
the line and the repair command; :func:`repair_torn_line` drops it (after keeping a
``.bak`` copy) and refuses anything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privacy.errors import LedgerError, TornLedger

__all__ = [
    "LedgerLine",
    "RepairResult",
    "append_lines",
    "create_ledger_file",
    "locked",
    "parse_lines",
    "repair_torn_line",
]

REPAIR_COMMAND = "fedcredit privacy repair-ledger"


@dataclass(frozen=True)
class LedgerLine:
    """One parsed ledger line: its 1-based number and its JSON object."""

    number: int
    entry: dict[str, Any]


@dataclass(frozen=True)
class RepairResult:
    """What :func:`repair_torn_line` did.

    Attributes
    ----------
    line : int
        The torn line's number.
    dropped : bool
        True: the line was removed; False: it was a complete entry missing only its
        newline, which was added (a charge is never dropped once written whole).
    backup : pathlib.Path
        The copy of the file as it was before the repair.
    """

    line: int
    dropped: bool
    backup: Path


def create_ledger_file(path: Path, head: dict[str, Any]) -> None:
    """Create ``path`` holding only ``head``, atomically; no-op if it already exists.

    The line is written and synced under a temporary name, hard-linked to ``path``
    (which fails if another process created it first: theirs is kept) and the
    directory is synced so the new name survives a crash.
    """
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(descriptor, _encode([head]))
        os.fsync(descriptor)
        os.close(descriptor)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(directory)


@contextlib.contextmanager
def locked(path: Path, *, exclusive: bool) -> Iterator[tuple[int, bytes]]:
    """Hold ``path`` locked (exclusive for a write) and yield its descriptor and bytes.

    Raises
    ------
    LedgerError
        The file cannot be opened (missing, unreadable).
    """
    flags = os.O_RDWR | os.O_APPEND if exclusive else os.O_RDONLY
    try:
        descriptor = os.open(path, flags)
    except OSError as exc:
        raise LedgerError(f"{path}: cannot open the ledger ({exc.strerror})") from exc
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield descriptor, _read_all(descriptor)
    finally:
        os.close(descriptor)  # closing releases the lock


def append_lines(descriptor: int, entries: list[dict[str, Any]]) -> None:
    """Append ``entries`` (one line each) in one write and sync them to disk."""
    _write_all(descriptor, _encode(entries))
    os.fsync(descriptor)


def parse_lines(path: Path, data: bytes) -> list[LedgerLine]:
    """Every non-blank line of a ledger file as a JSON object.

    Raises
    ------
    TornLedger
        The last line is torn (no trailing newline, or does not parse).
    LedgerError
        The file is empty, or another line is not a JSON object (line named).
    """
    if not data.strip():
        raise LedgerError(
            f"{path}: the ledger is empty (it should start with its budget line); it was "
            "truncated: restore it from a backup, never delete a ledger that has spent"
        )
    raw_lines = data.split(b"\n")
    complete = raw_lines[-1] == b""
    if complete:
        raw_lines.pop()
    last = len(raw_lines)
    parsed: list[LedgerLine] = []
    for number, raw in enumerate(raw_lines, 1):
        tearable = number == last > 1  # the budget line is written whole at creation
        if tearable and not complete:
            raise _torn(path, number, "no newline at its end")
        if not raw.strip():
            continue
        try:
            parsed.append(LedgerLine(number, _json_object(raw)))
        except ValueError as exc:
            if tearable:
                raise _torn(path, number, str(exc)) from exc
            raise LedgerError(f"{path}: line {number}: not a ledger entry ({exc})") from exc
    return parsed


def repair_torn_line(path: Path, *, check: Any) -> RepairResult:
    """Drop a torn last line of ``path`` after copying the file to ``<path>.bak``.

    A last line that is a complete entry missing only its newline is kept (the
    newline is added): it may record a charge that was made. ``check(path, bytes)``
    must accept the repaired contents (it raises :class:`LedgerError` otherwise).

    Raises
    ------
    LedgerError
        There is no torn last line, another line is bad, the repaired ledger fails
        ``check``, or ``<path>.bak`` exists.
    """
    if not path.is_file():
        raise LedgerError(f"{path}: no such ledger file")
    with locked(path, exclusive=True) as (descriptor, data):
        line = _torn_line(path, data)
        repaired, dropped = _repaired(path, data, line, check)
        backup = _backup(path, data)
        if dropped:
            os.ftruncate(descriptor, len(repaired))
        else:
            _write_all(descriptor, b"\n")
        os.fsync(descriptor)
    return RepairResult(line=line, dropped=dropped, backup=backup)


def _torn_line(path: Path, data: bytes) -> int:
    """The number of the torn last line (never line 1); LedgerError if there is none."""
    try:
        parse_lines(path, data)
    except TornLedger as torn:
        return torn.line
    except LedgerError as exc:
        raise LedgerError(
            f"{exc}; repair-ledger only drops a torn last line: restore the ledger from a backup"
        ) from exc
    raise LedgerError(
        f"{path}: nothing to repair: every line is complete; repair-ledger only drops a torn "
        "last line"
    )


def _repaired(path: Path, data: bytes, line: int, check: Any) -> tuple[bytes, bool]:
    """The repaired bytes and whether the torn line was dropped (else completed)."""
    lines = data.split(b"\n")
    torn = lines[line - 1]
    candidates = [(b"".join(part + b"\n" for part in lines[: line - 1]), True)]
    if not data.endswith(b"\n"):
        with contextlib.suppress(ValueError):
            _json_object(torn)
            candidates.insert(0, (data + b"\n", False))
    problem: LedgerError | None = None
    for repaired, dropped in candidates:
        try:
            check(path, repaired)
        except LedgerError as exc:
            problem = exc
            continue
        return repaired, dropped
    raise LedgerError(f"not repaired: {problem}")


def _backup(path: Path, data: bytes) -> Path:
    backup = path.with_name(path.name + ".bak")
    try:
        descriptor = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise LedgerError(
            f"{backup} already exists (an earlier repair's copy?); move it away, then repair"
        ) from None
    try:
        _write_all(descriptor, data)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    _fsync_directory(path.parent)
    return backup


def _torn(path: Path, line: int, reason: str) -> TornLedger:
    return TornLedger(
        f"{path}: line {line}: not a ledger entry, a torn last line ({reason}) left by an "
        f"interrupted write; run: {REPAIR_COMMAND} {path}",
        path=path,
        line=line,
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        entry = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    return entry


def _encode(entries: list[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(entry, sort_keys=True, allow_nan=False) + "\n" for entry in entries)
    return text.encode("utf-8")


def _read_all(descriptor: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(descriptor, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

"""The guard service's socket: one connection per relayed message, answered in turn.

:class:`GuardServer` listens on a Unix socket that only the bank's user and, when the
SuperNode runs as a separate node user, that user can open (mode 0600, and the peer's
uid is checked with ``SO_PEERCRED`` on every connection). Each connection carries one
frame from the relay (:func:`participant.contract.read_frame`) and gets one frame
back. Requests are answered one at a time, so every charge to the ledger sees the
previous one. A frame that breaks the contract is refused and recorded; nothing a
relay sends stops the guard.

For each request the guard logs one line (kind, run, status, the relay process's age
when it connected, and the guard's own compute time), which the deployment benchmark
reads to split an exchange's latency into its parts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from participant.contract import (
    ContractError,
    GuardReply,
    GuardRequest,
    ReplyStatus,
    read_frame,
    write_frame,
)
from participant.guard.bank_guard import BankGuard, task_of
from participant.guard.sessions import MemorySessions

__all__ = ["GuardServer", "peer_credentials", "process_age"]

_log = logging.getLogger(__name__)
_CREDENTIALS = struct.Struct("3i")


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a Unix socket connection."""

    pid: int
    uid: int
    gid: int


def peer_credentials(connection: socket.socket) -> Peer:
    """The connecting process's pid, uid and gid (Linux ``SO_PEERCRED``)."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDENTIALS.size)
    pid, uid, gid = _CREDENTIALS.unpack(raw)
    return Peer(pid=pid, uid=uid, gid=gid)


def process_age(pid: int) -> float | None:
    """Seconds since process ``pid`` started (None if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: starttime
    return max(0.0, uptime - started)


class GuardServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The bank's guard on a Unix socket.

    Parameters
    ----------
    guard : BankGuard
        The bank's guard (loaded).
    path : pathlib.Path
        Where the socket is created (an existing socket file is replaced).
    allowed_uids : frozenset of int
        Users whose processes may connect (the bank's user, and the node user).
    owner : int, optional
        The uid that owns the socket file (the node user); default: this process's.
    """

    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self,
        guard: BankGuard,
        path: Path,
        *,
        allowed_uids: frozenset[int],
        owner: int | None = None,
    ) -> None:
        self.guard = guard
        self.allowed_uids = allowed_uids
        self.sessions = MemorySessions()
        self.turn = threading.Lock()
        path.unlink(missing_ok=True)
        previous = os.umask(0o177)  # the socket is created 0600
        try:
            super().__init__(str(path), _RelayConnection)
        finally:
            os.umask(previous)
        if owner is not None:
            os.chown(path, owner, -1, follow_symlinks=False)
        self.path = path

    def answer(self, peer: Peer, connection: socket.socket) -> None:
        """Read one request from ``connection`` and write the guard's reply."""
        relay_age = process_age(peer.pid)
        if peer.uid not in self.allowed_uids:
            _log.warning("refused a connection from uid %d (pid %d)", peer.uid, peer.pid)
            return
        try:
            request, content = read_frame(connection, GuardRequest)
        except ContractError as broken:
            with self.turn:
                self.guard.refuse_frame(str(broken))
            _reply_safely(connection, GuardReply(status=ReplyStatus.REFUSED, reason=str(broken)))
            return
        started = time.perf_counter()
        with self.turn:
            reply, answer = self.guard.answer(request, content, self.sessions)
        compute = time.perf_counter() - started
        _log.info(
            "request kind=%s task=%s run=%d status=%s relay_age=%s compute=%.3f",
            request.kind,
            task_of(request, content),
            request.flower_run_id,
            reply.status,
            "?" if relay_age is None else f"{relay_age:.3f}",
            compute,
        )
        try:
            write_frame(connection, reply, answer)
        except OSError as lost:
            _log.warning("the relay hung up before the reply: %s", lost)

    def server_close(self) -> None:
        super().server_close()
        self.path.unlink(missing_ok=True)


class _RelayConnection(socketserver.BaseRequestHandler):
    server: GuardServer
    request: socket.socket

    def handle(self) -> None:
        self.server.answer(peer_credentials(self.request), self.request)


def _reply_safely(connection: socket.socket, reply: GuardReply) -> None:
    from flwr.app import RecordDict

    with contextlib.suppress(OSError):
        write_frame(connection, reply, RecordDict())

"""One request to the bank's guard over its Unix socket, and the guard's reply."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from flwr.app import RecordDict

from participant.contract import GuardReply, GuardRequest, read_frame, write_frame

__all__ = ["GuardUnreachable", "SocketLink"]

CONNECT_TIMEOUT = 10.0
REPLY_TIMEOUT = 3_600.0
"""A round of DP-SGD on a large bank can take long; the coordinator has its own timeout."""


class GuardUnreachable(ConnectionError):
    """The bank's guard does not answer on its socket."""


@dataclass(frozen=True)
class SocketLink:
    """A :class:`~participant.contract.GuardLink` over the guard's Unix socket."""

    path: Path

    def ask(self, request: GuardRequest, content: RecordDict) -> tuple[GuardReply, RecordDict]:
        """Send ``request`` and ``content``; return the guard's reply.

        Raises
        ------
        GuardUnreachable
            Nothing listens on the socket (the guard is not running), or the guard
            dropped the connection (it does not serve this user).
        participant.contract.ContractError
            The guard's reply breaks the contract.
        """
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(CONNECT_TIMEOUT)
            try:
                connection.connect(str(self.path))
            except OSError as exc:
                raise GuardUnreachable(
                    f"the bank's guard does not answer on {self.path}: {exc.strerror or exc}"
                ) from exc
            connection.settimeout(REPLY_TIMEOUT)
            try:
                write_frame(connection, request, content)
                return read_frame(connection, GuardReply)
            except OSError as exc:
                raise GuardUnreachable(
                    f"the bank's guard dropped the connection on {self.path}: {exc.strerror or exc}"
                ) from exc

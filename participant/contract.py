"""The contract between a bank's relay (the ClientApp) and its guard.

The relay runs code the coordinator shipped; the guard runs the bank's own installed
fedcredit and takes every decision that protects the bank. Between them travels one
:class:`GuardRequest` per Flower message (the message's kind, run, destination node
and content, and the run config the relay saw) and one :class:`GuardReply` (the
content of the bank's reply, or the reason it refused). Everything in a request is
untrusted input to the guard: it is what the coordinator (or a modified relay) sent.

On the Unix socket (:mod:`participant.relay.socket_link`, :mod:`participant.guard.server`)
each side writes one *frame*::

    MAGIC (4 bytes) | header length (u32) | header JSON | body length (u64) | body

The header is the request or reply model as JSON; the body is Flower's own protobuf
encoding of the content (:func:`flwr.common.serde.recorddict_to_proto`). In a
simulation the relay hands the same typed request to the guard in-process, without
frames (:mod:`participant.guard.in_process`).

This module is light (pydantic and Flower's serde, no torch): the relay imports it in
every ClientApp process.
"""

from __future__ import annotations

import socket
import struct
from enum import StrEnum
from typing import Protocol, TypeVar

from flwr.app import RecordDict
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "MAGIC",
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "ContractError",
    "GuardLink",
    "GuardReply",
    "GuardRequest",
    "ReplyStatus",
    "RequestKind",
    "decode_content",
    "encode_content",
    "read_frame",
    "write_frame",
]

MAGIC = b"FCG1"
MAX_HEADER_BYTES = 1 << 20
"""1 MiB: a header is a few hundred bytes of JSON."""
MAX_BODY_BYTES = 1 << 30
"""1 GiB: a model of ``credit.model_spec``'s largest size, masked, is far below it."""

_LENGTHS = struct.Struct(">I")
_BODY_LENGTH = struct.Struct(">Q")

ConfigValue = bool | int | float | str
Header = TypeVar("Header", bound=BaseModel)


class ContractError(ValueError):
    """A frame, request or reply that breaks the contract (names what is wrong)."""


class RequestKind(StrEnum):
    """The kind of Flower message a request relays (Flower's message types)."""

    QUERY = "query"
    TRAIN = "train"
    EVALUATE = "evaluate"


class GuardRequest(BaseModel):
    """One coordinator message, as the relay hands it to the guard.

    Parameters
    ----------
    kind : RequestKind
        The message type.
    flower_run_id : int
        Flower's id of the run.
    node_id : int
        The SuperNode's id in the consortium (the message's destination).
    run_config : dict
        The run config the relay saw (the coordinator's; audit only).
    relay_version : str
        The fedcredit release of the relay (the app bundle the coordinator shipped).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: RequestKind
    flower_run_id: int = Field(ge=0)
    node_id: int = Field(ge=0)
    run_config: dict[str, ConfigValue] = Field(default_factory=dict)
    relay_version: str = Field(min_length=1, max_length=64)


class ReplyStatus(StrEnum):
    """How the guard answered."""

    ANSWERED = "answered"
    """The body is the content of the bank's reply."""
    REFUSED = "refused"
    """The guard refused the request; ``reason`` says why (the body is empty)."""


class GuardReply(BaseModel):
    """The guard's answer to one request.

    Parameters
    ----------
    status : ReplyStatus
        Answered (content in the body) or refused.
    reason : str
        Why the request was refused ('' when answered).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: ReplyStatus
    reason: str = Field(default="", max_length=4096)


class GuardLink(Protocol):
    """How a relay reaches its bank's guard: a socket, or the guard in-process."""

    def ask(self, request: GuardRequest, content: RecordDict) -> tuple[GuardReply, RecordDict]:
        """Send one request; the guard's reply and the reply's content."""
        ...


def encode_content(content: RecordDict) -> bytes:
    """A message's content as Flower's protobuf bytes."""
    return bytes(recorddict_to_proto(content).SerializeToString())


def decode_content(body: bytes) -> RecordDict:
    """Content from Flower's protobuf bytes.

    Raises
    ------
    ContractError
        The bytes are not a record dict.
    """
    proto = ProtoRecordDict()
    try:
        proto.ParseFromString(body)
        return recorddict_from_proto(proto)
    except Exception as exc:  # protobuf raises DecodeError, bad values raise others
        raise ContractError(f"the body is not a Flower record dict: {exc}") from exc


def write_frame(connection: socket.socket, header: BaseModel, content: RecordDict) -> None:
    """Send one frame: ``header`` as JSON and ``content`` as Flower protobuf."""
    head = header.model_dump_json().encode()
    body = encode_content(content)
    if len(body) > MAX_BODY_BYTES:
        raise ContractError(f"the content is {len(body):,} bytes; at most {MAX_BODY_BYTES:,}")
    connection.sendall(
        MAGIC + _LENGTHS.pack(len(head)) + head + _BODY_LENGTH.pack(len(body)) + body
    )


def read_frame(connection: socket.socket, header_type: type[Header]) -> tuple[Header, RecordDict]:
    """Receive one frame whose header is a ``header_type``.

    Raises
    ------
    ContractError
        Wrong magic, a length over the limits, a header that is not a valid
        ``header_type``, a body that is not a record dict, or the peer closed early.
    """
    magic = _read_exactly(connection, len(MAGIC))
    if magic != MAGIC:
        raise ContractError(f"not a fedcredit guard frame (starts {magic!r}, expected {MAGIC!r})")
    (head_length,) = _LENGTHS.unpack(_read_exactly(connection, _LENGTHS.size))
    if head_length > MAX_HEADER_BYTES:
        raise ContractError(f"header of {head_length:,} bytes; at most {MAX_HEADER_BYTES:,}")
    head = _read_exactly(connection, head_length)
    (body_length,) = _BODY_LENGTH.unpack(_read_exactly(connection, _BODY_LENGTH.size))
    if body_length > MAX_BODY_BYTES:
        raise ContractError(f"body of {body_length:,} bytes; at most {MAX_BODY_BYTES:,}")
    body = _read_exactly(connection, body_length)
    try:
        header = header_type.model_validate_json(head)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "header"
        raise ContractError(
            f"bad {header_type.__name__} field '{field}': {problem['msg']}"
        ) from exc
    return header, decode_content(body)


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise ContractError(
                f"the peer closed the connection after {len(chunks)} of {size} bytes"
            )
        chunks += chunk
    return bytes(chunks)

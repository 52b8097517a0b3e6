"""Send messages to banks and collect their replies, polling briskly.

Flower's ``Grid.send_and_receive`` on the Deployment Engine sleeps 3 s between
pulls, so every exchange pays up to 3 s after the last bank has replied, and a
secure round (training, then unmasking) pays it twice. fedcredit pushes
and pulls itself: it polls every :data:`FIRST_POLL` seconds for the first
:data:`BRISK_SECONDS` (replies in simulation, and unmasking in deployment, often
arrive within them), then backs off to :data:`MAX_POLL`, which keeps the load on the
SuperLink low on long rounds. Replies, errors and the timeout behave as in Flower's
method.

:class:`BankExchange` times every exchange, push to return (:class:`ExchangeTiming`);
the run driver reports each round's in ``metrics.json`` (``rounds[].exchanges``).
With the run's audit trail attached (:attr:`BankExchange.audit`), every message it
sends carries the head of the coordinator's audit log, and the heads banks put in
their replies (:class:`~credit.messages.AuditHead`) are read into :class:`BankHeads`
and recorded, one entry per exchange. A head that is missing or breaks the contract
is recorded as such and changes nothing else: the run never depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid

from coordinator.errors import RoundFailed
from credit.errors import MalformedMessage
from credit.messages import AuditHead, MessagePart, content_of

__all__ = [
    "BRISK_SECONDS",
    "FIRST_POLL",
    "MAX_POLL",
    "MAX_REASON",
    "PROTOCOL_STAGES",
    "BankExchange",
    "BankHeads",
    "ExchangeAudit",
    "ExchangeTiming",
    "Stage",
    "messages_to",
    "send_and_receive",
]

FIRST_POLL = 0.05
BRISK_SECONDS = 2.0
MAX_POLL = 0.5
_BACKOFF = 1.5


def send_and_receive(grid: Grid, messages: Iterable[Message], *, timeout: float) -> list[Message]:
    """Push ``messages`` and pull their replies until all arrived or ``timeout`` passed.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        The run's grid (in-memory in simulation, HTTP in deployment).
    messages : iterable of Message
        One message per destination node.
    timeout : float
        Seconds to wait for the replies, from the push.

    Returns
    -------
    list of Message
        The replies that arrived (error replies included), in arrival order.
    """
    pending = set(grid.push_messages(messages))
    pushed = time.monotonic()
    deadline = pushed + timeout
    replies: list[Message] = []
    pause = FIRST_POLL
    while pending:
        arrived = list(grid.pull_messages(pending))
        replies.extend(arrived)
        pending.difference_update(reply.metadata.reply_to_message_id for reply in arrived)
        now = time.monotonic()
        if not pending or now >= deadline:
            break
        time.sleep(min(pause, deadline - now))
        if now - pushed >= BRISK_SECONDS:
            pause = min(pause * _BACKOFF, MAX_POLL)
    return replies


def messages_to(
    nodes: Iterable[int],
    message_type: str,
    *parts: MessagePart,
    arrays: ArrayRecord | None = None,
) -> list[Message]:
    """One message of ``message_type`` per node, each with its own copy of the content."""
    return [Message(content_of(*parts, arrays=arrays), node, message_type) for node in nodes]


class Stage(StrEnum):
    """The message exchanges of a run, as errors and progress lines name them."""

    CONNECT = "connect"
    FEATURE_STATS = "feature-stats"
    ENROLL = "enroll"
    JOIN = "join"
    ADVERTISE = "advertise"
    TRAIN = "train"
    CONSISTENCY = "consistency"
    UNMASK = "unmask"
    EVALUATE = "evaluate"
    STABILITY = "stability"
    GBDT_LEVEL = "gbdt-level"


PROTOCOL_STAGES = frozenset({Stage.ADVERTISE, Stage.CONSISTENCY, Stage.UNMASK})
"""Secure aggregation's own stages: the protocol, not ``min_banks``, decides if they suffice."""

NODE_WAIT_SECONDS = 600.0
_NODE_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class ExchangeTiming:
    """The wall time of one exchange: from pushing its messages to having its replies.

    Attributes
    ----------
    server_round : int
        The round (0: set-up).
    stage : str
        The exchange (a :class:`Stage`).
    seconds : float
        Push to return, polling included.
    replies : int
        Replies that arrived (error replies included).
    """

    server_round: int
    stage: str
    seconds: float
    replies: int


MAX_REASON = 200
"""Characters of a malformed head's problem kept in the audit log (the bank chose it)."""


@dataclass(frozen=True)
class BankHeads:
    """The audit-log heads banks put in one exchange's replies, read without trusting them.

    Attributes
    ----------
    heads : dict of int to AuditHead
        Node -> the head its reply carried.
    missing : list of int
        Nodes whose reply carried none (a bank without an audit log, a simulated
        dropout, an older release).
    malformed : dict of int to str
        Node -> why its head breaks the contract (at most :data:`MAX_REASON` characters).
    errors : list of int
        Nodes that answered with an error (a refusal by the guard): no content.
    """

    heads: dict[int, AuditHead] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    malformed: dict[int, str] = field(default_factory=dict)
    errors: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, replies: Iterable[Message]) -> BankHeads:
        """Read the head of each reply; a missing or malformed one is noted, never raised."""
        heads = cls()
        for reply in replies:
            node = reply.metadata.src_node_id
            if reply.has_error() or not reply.has_content():
                heads.errors.append(node)
            elif not AuditHead.present(reply.content):
                heads.missing.append(node)
            else:
                try:
                    heads.heads[node] = AuditHead.take(reply.content)
                except MalformedMessage as malformed:
                    heads.malformed[node] = str(malformed)[:MAX_REASON]
        return heads


class ExchangeAudit(Protocol):
    """What an exchange needs of the run's audit trail (:class:`CoordinatorAudit`)."""

    def current_head(self) -> AuditHead:
        """The head of the coordinator's log, to send with the next messages."""
        ...

    def exchange(self, stage: str, server_round: int, sent: AuditHead, heads: BankHeads) -> None:
        """Record one exchange: the head its messages carried and the banks' heads."""
        ...


class BankExchange:
    """The run's way to talk to banks: wait for them, send a stage, keep usable replies.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
        The run's grid.
    min_banks : int
        Fewest banks a stage (other than secure aggregation's own) needs.
    timeout : float
        Seconds to wait for the replies of one stage.

    Attributes
    ----------
    timings : list of ExchangeTiming
        Every exchange so far, in order (a failed one included).
    audit : ExchangeAudit or None
        The run's audit trail while it runs: each exchange's messages carry its
        head, and the banks' heads in the replies are recorded in it (None: neither).
    """

    def __init__(self, grid: Grid, *, min_banks: int, timeout: float) -> None:
        self.grid = grid
        self.min_banks = min_banks
        self.timeout = timeout
        self.timings: list[ExchangeTiming] = []
        self.audit: ExchangeAudit | None = None

    def nodes(self) -> list[int]:
        """The connected nodes, once at least ``min_banks`` are (RoundFailed after 600 s)."""
        deadline = time.monotonic() + NODE_WAIT_SECONDS
        while True:
            node_ids = sorted(self.grid.get_node_ids())
            if len(node_ids) >= self.min_banks:
                return node_ids
            if time.monotonic() > deadline:
                raise RoundFailed(
                    stage=Stage.CONNECT,
                    server_round=0,
                    received=len(node_ids),
                    required=self.min_banks,
                    reasons=[f"waited {NODE_WAIT_SECONDS:.0f} s for banks to connect"],
                )
            time.sleep(_NODE_POLL_SECONDS)

    def __call__(self, messages: list[Message], stage: str, server_round: int) -> list[Message]:
        """Send a stage's ``messages``; the replies without errors.

        With :attr:`audit` set, each message carries the coordinator's log head and
        the exchange is recorded with the banks' heads (before any check below).

        Raises
        ------
        RoundFailed
            Fewer than ``min_banks`` replies without errors (secure aggregation's own
            stages excepted: the protocol decides against its threshold).
        """
        audit = self.audit
        sent = audit.current_head() if audit is not None else None
        if sent is not None:
            for message in messages:
                sent.put(message.content)
        started = time.monotonic()
        replies = send_and_receive(self.grid, messages, timeout=self.timeout)
        self.timings.append(
            ExchangeTiming(
                server_round=server_round,
                stage=str(stage),
                seconds=time.monotonic() - started,
                replies=len(replies),
            )
        )
        if audit is not None and sent is not None:
            audit.exchange(str(stage), server_round, sent, BankHeads.of(replies))
        valid = [reply for reply in replies if not reply.has_error()]
        if stage in PROTOCOL_STAGES or len(valid) >= self.min_banks:
            return valid
        raise RoundFailed(
            stage=stage,
            server_round=server_round,
            received=len(valid),
            required=self.min_banks,
            reasons=[
                f"node {r.metadata.src_node_id}: {r.error.reason}" for r in replies if r.has_error()
            ],
        )

    def seconds_of(self, server_round: int, since: int = 0) -> dict[str, float]:
        """Seconds per stage of ``server_round``'s exchanges from ``timings[since]`` on.

        A stage exchanged more than once in the round counts the sum of its times.
        """
        seconds: dict[str, float] = {}
        for timing in self.timings[since:]:
            if timing.server_round == server_round:
                seconds[timing.stage] = seconds.get(timing.stage, 0.0) + timing.seconds
        return seconds

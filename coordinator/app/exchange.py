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
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from flwr.app import ArrayRecord, Message
from flwr.serverapp import Grid

from coordinator.errors import RoundFailed
from credit.messages import MessagePart, content_of

__all__ = [
    "BRISK_SECONDS",
    "FIRST_POLL",
    "MAX_POLL",
    "PROTOCOL_STAGES",
    "BankExchange",
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
    UNMASK = "unmask"
    EVALUATE = "evaluate"


PROTOCOL_STAGES = frozenset({Stage.ADVERTISE, Stage.UNMASK})
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
    """

    def __init__(self, grid: Grid, *, min_banks: int, timeout: float) -> None:
        self.grid = grid
        self.min_banks = min_banks
        self.timeout = timeout
        self.timings: list[ExchangeTiming] = []

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

        Raises
        ------
        RoundFailed
            Fewer than ``min_banks`` replies without errors (secure aggregation's own
            stages excepted: the protocol decides against its threshold).
        """
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

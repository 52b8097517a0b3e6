"""Send messages to banks and collect their replies, polling briskly.

Flower's ``Grid.send_and_receive`` on the Deployment Engine sleeps 3 s between
pulls, so every exchange pays up to 3 s after the last bank has replied, and a
round of training, unmasking and evaluation pays it three times. fedcredit pushes
and pulls itself: it polls every :data:`FIRST_POLL` seconds for the first
:data:`BRISK_SECONDS` (replies in simulation, and unmasking in deployment, often
arrive within them), then backs off to :data:`MAX_POLL`, which keeps the load on the
SuperLink low on long rounds. Replies, errors and the timeout behave as in Flower's
method.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

__all__ = ["BRISK_SECONDS", "FIRST_POLL", "MAX_POLL", "send_and_receive"]

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

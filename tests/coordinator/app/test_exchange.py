"""The coordinator's own send-and-receive: every reply collected, the timeout honoured."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from coordinator.app.exchange import send_and_receive


@dataclass
class _Metadata:
    reply_to_message_id: str


@dataclass
class _Reply:
    metadata: _Metadata


@dataclass
class _SlowGrid:
    """Replies become available ``delays[i]`` seconds after the push, one per message."""

    delays: list[float]
    pulls: int = 0
    pushed_at: float = 0.0
    delivered: set[str] = field(default_factory=set)

    def push_messages(self, messages: Iterable[object]) -> list[str]:
        self.pushed_at = time.monotonic()
        return [f"m{i}" for i, _ in enumerate(messages)]

    def pull_messages(self, message_ids: Iterable[str]) -> list[_Reply]:
        self.pulls += 1
        now = time.monotonic() - self.pushed_at
        ready = [
            mid
            for mid in message_ids
            if mid not in self.delivered and now >= self.delays[int(mid[1:])]
        ]
        self.delivered.update(ready)
        return [_Reply(_Metadata(mid)) for mid in ready]


def test_collects_every_reply_soon_after_the_last_arrives() -> None:
    grid = _SlowGrid(delays=[0.0, 0.3, 0.6])
    started = time.monotonic()
    replies = send_and_receive(grid, [object()] * 3, timeout=10)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["m0", "m1", "m2"]
    assert 0.6 <= elapsed < 0.6 + 2.5  # polls at most 0.5 s apart; Flower waits 3 s


def test_stops_at_the_timeout_with_the_replies_so_far() -> None:
    grid = _SlowGrid(delays=[0.0, 60.0])
    started = time.monotonic()
    replies = send_and_receive(grid, [object()] * 2, timeout=0.5)  # type: ignore[arg-type]
    assert [r.metadata.reply_to_message_id for r in replies] == ["m0"]
    assert 0.5 <= time.monotonic() - started < 3.0


def test_polls_gently_on_long_waits() -> None:
    grid = _SlowGrid(delays=[6.0])
    send_and_receive(grid, [object()], timeout=20)  # type: ignore[arg-type]
    # 2 s of brisk polls (every 0.05 s: at most 40), then backing off to one per 0.5 s
    # (a handful of steps, then at most 8 more): far fewer than 0.05 s polling for 6 s.
    assert grid.pulls <= 60

"""Adaptive batching: the requests waiting together are scored in one call.

Scoring one applicant costs about as much as scoring fifty (the scorer's work is per
call: encoding, the forward pass, the reason codes, all vectorised), so under load the
service scores the requests that arrived while the previous call ran in one call and
hands each request its own rows' answers. There is no waiting timer: a request that
arrives at an idle service is scored at once, alone; batches form only when requests
queue up, so the batching adds no latency at low load and multiplies the throughput at
high load.

A call of at most ``inline_rows`` rows runs on the event loop itself (a few
milliseconds; handing it to a worker thread costs about a millisecond more, measured);
a larger call runs in a worker thread so that it never holds the loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool

__all__ = ["DEFAULT_INLINE_ROWS", "Batcher"]

DEFAULT_INLINE_ROWS = 16
"""Calls of at most this many rows are scored on the event loop (module docstring)."""

Answer = TypeVar("Answer")
Applicants = list[dict[str, Any]]


class Batcher(Generic[Answer]):
    """Scores waiting requests together (module docstring).

    Parameters
    ----------
    score_many : callable
        ``score_many(requests) -> answers``: one answer per request, in order; runs in a
        worker thread.
    max_rows : int
        Rows one call may take; a call takes at least one request whatever its size.
    inline_rows : int, default 16
        Calls of at most this many rows run on the event loop, larger ones in a worker
        thread (0: every call in a thread).
    """

    def __init__(
        self,
        score_many: Callable[[Sequence[Applicants]], list[Answer]],
        *,
        max_rows: int,
        inline_rows: int = DEFAULT_INLINE_ROWS,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1; got {max_rows}")
        if inline_rows < 0:
            raise ValueError(f"inline_rows must be >= 0; got {inline_rows}")
        self._score_many = score_many
        self._max_rows = max_rows
        self._inline_rows = inline_rows
        self._waiting: deque[tuple[Applicants, asyncio.Future[Answer]]] = deque()
        self._draining = False

    async def submit(self, applicants: Applicants) -> Answer:
        """The answer for one request's applicants (scored alone or with others)."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((applicants, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    def _take(self) -> list[tuple[Applicants, asyncio.Future[Answer]]]:
        taken: list[tuple[Applicants, asyncio.Future[Answer]]] = []
        rows = 0
        while self._waiting and (not taken or rows + len(self._waiting[0][0]) <= self._max_rows):
            item = self._waiting.popleft()
            taken.append(item)
            rows += len(item[0])
        return taken

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._take()
                requests = [applicants for applicants, _ in batch]
                try:
                    if sum(map(len, requests)) <= self._inline_rows:
                        answers = self._score_many(requests)
                    else:
                        answers = await run_in_threadpool(self._score_many, requests)
                except Exception as exc:  # every request of the call fails with it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(answer)
        finally:
            self._draining = False

"""Adaptive batching: waiting requests share one call, each gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from serving.batcher import Batcher

Requests = Sequence[list[dict[str, Any]]]


class Recorder:
    """A ``score_many`` that records its calls; the first call waits until released."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = threading.Event()

    def __call__(self, requests: Requests) -> list[list[int]]:
        if not self.calls:
            self.release.wait(timeout=10)
        self.calls.append([len(applicants) for applicants in requests])
        return [[row["n"] for row in applicants] for applicants in requests]


def rows(*numbers: int) -> list[dict[str, Any]]:
    return [{"n": n} for n in numbers]


def test_requests_waiting_together_share_one_call() -> None:
    recorder = Recorder()
    batcher: Batcher[list[int]] = Batcher(recorder, max_rows=5, inline_rows=0)

    async def scenario() -> list[list[int]]:
        first = asyncio.ensure_future(batcher.submit(rows(0)))
        await asyncio.sleep(0.05)  # the first call is running (held)
        rest = [asyncio.ensure_future(batcher.submit(rows(k, k))) for k in (1, 2, 3)]
        await asyncio.sleep(0.05)
        recorder.release.set()
        return await asyncio.gather(first, *rest)

    answers = asyncio.run(scenario())
    assert answers == [[0], [1, 1], [2, 2], [3, 3]]
    # alone at first; then as many waiting requests as fit in max_rows rows; then the rest
    assert recorder.calls == [[1], [2, 2], [2]]


def test_a_failed_call_fails_each_of_its_requests_and_the_next_call_works() -> None:
    failing = True

    def score_many(requests: Requests) -> list[int]:
        if failing:
            raise RuntimeError("scorer broke")
        return [len(applicants) for applicants in requests]

    batcher: Batcher[int] = Batcher(score_many, max_rows=10)

    async def scenario() -> int:
        nonlocal failing
        with pytest.raises(RuntimeError, match="scorer broke"):
            await batcher.submit(rows(1))
        failing = False
        return await batcher.submit(rows(1, 2, 3))

    assert asyncio.run(scenario()) == 3


def test_small_calls_run_on_the_loop_and_large_ones_in_a_thread() -> None:
    def score_many(requests: Requests) -> list[str]:
        return [threading.current_thread().name for _ in requests]

    batcher: Batcher[str] = Batcher(score_many, max_rows=100, inline_rows=3)

    async def scenario() -> tuple[str, str, str]:
        loop_thread = threading.current_thread().name
        return (
            loop_thread,
            await batcher.submit(rows(1, 2, 3)),
            await batcher.submit(rows(*range(4))),
        )

    loop_thread, small, large = asyncio.run(scenario())
    assert small == loop_thread != large


@pytest.mark.parametrize(
    ("keyword", "message"),
    [("max_rows", "max_rows must be >= 1; got 0"), ("inline_rows", "inline_rows must be >= 0")],
)
def test_bad_limits_are_refused(keyword: str, message: str) -> None:
    limits = {"max_rows": 1, "inline_rows": 0, keyword: 0 if keyword == "max_rows" else -1}
    with pytest.raises(ValueError, match=message):
        Batcher(lambda requests: [], **limits)

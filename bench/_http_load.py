"""A lean HTTP/1.1 load generator for the scoring benchmark: asyncio streams + h11.

The service and its load share this machine's two cores, so every microsecond the
client spends per request is taken from the server. httpx's ``AsyncClient`` spent
about 6 ms of CPU per request at 50 connections here, more than the service itself;
this client speaks HTTP/1.1 through h11 (the protocol library under httpx) over one
keep-alive connection per simulated client, on uvloop, and does nothing else.

Each client sends a request, waits for the whole answer, checks its status and that
its ``results`` list is not empty, and either sends the next one at once (closed
loop) or at its own pace (``interval`` seconds apart, never two at a time).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import h11
import numpy as np
import uvloop

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    """What a load run measured at the clients."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    first_error: str | None = None

    def document(self, clients: int) -> dict[str, object]:
        """Requests, errors, throughput and latency percentiles (milliseconds)."""
        values = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {
            "clients": clients,
            "requests": len(self.latencies_ms),
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": round(self.seconds, 2),
            "throughput_rps": round(len(self.latencies_ms) / self.seconds, 1),
            "p50_ms": round(float(np.percentile(values, 50)), 2),
            "p90_ms": round(float(np.percentile(values, 90)), 2),
            "p99_ms": round(float(np.percentile(values, 99)), 2),
            "max_ms": round(float(values.max()), 2),
        }


def _request(host: str, port: int, body: bytes) -> list[h11.Event]:
    headers = [
        ("Host", f"{host}:{port}"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ]
    return [
        h11.Request(method="POST", target="/v1/score", headers=headers),
        h11.Data(data=body),
        h11.EndOfMessage(),
    ]


async def _exchange(
    connection: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    events: list[h11.Event],
) -> tuple[int, bytes]:
    writer.write(b"".join(connection.send(event) or b"" for event in events))
    status, chunks = 0, []
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the service closed the connection")
            connection.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            connection.start_next_cycle()
            return status, b"".join(chunks)


async def _client(
    index: int,
    host: str,
    port: int,
    bodies: list[bytes],
    *,
    clients: int,
    end: float,
    interval: float | None,
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    connection = h11.Connection(h11.CLIENT)
    i, next_at = index, time.monotonic() + (interval or 0.0) * index / clients
    try:
        while time.monotonic() < end:
            if interval is not None:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            body = bodies[i % len(bodies)]
            i += clients
            sent = time.perf_counter()
            try:
                status, answer = await _exchange(
                    connection, reader, writer, _request(host, port, body)
                )
                ok = status == 200 and bool(json.loads(answer)["results"])
                problem = None if ok else f"HTTP {status}: {answer[:200]!r}"
            except (ConnectionError, h11.ProtocolError, ValueError, KeyError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                reader, writer = await asyncio.open_connection(host, port)
                connection = h11.Connection(h11.CLIENT)
            result.latencies_ms.append((time.perf_counter() - sent) * 1000)
            if problem is not None:
                result.errors += 1
                result.first_error = result.first_error or problem
    finally:
        writer.close()


async def _load(
    host: str, port: int, bodies: list[bytes], clients: int, seconds: float, rate: float | None
) -> LoadResult:
    result = LoadResult()
    started = time.monotonic()
    interval = None if rate is None else clients / rate
    await asyncio.gather(
        *(
            _client(
                index, host, port, bodies,
                clients=clients, end=started + seconds, interval=interval, result=result,
            )
            for index in range(clients)
        )
    )  # fmt: skip
    result.seconds = time.monotonic() - started
    return result


def run_load(
    host: str,
    port: int,
    bodies: list[bytes],
    *,
    clients: int,
    seconds: float,
    rate: float | None = None,
) -> LoadResult:
    """``clients`` connections sending ``bodies`` for ``seconds``, back to back or at ``rate``/s."""
    return uvloop.run(_load(host, port, bodies, clients, seconds, rate))

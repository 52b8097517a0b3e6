"""What every request passes before a route: request id, timing, API token.

:class:`ServiceGate` is a plain ASGI middleware (no per-request task or body copy):

* gives the request an id (the client's ``X-Request-ID`` when it is 1 to 64 letters,
  digits, ``.``, ``_`` or ``-``; else a fresh one), puts it in ``scope["state"]`` and
  sends it back as ``X-Request-ID``;
* with an API token configured, refuses (401, ``WWW-Authenticate: Bearer``) a request
  to any path but ``/healthz`` whose ``Authorization`` header is not ``Bearer <token>``,
  compared in constant time (:func:`hmac.compare_digest`), before the body is read;
* counts the answered request and its latency in the metrics.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from typing import Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import ServiceMetrics

__all__ = ["OPEN_PATHS", "REQUEST_ID_HEADER", "ServiceGate"]

REQUEST_ID_HEADER = "x-request-id"
OPEN_PATHS = frozenset({"/healthz"})
"""Paths answered without the API token (liveness probes)."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_UNAUTHORIZED = json.dumps(
    {"detail": "missing or wrong API token: send the header 'Authorization: Bearer <token>'"}
).encode()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class ServiceGate:
    """The ASGI middleware of the module docstring.

    Parameters
    ----------
    app : ASGI application
        The FastAPI application.
    metrics : ServiceMetrics
        Where answered requests are counted.
    token : pydantic.SecretStr, optional
        The API token; None: no token required.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics, token: SecretStr | None) -> None:
        self.app = app
        self.metrics = metrics
        self._expected = (
            None if token is None else b"Bearer " + token.get_secret_value().encode("utf-8")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = _header(scope, REQUEST_ID_HEADER.encode())
        text = sent.decode("latin-1") if sent is not None else ""
        request_id = text if _REQUEST_ID.fullmatch(text) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[Any] = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if self._allowed(scope):
                await self.app(scope, receive, send_with_id)
            else:
                await self._unauthorized(send_with_id)
        finally:
            self.metrics.observe_request(scope["path"], status, time.perf_counter() - started)

    def _allowed(self, scope: Scope) -> bool:
        if self._expected is None or scope["path"] in OPEN_PATHS:
            return True
        given = _header(scope, b"authorization") or b""
        return hmac.compare_digest(given, self._expected)

    @staticmethod
    async def _unauthorized(send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                    (b"www-authenticate", b"Bearer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _UNAUTHORIZED})

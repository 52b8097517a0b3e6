"""The dashboards' web application: one page, its state as JSON, and the files it links.

A dashboard is a :class:`DashboardPage` (its title and template) and a
:class:`StateSource` (what the page shows, read afresh from files at every request).
:func:`dashboard_app` serves them read-only (GET only):

- ``/``: the page (rendered with Jinja2, autoescaped), which polls
- ``/api/state``: the source's state as JSON (no caching), and
- ``/files/<name>``: a file the source names (a finished run's ``report.html``),
  nothing else.

Every answer forbids the browser to load anything from elsewhere (a strict
Content-Security-Policy: the page's inline style and script carry a per-answer
nonce) and to be framed; requests must name a host the dashboard answers to, so a
web page the operator visits cannot read the dashboard through DNS rebinding.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from credit.errors import FedcreditError
from deploy.web._page import BASE

__all__ = ["DashboardPage", "StateSource", "dashboard_app"]

_PAGE_POLICY = (
    "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_FILE_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
)
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


@dataclass(frozen=True)
class DashboardPage:
    """A dashboard's page.

    Parameters
    ----------
    title : str
        The page's title and heading.
    template : str
        Jinja2 source that extends ``"base.html"`` (:mod:`deploy.web._page`): its
        ``body`` block and a ``script`` block defining ``render(state)``.
    poll_seconds : float, default 1.5
        How often the page asks for the state, in seconds (0.2 to 60).
    """

    title: str
    template: str
    poll_seconds: float = 1.5

    def __post_init__(self) -> None:
        if not 0.2 <= self.poll_seconds <= 60:
            raise ValueError(f"poll_seconds must be in [0.2, 60]; got {self.poll_seconds}")


class StateSource(Protocol):
    """What a dashboard shows, read from its files at every call."""

    def state(self) -> dict[str, Any]:
        """The page's state, JSON-ready (non-finite floats are sent as null)."""
        ...

    def file(self, name: str) -> Path | None:
        """The file ``/files/<name>`` serves, or None (404) for any other name."""
        ...


def dashboard_app(
    page: DashboardPage, source: StateSource, *, allowed_hosts: Sequence[str]
) -> Starlette:
    """The read-only web application of one dashboard.

    Parameters
    ----------
    page : DashboardPage
        The page.
    source : StateSource
        Its state and files.
    allowed_hosts : sequence of str
        Host names requests may name (``Host`` header, port excluded); ``"*"``
        answers any.
    """
    environment = jinja2.Environment(
        loader=jinja2.DictLoader({"base.html": BASE, "page.html": page.template}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("page.html")

    async def show_page(request: Request) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = template.render(
            title=page.title, nonce=nonce, poll_ms=round(page.poll_seconds * 1000)
        )
        policy = _PAGE_POLICY.format(nonce=nonce)
        return HTMLResponse(html, headers={**_HEADERS, "Content-Security-Policy": policy})

    def show_state(request: Request) -> Response:
        headers = {**_HEADERS, "Cache-Control": "no-store"}
        try:
            return JSONResponse(_finite(source.state()), headers=headers)
        except (FedcreditError, OSError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=503, headers=headers)

    def show_file(request: Request) -> Response:
        path = source.file(str(request.path_params["name"]))
        if path is None or not path.is_file():
            return JSONResponse({"error": "no such file"}, status_code=404, headers=_HEADERS)
        return FileResponse(path, headers={**_HEADERS, "Content-Security-Policy": _FILE_POLICY})

    return Starlette(
        routes=[
            Route("/", show_page, methods=["GET"]),
            Route("/api/state", show_state, methods=["GET"]),
            Route("/files/{name:path}", show_file, methods=["GET"]),
        ],
        middleware=[Middleware(_HostCheck, allowed_hosts=tuple(allowed_hosts))],
    )


class _HostCheck:
    """Answer 400 to an HTTP request whose ``Host`` is not an allowed name (port ignored).

    Starlette's TrustedHostMiddleware cuts the header at its first colon, so it cannot
    allow an IPv6 literal (``[::1]:8765``); this check reads the bracketed form.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = {host.strip("[]").lower() for host in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.allowed:
            headers = dict(scope["headers"])
            host = _host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                response = JSONResponse({"error": "invalid Host header"}, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    """The host name of a ``Host`` header: ``[::1]:8765`` -> ``::1``, ``a:80`` -> ``a``."""
    if header.startswith("["):
        return header[1 : header.find("]")].lower() if "]" in header else ""
    return header.split(":", 1)[0].lower()


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value

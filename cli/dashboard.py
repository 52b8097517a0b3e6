"""What the dashboard commands share: their flags, and serving a page until Ctrl-C.

``fedcredit coordinator dashboard``, ``fedcredit participant dashboard`` and
``fedcredit simulate --dashboard`` serve a read-only page (:mod:`deploy.web`) on
loopback unless ``--allow-remote`` is given with another ``--host``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import say

if TYPE_CHECKING:
    from deploy.web import DashboardPage, DashboardServer, StateSource

__all__ = [
    "DEFAULT_PORT",
    "AllowRemote",
    "DashboardHost",
    "DashboardPort",
    "bind_dashboard",
    "serve_until_interrupted",
]

DEFAULT_PORT = 8765

DashboardHost = Annotated[
    str,
    typer.Option(
        "--host", help="Address to listen on: loopback only, unless --allow-remote is given."
    ),
]
DashboardPort = Annotated[
    int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free port).")
]
AllowRemote = Annotated[
    bool,
    typer.Option(
        "--allow-remote",
        help="Allow a --host that is not loopback: the page (read-only, plain HTTP) is then "
        "reachable by whoever reaches that address.",
    ),
]


def bind_dashboard(
    page: DashboardPage, source: StateSource, *, host: str, port: int, allow_remote: bool
) -> DashboardServer:
    """The dashboard bound to ``host``:``port`` (call inside :func:`cli.console.fail_cleanly`).

    Raises
    ------
    ConfigError
        A non-loopback host without ``allow_remote``, or an address that cannot be bound.
    """
    from deploy.web import check_host, dashboard_server

    check_host(host, allow_remote=allow_remote)
    return dashboard_server(page, source, host=host, port=port)


def serve_until_interrupted(server: DashboardServer) -> None:
    """Say where the page is and serve it in the foreground until Ctrl-C."""
    say(f"dashboard: {server.url} (read-only; Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve()
    say("dashboard stopped")

"""Serve a dashboard with uvicorn: on loopback unless told otherwise, in the foreground or a thread.

The socket is bound here, before uvicorn starts, so that a taken port or a wrong
address is one clear error (and port 0 picks a free port whose number is known at
once). The dashboards show a consortium's runs, banks and privacy spend: they listen
on ``127.0.0.1`` by default, and :func:`check_host` refuses any address that is not
loopback unless the caller passes ``allow_remote`` (a command-line flag the user
typed); even then the page is read-only and plain HTTP.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette

from credit.errors import ConfigError, OperationFailed
from deploy.web.app import DashboardPage, StateSource, dashboard_app

__all__ = [
    "LOOPBACK_NAMES",
    "DashboardServer",
    "allowed_hosts",
    "check_host",
    "dashboard_server",
    "loopback_host",
]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
"""Host names of this machine the dashboards answer to (the ``Host`` header)."""
_START_SECONDS = 10.0


def loopback_host(host: str) -> bool:
    """True if ``host`` is ``localhost`` or a loopback IP address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, *, allow_remote: bool, flag: str = "--host") -> str:
    """``host`` if the dashboard may listen there; ConfigError otherwise.

    Raises
    ------
    ConfigError
        ``host`` is not a loopback address and ``allow_remote`` is False.
    """
    if loopback_host(host) or allow_remote:
        return host
    raise ConfigError(
        f"the dashboard listens on loopback only (127.0.0.1, ::1, localhost); got '{host}'. "
        "Reach it through an SSH tunnel, or pass --allow-remote to serve it (read-only, "
        "plain HTTP) on this address",
        source=flag,
    )


def allowed_hosts(host: str) -> list[str]:
    """The ``Host`` names to answer: loopback names, or any when bound beyond loopback."""
    return [*LOOPBACK_NAMES, host.strip("[]")] if loopback_host(host) else ["*"]


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port)."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((bare, port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port",
            source="--port",
        ) from exc
    return listener


@dataclass
class DashboardServer:
    """A dashboard application bound to ``host``:``port``, served by uvicorn.

    Parameters
    ----------
    app : Starlette
        From :func:`deploy.web.app.dashboard_app`.
    host : str
        The address to listen on (checked by the caller with :func:`check_host`).
    port : int
        The port; 0 picks a free one (see :attr:`port` once bound).

    Raises
    ------
    ConfigError
        The address cannot be bound (taken port, unknown address).
    """

    app: Starlette
    host: str
    port: int
    _socket: socket.socket = field(init=False, repr=False)
    _server: uvicorn.Server = field(init=False, repr=False)
    _thread: threading.Thread | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self._socket = _bind(self.host, self.port)
        self.port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            ws="none",
        )
        self._server = uvicorn.Server(config)

    @property
    def url(self) -> str:
        """The page's address."""
        bare = self.host.strip("[]")
        shown = f"[{bare}]" if ":" in bare else bare
        return f"http://{shown}:{self.port}/"

    def serve(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C)."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self) -> None:
        """Serve in a background (daemon) thread; return once it accepts connections.

        Raises
        ------
        OperationFailed
            uvicorn did not start within 10 s.
        """
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="fedcredit-dashboard",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise OperationFailed(f"the dashboard did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop serving (a background server's thread ends within a few seconds)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_START_SECONDS)
        with contextlib.suppress(OSError):
            self._socket.close()


def dashboard_server(
    page: DashboardPage, source: StateSource, *, host: str, port: int
) -> DashboardServer:
    """A server of ``page`` and ``source`` on ``host``:``port`` (bound, not yet serving).

    Call :meth:`DashboardServer.serve` or :meth:`DashboardServer.start` next. The host
    must have passed :func:`check_host`.
    """
    app = dashboard_app(page, source, allowed_hosts=allowed_hosts(host))
    return DashboardServer(app=app, host=host, port=port)
